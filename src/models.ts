/**
 * Known-good models: GGUF files on Hugging Face that this engine runs, each pinned to one revision
 * with the file's SHA-256 and exact size, so `engine.load(MODELS[id])` downloads exactly that file
 * and verifies it (a mismatch keeps nothing). Plain data and one arithmetic function: importing it
 * pulls in no other module.
 */
import type { ModelConfig } from './model/config.js';

/** The architecture numbers the GPU memory estimate needs (ModelConfig's names, so a config fits). */
export type ModelShape = Pick<ModelConfig, 'dim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'headDim' | 'ffnDim' | 'vocabSize' | 'contextLength'>;

/** What a device needs to run a catalogued model. */
export interface ModelNeeds {
  /** GPU memory at `contextLength`: weights, KV cache and work buffers (estimateGpuBytes). */
  gpuBytes: number;
  /** The context the load uses by default: the model's own, capped at 4096 (LoadOptions.contextLength). */
  contextLength: number;
  /**
   * The largest single GPU buffer, an upper bound: the device's maxStorageBufferBindingSize must
   * reach it. Matrices are split into parts of at most 128 MiB, the WebGPU default, so every
   * device does.
   */
  maxBufferBytes: number;
  /** Never: weights of every kind are decoded in f32 arithmetic, so no device needs shader-f16. */
  shaderF16: false;
}

/** A catalogued model; usable directly as a load source (it has `url` and `sha256`). */
export interface CatalogModel {
  /** The key in MODELS: the file's name, lower case, without `.gguf`. */
  id: string;
  name: string;
  /** A Hugging Face `resolve/<commit>` URL: a commit pins the bytes, where `main` could move. */
  url: string;
  /** SHA-256 of the file (its Git LFS oid), lower-case hex; absent where none was found. */
  sha256?: string;
  /** True when `sha256` and `bytes` come from a public record of the file at that commit. */
  verified: boolean;
  /** Exact file size in bytes. */
  bytes: number;
  /** The model's own context length (GGUF `<arch>.context_length`). */
  contextLength: number;
  /** GGUF `general.architecture`. */
  architecture: string;
  /** The file's quantization scheme, as in its name. */
  quantization: string;
  /** Parameter count, as the model card rounds it. */
  parameters: number;
  /** SPDX id, or the model's own licence name. */
  license: string;
  shape: ModelShape;
  needs: ModelNeeds;
}

/** LoadOptions.contextLength's default cap. */
const DEFAULT_CONTEXT = 4096;
/** model/weights.ts MAX_PART_BYTES: no weight buffer is larger (test/models.test.ts checks they agree). */
export const MAX_WEIGHT_BUFFER_BYTES = 128 * 2 ** 20;
/** LoadOptions.maxBatch's default: prefill activations are sized for this many tokens. */
const MAX_BATCH = 64;
/** model/blocks/attention.ts ATTENTION_CHUNKS: attention's partial results per token and head. */
const ATTENTION_CHUNKS = 16;
const F32 = 4;
/** Bytes per cached key or value: the KV cache's default f16 (src/model/blocks/attention.ts kvCacheBits). */
const KV_VALUE_BYTES = 2;

/**
 * GPU memory a model takes once loaded, from its file size and shape: the weights as the file
 * stores them (the GPU layout keeps each quant's bytes, padded to words, within about 1% of the
 * file's tensor data; the header is left out of the upload but is small), the (f16) KV cache of
 * every layer, and the work buffers (prefill activations for MAX_BATCH tokens, attention's partial
 * sums, logits and sampler state, the RoPE table). Uniform buffers are left out: a few kilobytes.
 */
export function estimateGpuBytes(fileBytes: number, s: ModelShape, contextLength = Math.min(s.contextLength, DEFAULT_CONTEXT)): number {
  const qDim = s.nHeads * s.headDim;
  const kvDim = s.nKvHeads * s.headDim;
  const kvCache = 2 * s.nLayers * contextLength * kvDim * KV_VALUE_BYTES;
  // x, xb, q, attn_out, the FFN's hidden rows, and a step's new keys and values (k_new, v_new).
  const activations = MAX_BATCH * (2 * s.dim + 2 * qDim + s.ffnDim + 2 * kvDim) * F32;
  const attention = MAX_BATCH * s.nHeads * ATTENTION_CHUNKS * (s.headDim + 2) * F32;
  const sampling = 3 * s.vocabSize * F32 + (contextLength + 1) * 4;
  const ropeTable = contextLength * s.headDim * F32;
  return fileBytes + kvCache + activations + attention + sampling + ropeTable;
}

