import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { WebGGUFError, type ErrorCode } from '../src/errors.js';
import { GGMLType } from '../src/gguf/ggml-types.js';
import { readGGUF, readTensorChunks, type GGUFFile } from '../src/gguf/gguf.js';
import { typed, writeGGUF, type TensorToWrite } from '../src/gguf/writer.js';
import { bytesSource } from '../src/io/byte-source.js';
import { readConfig } from '../src/model/config.js';
import { formatFor } from '../src/quant/formats.js';
import { GGUFTokenizer } from '../src/tokenizer/tokenizer.js';
import { makeModel, TINY_SHAPES } from '../scripts/make-model.js';
import { HAVE_MODELS, STORIES, storiesPath } from './helpers/models.js';

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<WebGGUFError> {
  const e = await promise.then(() => null, (x: unknown) => x);
  expect(e, `expected a ${code} error`).toBeInstanceOf(WebGGUFError);
  expect((e as WebGGUFError).code).toBe(code);
  expect((e as WebGGUFError).message.length).toBeGreaterThan(10);
  return e as WebGGUFError;
}

/** Parses a GGUF and validates it the way a model load does: config, shapes, types, tokenizer. */
async function validate(bytes: Uint8Array): Promise<GGUFFile> {
  const file = await readGGUF(bytesSource(bytes, 'test.gguf'));
  readConfig(file);
  for (const t of file.tensors) formatFor(t.type, t.name);
  GGUFTokenizer.fromGGUF(file);
  return file;
}

async function tensorsOf(file: GGUFFile): Promise<TensorToWrite[]> {
  const out: TensorToWrite[] = [];
  for (const t of file.tensors) {
    const data = new Uint8Array(t.byteSize);
    let at = 0;
    for await (const c of readTensorChunks(file, t)) {
      data.set(c, at);
      at += c.byteLength;
    }
    out.push({ name: t.name, dims: t.dims, type: t.type, data });
  }
  return out;
}

