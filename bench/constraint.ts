/**
 * `npx tsx --import ./scripts/register-wgsl.mjs bench/constraint.ts`: constrained decoding's costs. (1) XGrammar on the CPU: the
 * one-time vocabulary setup, the schema compile, and the time to compute one token's mask, at
 * 32k (Llama 2), 128k (Llama 3) and ~152k (Llama 3's vocabulary extended to Qwen2's size) tokens,
 * over random walks through a JSON schema. (2) Decode tok/s on the GPU with and without a schema,
 * and the time XGrammar takes for each decoded token's mask, on generated models of width 64 and
 * one layer with 32k and 151,936-token vocabularies, so the mask is not hidden behind the logits
 * (--model FILE instead: that model alone).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { makeModel } from '../scripts/make-model.js';
import { parseArgs } from 'node:util';
import { generate } from '../src/generate.js';
import { GrammarEngine } from '../src/grammar/constraint.js';
import { useXGrammarLoader } from '../src/grammar/xgrammar.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { fileSource } from '../src/node/file-source.js';
import { loadModelFile } from '../src/node/load.js';
import { loadXGrammarInNode } from '../src/node/xgrammar.js';
import { BYTE_LEVEL_CHARS, GGUFTokenizer } from '../src/tokenizer/tokenizer.js';

const MODELS = new URL('../../shared/models/', import.meta.url).pathname;
const { values } = parseArgs({ options: { model: { type: 'string' }, tokens: { type: 'string' }, only: { type: 'string' } } });
/** --only xgrammar|baseline|decode runs one part. */
const run = (part: string) => values.only === undefined || values.only === part;
useXGrammarLoader(loadXGrammarInNode);

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 },
    age: { type: 'integer' },
    tags: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, maxItems: 4 },
    address: { type: 'object', properties: { city: { type: 'string', maxLength: 30 }, zip: { type: ['string', 'null'], maxLength: 10 } }, required: ['city', 'zip'] },
    ok: { type: 'boolean' },
  },
  required: ['name', 'age', 'tags', 'address', 'ok'],
  additionalProperties: false,
};

async function vocabTokenizer(file: string): Promise<GGUFTokenizer> {
  const source = await fileSource(file);
  try {
    return GGUFTokenizer.fromGGUF(await readGGUF(source));
  } finally {
    await source.close();
  }
}

function llama3(extendTo?: number): GGUFTokenizer {
  const encoder = JSON.parse(readFileSync(`${MODELS}tokenizers/llama3/encoder.json`, 'utf8')) as Record<string, number>;
  const merges = readFileSync(`${MODELS}tokenizers/llama3/vocab.bpe`, 'utf8').split('\n').filter((l) => l && !l.startsWith('#version'));
  const tokens: string[] = [];
  for (const [s, id] of Object.entries(encoder)) tokens[id] = s;
  // Extra tokens made of two existing ones, as a larger BPE vocabulary would add.
  for (let i = 0; extendTo && tokens.length < extendTo; i++) tokens.push(`${tokens[1000 + (i % 50000)]}${tokens[2000 + ((i * 7919) % 60000)]}`);
  return new GGUFTokenizer({ model: 'gpt2', pre: 'llama-bpe', tokens: [...new Set(tokens)], merges });
}

const ms = (t0: number) => performance.now() - t0;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function maskCosts(label: string, tok: GGUFTokenizer) {
  let t0 = performance.now();
  const engine = await GrammarEngine.for(tok, tok.vocabSize);
  const setup = ms(t0);
  t0 = performance.now();
  const first = await engine.constraint({ type: 'json_schema', schema: SCHEMA });
  const compile = ms(t0);
  first.dispose();
  const times: number[] = [];
  let seed = 1;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let walk = 0; walk < 20; walk++) {
    const c = await engine.constraint({ type: 'json_schema', schema: SCHEMA });
    for (let step = 0; step < 200 && !c.finished; step++) {
      const t = performance.now();
      const mask = await c.allowedTokens();
      times.push(ms(t));
      const allowed: number[] = [];
      for (let i = 0; i < tok.vocabSize; i++) if ((mask[i >> 5]! >>> (i & 31)) & 1) allowed.push(i);
      if (!allowed.length) break; // complete, and this vocabulary has no end token
      c.accept(rand() < 0.5 ? allowed[0]! : allowed[Math.floor(rand() * allowed.length)]!);
    }
    c.dispose();
  }
  console.log(
    `${label}: ${tok.vocabSize} tokens; setup ${setup.toFixed(0)} ms, schema compile ${compile.toFixed(0)} ms; ` +
      `mask per token (${times.length} masks) median ${quantile(times, 0.5).toFixed(3)} ms, p90 ${quantile(times, 0.9).toFixed(3)} ms, p99 ${quantile(times, 0.99).toFixed(2)} ms, max ${Math.max(...times).toFixed(2)} ms`,
  );
}

/**
 * The baseline for writing our own matcher in TypeScript: one mask computed by walking a trie of
 * the vocabulary's bytes through a JSON-string automaton (inside a string: any byte but '"', '\\'
 * and controls; an escape takes one of its letters), the state where most tokens are allowed and
 * so the walk visits the most nodes; grammar stacks, which a real matcher adds, are left out.
 */