/** The largest buffer a load creates, at most: a weight part, or one layer's K (or V) cache. */
function maxBufferBytes(fileBytes: number, s: ModelShape, contextLength: number): number {
  return Math.max(Math.min(fileBytes, MAX_WEIGHT_BUFFER_BYTES), contextLength * s.nKvHeads * s.headDim * KV_VALUE_BYTES, s.vocabSize * F32);
}

/** A catalogue entry as written below: the rest is derived. */
type Entry = Omit<CatalogModel, 'id' | 'needs' | 'contextLength' | 'verified'>;

function entry(id: string, m: Entry): CatalogModel {
  const contextLength = Math.min(m.shape.contextLength, DEFAULT_CONTEXT);
  return {
    id,
    ...m,
    verified: m.sha256 !== undefined,
    contextLength: m.shape.contextLength,
    needs: {
      gpuBytes: estimateGpuBytes(m.bytes, m.shape, contextLength),
      contextLength,
      maxBufferBytes: maxBufferBytes(m.bytes, m.shape, contextLength),
      shaderF16: false,
    },
  };
}

const hf = (repo: string, commit: string, file: string) => `https://huggingface.co/${repo}/resolve/${commit}/${file}`;

/*
 * Where each SHA-256 and size comes from: the file's Git LFS pointer at the pinned commit (`oid
 * sha256:…`, `size …`, what Hugging Face's paths-info API reports as lfs.oid and size), as recorded
 * together with the commit by several independent public projects on GitHub that verify their
 * downloads (found by code search; every entry below was matched by at least two that agree).
 * Shapes are the GGUF metadata as the model cards and those records state them.
 */