describe.skipIf(!HAVE_MODELS)('GGUF reader', () => {
  const f32 = () => new Uint8Array(readFileSync(storiesPath('f32')));

  test('reads stories260K: metadata, tensors, alignment', async () => {
    const file = await validate(f32());
    expect(file.version).toBe(3);
    expect(file.metadata.get('general.architecture')).toBe('llama');
    expect(file.tensors).toHaveLength(48);
    expect(file.dataOffset % file.alignment).toBe(0);
    const c = readConfig(file);
    expect(c).toMatchObject({ dim: 64, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8, ffnDim: 172, vocabSize: 512, tiedOutput: false });
  });

  test('a file written back from what was read reads the same', async () => {
    const file = await readGGUF(bytesSource(f32()));
    const bytes = writeGGUF([...file.metadata].map(([k, v]) => [k, typed(v)]), await tensorsOf(file));
    const again = await validate(bytes);
    expect(again.tensors.map((t) => [t.name, t.dims, t.type])).toEqual(file.tensors.map((t) => [t.name, t.dims, t.type]));
    expect(again.metadata.get('tokenizer.ggml.tokens')).toEqual(file.metadata.get('tokenizer.ggml.tokens'));
  });

  test('GGUF v1 is rejected as an unsupported version', async () => {
    const v1 = new Uint8Array(readFileSync(`${STORIES}original/tinyllamas-stories-260k-f32.gguf`));
    const e = await expectCode(validate(v1), 'unsupported-version');
    expect(e.message).toMatch(/version 1/);
  });

  test('not a GGUF: empty, HTML, random bytes', async () => {
    await expectCode(validate(new Uint8Array(0)), 'not-gguf');
    await expectCode(validate(new TextEncoder().encode('<!doctype html><title>404</title>')), 'not-gguf');
    await expectCode(validate(new Uint8Array(1000).fill(7)), 'not-gguf');
  });

  test('truncated anywhere: header, metadata, tensor infos, tensor data', async () => {
    const bytes = f32();
    const file = await readGGUF(bytesSource(bytes));
    for (const cut of [5, 12, 30, 200, 5000, file.dataOffset - 3, file.dataOffset + 100, bytes.length - 1]) {
      await expectCode(validate(bytes.subarray(0, cut)), 'truncated');
    }
  });

  test('counts and lengths that lie are refused before allocating', async () => {
    const patch = (at: number, value: bigint) => {
      const b = f32();
      new DataView(b.buffer).setBigUint64(at, value, true);
      return b;
    };
    await expectCode(validate(patch(8, 1n << 40n)), 'truncated'); // tensor count
    await expectCode(validate(patch(16, 1n << 40n)), 'truncated'); // metadata count
    await expectCode(validate(patch(24, 1n << 50n)), 'truncated'); // first key's length
    await expectCode(validate(patch(24, 1n << 62n)), 'malformed'); // beyond 2^53
  });

  describe('semantic problems', () => {
    async function mutate(edit: (meta: Map<string, unknown>, tensors: TensorToWrite[]) => TensorToWrite[] | void): Promise<Uint8Array> {
      const file = await readGGUF(bytesSource(f32()));
      const meta = new Map<string, unknown>(file.metadata);
      let tensors = await tensorsOf(file);
      tensors = edit(meta, tensors) ?? tensors;
      return writeGGUF([...meta].map(([k, v]) => [k, typed(v as never)]), tensors);
    }

    test('unsupported architecture names the supported ones', async () => {
      const e = await expectCode(validate(await mutate((m) => void m.set('general.architecture', 'mamba'))), 'unsupported-architecture');
      expect(e.message).toMatch(/mamba.*llama/);
      expect(e.message).toMatch(/qwen3.*smollm3/);
    });
    test('what an architecture needs is required: Gemma 3 its sliding window, Qwen 3 its q/k norms', async () => {
      const edited = async (arch: 'gemma3' | 'qwen3', edit: (meta: Map<string, unknown>, tensors: TensorToWrite[]) => TensorToWrite[] | void) => {
        const file = await readGGUF(bytesSource(await makeModel({ arch, shape: TINY_SHAPES[arch], quant: 'f32' })));
        const meta = new Map<string, unknown>(file.metadata);
        let tensors = await tensorsOf(file);
        tensors = edit(meta, tensors) ?? tensors;
        return writeGGUF([...meta].map(([k, v]) => [k, typed(v as never)]), tensors);
      };
      await validate(await edited('gemma3', () => undefined));
      const e = await expectCode(validate(await edited('gemma3', (m) => void m.delete('gemma3.attention.sliding_window'))), 'malformed');
      expect(e.message).toMatch(/sliding_window/);
      await expectCode(validate(await edited('qwen3', (_, t) => t.filter((x) => x.name !== 'blk.1.attn_k_norm.weight'))), 'missing-tensor');
    });
    test("Qwen3.5: its MoE variant is refused by name; its DeltaNet keys and tensors are required and checked", async () => {
      const file = await readGGUF(bytesSource(await makeModel({ arch: 'qwen35', shape: TINY_SHAPES.qwen35, quant: 'f32' })));
      const edited = async (edit: (meta: Map<string, unknown>, tensors: TensorToWrite[]) => TensorToWrite[] | void) => {
        const meta = new Map<string, unknown>(file.metadata);
        let tensors = await tensorsOf(file);
        tensors = edit(meta, tensors) ?? tensors;
        return writeGGUF([...meta].map(([k, v]) => [k, typed(v as never)]), tensors);
      };
      await validate(await edited(() => undefined));
      const moe = await expectCode(validate(await edited((m) => void m.set('general.architecture', 'qwen35moe'))), 'unsupported-architecture');
      expect(moe.message).toMatch(/qwen35moe.*mixture-of-experts.*not supported/);
      await expectCode(validate(await edited((m) => void m.delete('qwen35.ssm.state_size'))), 'malformed');
      await expectCode(validate(await edited((_, t) => t.filter((x) => x.name !== 'blk.0.ssm_a'))), 'missing-tensor');
      // Layer 3 is the full-attention one (interval 4): its q projection holds the output gate too.
      await expectCode(validate(await edited((_, t) => t.filter((x) => x.name !== 'blk.3.attn_q_norm.weight'))), 'missing-tensor');
      await expectCode(validate(await edited((m) => void m.set('qwen35.full_attention_interval', 2))), 'missing-tensor');
      await expectCode(validate(await edited((m) => void m.set('qwen35.ssm.inner_size', 128))), 'shape-mismatch');
    });
    test('missing tensor', async () => {
      await expectCode(validate(await mutate((_, t) => t.filter((x) => x.name !== 'blk.3.ffn_up.weight'))), 'missing-tensor');
    });
    test('shape mismatch', async () => {
      const bytes = await mutate((m) => void m.set('llama.feed_forward_length', 100));
      await expectCode(validate(bytes), 'shape-mismatch');
    });
    test('a vocabulary with more tokens than embedding rows', async () => {
      const bytes = await mutate((m) => {
        m.set('tokenizer.ggml.tokens', [...(m.get('tokenizer.ggml.tokens') as string[]), 'extra']);
        m.set('tokenizer.ggml.scores', Float32Array.from([...(m.get('tokenizer.ggml.scores') as Float32Array), 0]));
        m.set('tokenizer.ggml.token_type', Int32Array.from([...(m.get('tokenizer.ggml.token_type') as Int32Array), 1]));
      });
      const e = await expectCode(validate(bytes), 'shape-mismatch');
      expect(e.message).toMatch(/513 tokens.*512 rows/);
    });
    test('unsupported and unknown tensor types', async () => {
      const q2k = await mutate((_, t) => t.map((x) => (x.name === 'blk.0.attn_q.weight' ? { ...x, type: GGMLType.Q2_K, data: new Uint8Array(16 * 84) } : x)));
      const e = await expectCode(validate(q2k), 'unsupported-tensor-type');
      expect(e.message).toMatch(/Q2_K.*supported: .*Q4_K/);
      const unknown = f32();
      const file = await readGGUF(bytesSource(unknown));
      // Patch the type field of the first tensor info: it sits right before its u64 offset.
      const name = new TextEncoder().encode(file.tensors[0]!.name);
      let at = 0;
      for (let i = 0; i < unknown.length; i++) {
        if (name.every((b, j) => unknown[i + j] === b)) { at = i + name.length; break; }
      }
      const typeAt = at + 4 + 8 * file.tensors[0]!.dims.length;
      new DataView(unknown.buffer).setUint32(typeAt, 99, true);
      await expectCode(validate(unknown), 'unsupported-tensor-type');
    });
    test('misaligned tensor offsets', async () => {
      const file = await readGGUF(bytesSource(f32()));
      const bytes = writeGGUF([...file.metadata].map(([k, v]) => [k, typed(v)]), await tensorsOf(file), 32);
      const view = new DataView(bytes.buffer);
      // Find the second tensor's offset (a multiple of 32) and add 4.
      const t = await readGGUF(bytesSource(bytes));
      const name = new TextEncoder().encode(t.tensors[1]!.name);
      for (let i = 0; i < bytes.length; i++) {
        if (name.every((b, j) => bytes[i + j] === b)) {
          const offAt = i + name.length + 4 + 8 * t.tensors[1]!.dims.length + 4;
          view.setBigUint64(offAt, view.getBigUint64(offAt, true) + 4n, true);
          break;
        }
      }
      await expectCode(validate(bytes), 'malformed');
    });
  });
});

describe.skipIf(!HAVE_MODELS)('byte sources', () => {
  test('a Blob reads like the file, in bounded slices', async () => {
    const bytes = new Uint8Array(readFileSync(storiesPath('q4_0')));
    const { blobSource } = await import('../src/io/byte-source.js');
    const file = await readGGUF(blobSource(new Blob([bytes]), 'q4_0.gguf'));
    const fromBytes = await readGGUF(bytesSource(bytes));
    expect(file.tensors).toEqual(fromBytes.tensors);
    const t = file.tensors[3]!;
    const chunks: Uint8Array[] = [];
    for await (const c of readTensorChunks(file, t, 100)) {
      expect(c.byteLength).toBeLessThanOrEqual(100);
      chunks.push(c);
    }
    const joined = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
    chunks.reduce((at, c) => (joined.set(c, at), at + c.byteLength), 0);
    expect(joined).toEqual(bytes.subarray(file.dataOffset + t.offset, file.dataOffset + t.offset + t.byteSize));
  });
});