function trieBaseline(label: string, tok: GGUFTokenizer) {
  const { model, tokens } = tok.spec;
  const fromByteLevel = new Map(BYTE_LEVEL_CHARS.map((c, b) => [c, b]));
  const bytesOf = (t: string): number[] => {
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
    if (model === 'llama' && byte) return [parseInt(byte[1]!, 16)];
    if (model === 'gpt2') return [...t].map((c) => fromByteLevel.get(c) ?? 0x20);
    return [...new TextEncoder().encode(t.replaceAll('\u2581', ' '))];
  };
  // The trie: per node, its children by byte and the tokens ending there.
  const children: Map<number, number>[] = [new Map()];
  const ends: number[][] = [[]];
  for (const [id, t] of tokens.entries()) {
    let node = 0;
    for (const b of bytesOf(t)) {
      let next = children[node]!.get(b);
      if (next === undefined) {
        next = children.length;
        children.push(new Map());
        ends.push([]);
        children[node]!.set(b, next);
      }
      node = next;
    }
    ends[node]!.push(id);
  }
  // States: 0 in a string, 1 after a backslash, 2 after the closing quote (then only ',' '}' ' ').
  const step = (state: number, b: number): number => {
    if (state === 0) return b === 0x22 ? 2 : b === 0x5c ? 1 : b < 0x20 ? -1 : 0;
    if (state === 1) return '"\\/bfnrt'.includes(String.fromCharCode(b)) ? 0 : -1;
    return b === 0x2c || b === 0x7d || b === 0x20 ? 3 : -1;
  };
  const mask = new Uint32Array(Math.ceil(tokens.length / 32));
  const walk = (node: number, state: number) => {
    for (const id of ends[node]!) mask[id >> 5]! |= 1 << (id & 31);
    for (const [b, child] of children[node]!) {
      const next = state === 3 ? -1 : step(state, b);
      if (next >= 0) walk(child, next);
    }
  };
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    mask.fill(0);
    const t0 = performance.now();
    walk(0, 0);
    times.push(ms(t0));
  }
  console.log(`${label}: a TypeScript trie walk (${children.length} nodes), one mask inside a JSON string: median ${quantile(times, 0.5).toFixed(2)} ms`);
}

if (run('xgrammar')) {
  await maskCosts('Llama 2 (SentencePiece, byte fallback)', await vocabTokenizer(`${MODELS}tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf`));
  await maskCosts('Llama 3 (byte-level BPE)', llama3());
  await maskCosts('Llama 3 extended to 151,936 (byte-level BPE)', llama3(151_936));
}

if (run('baseline')) {
  trieBaseline('Llama 2', await vocabTokenizer(`${MODELS}tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf`));
  trieBaseline('Llama 3 extended to 151,936', llama3(151_936));
}

const n = Number(values.tokens ?? 64);
if (!run('decode')) process.exit(0);
const generated = [
  { label: '32,000 (Llama 2 SentencePiece; width 64, 1 layer, q4_0)', arch: 'llama', shape: 'tiny-64-32k' },
  { label: '151,936 (GPT-2 BPE padded to Qwen2\'s size; width 64, 1 layer, q4_0)', arch: 'qwen2', shape: 'tiny-64-152k' },
] as const;
for (const m of values.model ? [{ label: values.model, path: values.model }] : generated) {
  let path: string;
  if ('path' in m) path = m.path;
  else {
    path = `${tmpdir()}/constraint-bench-${m.shape}.gguf`;
    writeFileSync(path, await makeModel({ arch: m.arch, shape: m.shape, quant: 'q4_0' }));
  }
  await decodeRates(m.label, path);
  if (!('path' in m)) rmSync(path);
}
process.exit(0);

/** Decode tok/s with and without a JSON schema (greedy, the schema's string never ends), and the mask time per token. */
async function decodeRates(label: string, path: string) {
  const { model, tokenizer, gpu, dispose } = await loadModelFile(path, { contextLength: 512 });
  try {
    const prompt = tokenizer.encode('Once upon a time');
    const engine = await GrammarEngine.for(tokenizer, model.config.vocabSize);
    const maskTimes: number[] = [];
    const rate = async (constrained: boolean) => {
      const constraint = constrained ? await engine.constraint({ type: 'json_schema', schema: { type: 'object', properties: { text: { type: 'string', maxLength: 4000 } }, required: ['text'] } }) : undefined;
      if (constraint) {
        const allowed = constraint.allowedTokens.bind(constraint);
        constraint.allowedTokens = async () => {
          const t = performance.now();
          const mask = await allowed();
          maskTimes.push(ms(t));
          return mask;
        };
      }
      let count = 0;
      let t0 = 0;
      for await (const _ of generate(model, tokenizer, prompt, { temperature: 0, maxTokens: n, ignoreEos: true, constraint })) if (count++ === 0) t0 = performance.now();
      constraint?.dispose();
      return (count - 1) / (ms(t0) / 1000);
    };
    await rate(false);
    await rate(true);
    maskTimes.length = 0;
    const plain = await rate(false);
    const constrained = await rate(true);
    console.log(
      `decode on ${gpu.adapterName}, ${label}: ${plain.toFixed(1)} tok/s unconstrained, ${constrained.toFixed(1)} tok/s with a JSON schema (${n} tokens, greedy); ` +
        `mask per token median ${quantile(maskTimes, 0.5).toFixed(3)} ms, p90 ${quantile(maskTimes, 0.9).toFixed(3)} ms, max ${Math.max(...maskTimes).toFixed(2)} ms`,
    );
  } finally {
    await dispose();
  }
}