const CATALOG = {
  stories260k: {
    // ggml-org/models was renamed ggml-org/models-moved (the old name redirects); commit 499bc88
    // is the one Homebrew's ollama formula and llama.cpp-based test fixtures pin.
    name: 'stories260K (tiny story model)',
    url: hf('ggml-org/models-moved', '499bc8821c6b12b4e53c5bffcb21ec206f212d81', 'tinyllamas/stories260K.gguf'),
    sha256: '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d',
    bytes: 1_185_376,
    architecture: 'llama',
    quantization: 'F32',
    parameters: 260_000,
    license: 'MIT',
    shape: { dim: 64, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8, ffnDim: 172, vocabSize: 512, contextLength: 2048 },
  },
  'qwen3-0.6b-q4_k_m': {
    // Records that agree on commit, hash and size: a Yocto recipe (SRC_URI with sha256sum), two
    // Swift model manifests, a Rust installer, a browser tool's wllama model list, a model-card
    // table, an HTTP probe of the hub (x-repo-commit, x-linked-size, x-linked-etag); the same
    // bytes at the earlier commit 272676c9 in a Flutter app's pinned manifest.
    name: 'Qwen3 0.6B, Q4_K_M',
    url: hf('unsloth/Qwen3-0.6B-GGUF', '50968a4468ef4233ed78cd7c3de230dd1d61a56b', 'Qwen3-0.6B-Q4_K_M.gguf'),
    sha256: 'ac2d97712095a558e31573f62f466a3f9d93990898b0ec79d7c974c1780d524a',
    bytes: 396_705_472,
    architecture: 'qwen3',
    quantization: 'Q4_K_M',
    parameters: 600_000_000,
    license: 'Apache-2.0',
    shape: { dim: 1024, nLayers: 28, nHeads: 16, nKvHeads: 8, headDim: 128, ffnDim: 3072, vocabSize: 151_936, contextLength: 40_960 },
  },
  'qwen2.5-0.5b-instruct-q4_k_m': {
    name: 'Qwen2.5 0.5B Instruct, Q4_K_M',
    url: hf('Qwen/Qwen2.5-0.5B-Instruct-GGUF', '9217f5db79a29953eb74d5343926648285ec7e67', 'qwen2.5-0.5b-instruct-q4_k_m.gguf'),
    sha256: '74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db',
    bytes: 491_400_032,
    architecture: 'qwen2',
    quantization: 'Q4_K_M',
    parameters: 494_000_000,
    license: 'Apache-2.0',
    shape: { dim: 896, nLayers: 24, nHeads: 14, nKvHeads: 2, headDim: 64, ffnDim: 4864, vocabSize: 151_936, contextLength: 32_768 },
  },
  'qwen3.5-0.8b-q4_k_m': {
    // Records that agree on commit, hash and size: a Go model list, a shell fetch script with a
    // shasum check, an evaluation note of the publisher's blob metadata, a visual-candidate note;
    // an Android model list pins the URL at this commit with this size. Only 6 of its 24 layers
    // keep a KV cache (the rest are Gated DeltaNet with a small recurrent state), so the estimate,
    // which counts a KV cache for every layer, is an upper bound.
    name: 'Qwen3.5 0.8B, Q4_K_M',
    url: hf('unsloth/Qwen3.5-0.8B-GGUF', '6ab461498e2023f6e3c1baea90a8f0fe38ab64d0', 'Qwen3.5-0.8B-Q4_K_M.gguf'),
    sha256: 'bd258782e35f7f458f8aced1adc053e6e92e89bc735ba3be89d38a06121dc517',
    bytes: 532_517_120,
    architecture: 'qwen35',
    quantization: 'Q4_K_M',
    parameters: 800_000_000,
    license: 'Apache-2.0',
    shape: { dim: 1024, nLayers: 24, nHeads: 8, nKvHeads: 2, headDim: 256, ffnDim: 3584, vocabSize: 248_320, contextLength: 262_144 },
  },
  'google_gemma-3-1b-it-q4_k_m': {
    // Records that agree on commit, hash and size: two Swift apps' LocalLLMModelSpec, a Python
    // dictation app's LLM list, a JVM validation-case table, a download script, a Flutter app's
    // model policy and its test, an acceptance-evidence document.
    // Gemma 3's sliding-window layers keep a full-length KV cache here, so the estimate is exact.
    name: 'Gemma 3 1B Instruct, Q4_K_M',
    url: hf('bartowski/google_gemma-3-1b-it-GGUF', '116f76234503685a98f572982177b11d44ec8ff1', 'google_gemma-3-1b-it-Q4_K_M.gguf'),
    sha256: '12bf0fff8815d5f73a3c9b586bd8fee8e7b248c935de70dec367679873d0f29d',
    bytes: 806_058_496,
    architecture: 'gemma3',
    quantization: 'Q4_K_M',
    parameters: 1_000_000_000,
    license: 'Gemma Terms of Use',
    shape: { dim: 1152, nLayers: 26, nHeads: 4, nKvHeads: 1, headDim: 256, ffnDim: 6912, vocabSize: 262_144, contextLength: 32_768 },
  },
  'llama-3.2-1b-instruct-q4_k_m': {
    name: 'Llama 3.2 1B Instruct, Q4_K_M',
    url: hf('bartowski/Llama-3.2-1B-Instruct-GGUF', '067b946cf014b7c697f3654f621d577a3e3afd1c', 'Llama-3.2-1B-Instruct-Q4_K_M.gguf'),
    sha256: '6f85a640a97cf2bf5b8e764087b1e83da0fdb51d7c9fab7d0fece9385611df83',
    bytes: 807_694_464,
    architecture: 'llama',
    quantization: 'Q4_K_M',
    parameters: 1_240_000_000,
    license: 'Llama 3.2 Community License',
    shape: { dim: 2048, nLayers: 16, nHeads: 32, nKvHeads: 8, headDim: 64, ffnDim: 8192, vocabSize: 128_256, contextLength: 131_072 },
  },
  'tinyllama-1.1b-chat-v1.0.q8_0': {
    name: 'TinyLlama 1.1B Chat v1.0, Q8_0',
    url: hf('TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF', '52e7645ba7c309695bec7ac98f4f005b139cf465', 'tinyllama-1.1b-chat-v1.0.Q8_0.gguf'),
    sha256: 'a4c9bb1dbaa372f6381a035fa5c02ef087aaa1ff1f843a56a22328114f03fc59',
    bytes: 1_170_781_568,
    architecture: 'llama',
    quantization: 'Q8_0',
    parameters: 1_100_000_000,
    license: 'Apache-2.0',
    shape: { dim: 2048, nLayers: 22, nHeads: 32, nKvHeads: 4, headDim: 64, ffnDim: 5632, vocabSize: 32_000, contextLength: 2048 },
  },
  'gemma-2-2b-it-q4_k_m': {
    name: 'Gemma 2 2B Instruct, Q4_K_M',
    url: hf('bartowski/gemma-2-2b-it-GGUF', '855f67caed130e1befc571b52bd181be2e858883', 'gemma-2-2b-it-Q4_K_M.gguf'),
    sha256: 'e0aee85060f168f0f2d8473d7ea41ce2f3230c1bc1374847505ea599288a7787',
    bytes: 1_708_582_752,
    architecture: 'gemma2',
    quantization: 'Q4_K_M',
    parameters: 2_610_000_000,
    license: 'Gemma Terms of Use',
    shape: { dim: 2304, nLayers: 26, nHeads: 8, nKvHeads: 4, headDim: 256, ffnDim: 9216, vocabSize: 256_000, contextLength: 8192 },
  },
  'smollm3-q4_k_m': {
    // Records that agree on commit, hash and size: a model-lock table, a Kotlin model registry, a
    // Python candidate list and its test, a JVM expected-model table, a TypeScript download lock,
    // an Expo app's loader, an acceptance-evidence document.
    name: 'SmolLM3 3B, Q4_K_M',
    url: hf('ggml-org/SmolLM3-3B-GGUF', '4965cb60b150737b68a0408c36aeefb65078f894', 'SmolLM3-Q4_K_M.gguf'),
    sha256: '8334b850b7bd46238c16b0c550df2138f0889bf433809008cc17a8b05761863e',
    bytes: 1_915_305_312,
    architecture: 'smollm3',
    quantization: 'Q4_K_M',
    parameters: 3_080_000_000,
    license: 'Apache-2.0',
    shape: { dim: 2048, nLayers: 36, nHeads: 16, nKvHeads: 4, headDim: 128, ffnDim: 11_008, vocabSize: 128_256, contextLength: 65_536 },
  },
  'phi-3.5-mini-instruct-q4_k_m': {
    name: 'Phi-3.5 mini Instruct, Q4_K_M',
    url: hf('bartowski/Phi-3.5-mini-instruct-GGUF', '6d70da17e749a471ccb62ade694486011a75cda3', 'Phi-3.5-mini-instruct-Q4_K_M.gguf'),
    sha256: 'e4165e3a71af97f1b4820da61079826d8752a2088e313af0c7d346796c38eff5',
    bytes: 2_393_232_672,
    architecture: 'phi3',
    quantization: 'Q4_K_M',
    parameters: 3_820_000_000,
    license: 'MIT',
    // 32 KV heads (no grouped-query attention): its KV cache is larger than its weights at 4096.
    shape: { dim: 3072, nLayers: 32, nHeads: 32, nKvHeads: 32, headDim: 96, ffnDim: 8192, vocabSize: 32_064, contextLength: 131_072 },
  },
  'microsoft_phi-4-mini-instruct-q4_k_m': {
    // Records that agree on commit, hash and size: a Flutter app's model policy and its test, a
    // deployment log that downloaded and verified this snapshot; the same hash and size at the
    // bartowski commits 7ff82c2a and 915429cb and in several manifests at main.
    name: 'Phi-4 mini Instruct, Q4_K_M',
    url: hf('bartowski/microsoft_Phi-4-mini-instruct-GGUF', 'faffc28d86d0c0781b4ec92d30e400a6d350a53b', 'microsoft_Phi-4-mini-instruct-Q4_K_M.gguf'),
    sha256: '01999f17c39cc3074afae5e9c539bc82d45f2dd7faa3917c66cbef76fce8c0c2',
    bytes: 2_491_874_688,
    architecture: 'phi3',
    quantization: 'Q4_K_M',
    parameters: 3_840_000_000,
    license: 'MIT',
    shape: { dim: 3072, nLayers: 32, nHeads: 24, nKvHeads: 8, headDim: 128, ffnDim: 8192, vocabSize: 200_064, contextLength: 131_072 },
  },
  'gemma-4-e2b-it-q4_k_m': {
    // Records that agree on commit and hash (three also on size): a TypeScript model recipe, a C#
    // model list, an install script's tier table, an embedded-AI document linking this revision.
    // Its widths vary by layer (heads of 256 and 512, FFNs of 6144 and 12288; 20 of its 35 layers
    // share an earlier layer's KV cache) and its per-layer embedding table (about 1.3 GB) stays
    // in CPU memory: the shape gives the largest values, so the GPU estimate is an upper bound.
    name: 'Gemma 4 E2B Instruct, Q4_K_M',
    url: hf('unsloth/gemma-4-E2B-it-GGUF', '0314792d7f1f7e229411f620751375812bb9faf2', 'gemma-4-E2B-it-Q4_K_M.gguf'),
    sha256: '740185b21d22ceb83a11c3aa62ad5842ef32c70f6096d756bbee85a1e4ec34b8',
    bytes: 3_106_738_272,
    architecture: 'gemma4',
    quantization: 'Q4_K_M',
    parameters: 5_100_000_000,
    license: 'Apache-2.0',
    shape: { dim: 1536, nLayers: 35, nHeads: 8, nKvHeads: 1, headDim: 512, ffnDim: 12_288, vocabSize: 262_144, contextLength: 131_072 },
  },
} satisfies Record<string, Entry>;

/** The ids of the catalogued models. */
export type ModelId = keyof typeof CATALOG;

/** The catalogue by id, smallest first; `engine.load(MODELS['qwen2.5-0.5b-instruct-q4_k_m'])`. */
export const MODELS = Object.freeze(Object.fromEntries(
  Object.entries(CATALOG).map(([id, m]) => [id, entry(id, m)]),
)) as Readonly<Record<ModelId, CatalogModel>>;
