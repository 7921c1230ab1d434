import { parseArgs } from 'node:util';
import { isWebGGUFError, WebGGUFError } from '../errors.js';
import { generate } from '../generate.js';
import { bench, followupBench, gemvBench } from '../node/bench.js';
import { nodeGpuContext } from '../node/gpu.js';
import { loadModelFile, openGGUF } from '../node/load.js';
import { GPU_WEIGHT_KINDS, type GpuWeightKind } from '../quant/formats.js';
import { GGUFTokenizer } from '../tokenizer/tokenizer.js';

const USAGE = `usage:
  webgguf generate --model FILE --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
                      [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--json] [--verbose]
  webgguf tokenize --model FILE --text TEXT [--no-bos] [--json] [--verbose]
  webgguf bench --model FILE [--prompt-tokens N] [--gen-tokens N] [--runs N] [--followup N,N,...] [--json] [--verbose]
  webgguf bench-gemv [--kinds q4_0,q8_0,...] [--json]
                      (the decode GEMV at TinyLlama 1.1B shapes vs the read probe; Q4_0 and Q8_0
                      unless --kinds names others)`;

const OPTIONS = {
  model: { type: 'string' },
  prompt: { type: 'string' },
  text: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'min-p': { type: 'string' },
  'repeat-penalty': { type: 'string' },
  seed: { type: 'string' },
  'no-bos': { type: 'boolean' },
  'prompt-tokens': { type: 'string' },
  'gen-tokens': { type: 'string' },
  runs: { type: 'string' },
  kinds: { type: 'string' },
  followup: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function usageError(message: string): never {
  throw new WebGGUFError('invalid-argument', `${message}\n${USAGE}`);
}

function numberFlag(values: Values, name: keyof Values, integer = false): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    usageError(`--${name} expects ${integer ? 'an integer' : 'a number'}, got "${String(raw)}"`);
  }
  return n;
}

async function generateCommand(values: Values): Promise<void> {
  if (!values.model) usageError('--model is required');
  const loaded = await loadModelFile(values.model);
  try {
    const { model, tokenizer } = loaded;
    const prompt = tokenizer.encode(values.prompt ?? '', { addBos: values['no-bos'] ? false : undefined });
    const stream = generate(model, tokenizer, prompt, {
      maxTokens: numberFlag(values, 'max-tokens', true) ?? 256,
      temperature: numberFlag(values, 'temperature'),
      topK: numberFlag(values, 'top-k', true),
      topP: numberFlag(values, 'top-p'),
      minP: numberFlag(values, 'min-p'),
      repetitionPenalty: numberFlag(values, 'repeat-penalty'),
      seed: numberFlag(values, 'seed', true),
    });
    const tokens: number[] = [];
    let text = '';
    for await (const piece of stream) {
      tokens.push(piece.token);
      text += piece.text;
      if (!values.json) process.stdout.write(piece.text);
    }
    if (values.json) process.stdout.write(JSON.stringify({ prompt_tokens: prompt, tokens, text }) + '\n');
    else process.stdout.write('\n');
  } finally {
    await loaded.dispose();
  }
}

async function tokenizeCommand(values: Values): Promise<void> {
  if (!values.model) usageError('--model is required');
  if (values.text === undefined) usageError('--text is required');
  const { file, close } = await openGGUF(values.model);
  try {
    const tokens = GGUFTokenizer.fromGGUF(file).encode(values.text, { addBos: values['no-bos'] ? false : undefined });
    process.stdout.write(values.json ? JSON.stringify({ tokens }) + '\n' : tokens.join(' ') + '\n');
  } finally {
    await close();
  }
}

async function benchCommand(values: Values): Promise<void> {
  if (!values.model) usageError('--model is required');
  const result = await bench(
    values.model,
    numberFlag(values, 'prompt-tokens', true) ?? 128,
    numberFlag(values, 'gen-tokens', true) ?? 64,
    numberFlag(values, 'runs', true) ?? 3,
  );
  // --followup 64,256: follow-up chat turns after histories of about these many words.
  const histories = values.followup?.split(',').map((v) => Number(v));
  if (histories?.some((h) => !Number.isInteger(h) || h < 1)) usageError(`--followup expects a list of word counts, got "${values.followup}"`);
  const followup = histories ? await followupBench(values.model, histories) : undefined;
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...result, ...(followup ? { followup } : {}) }) + '\n');
    return;
  }
  const r = result;
  process.stdout.write(
    `${r.model} on ${r.adapter}\n` +
      `  decode   ${r.decode_tok_s.toFixed(2)} tok/s (min ${r.decode_tok_s_min.toFixed(2)}, max ${r.decode_tok_s_max.toFixed(2)}), ${r.dispatches_per_token} dispatches/token\n` +
      `  prefill  ${r.prefill_tok_s.toFixed(1)} tok/s, time to first token ${r.ttft_ms.toFixed(1)} ms (${r.prompt_tokens} tokens)\n` +
      `  memory   ${(r.weight_bytes_per_token / 1e6).toFixed(2)} MB read per token; ${(r.gpu_bytes / 2 ** 20).toFixed(1)} MiB on the GPU (peak ${(r.peak_gpu_bytes / 2 ** 20).toFixed(1)}, ${(100 * r.peak_overhead_fraction).toFixed(1)}% over weights + KV cache)\n` +
      `  roofline ${r.decode_gb_s.toFixed(3)} GB/s of ${r.probe_read_gb_s.toFixed(2)} GB/s probed = ${(100 * r.roofline_fraction).toFixed(1)}%\n` +
      `  kernels  ${r.decode_workgroup ? `GPU decode GEMVs, workgroup ${r.decode_workgroup} (tuned)` : 'CPU-adapter decode GEMVs'}; sums over workgroups ${r.subgroups ? 'with subgroup operations' : 'through workgroup memory'}\n`,
  );
  for (const f of followup ?? []) {
    process.stdout.write(
      `  follow-up after ${f.history_tokens} tokens: ${f.new_tokens} new (${f.cached_tokens} reused), time to first token ${f.followup_ttft_ms.toFixed(1)} ms (first turn ${f.first_turn_ttft_ms.toFixed(1)} ms)\n`,
    );
  }
}

async function benchGemvCommand(values: Values): Promise<void> {
  const kinds = (values.kinds ?? 'q4_0,q8_0').split(',') as GpuWeightKind[];
  const unknown = kinds.filter((k) => !GPU_WEIGHT_KINDS.includes(k));
  if (unknown.length) usageError(`--kinds: unknown weight kind "${unknown[0]}" (known: ${GPU_WEIGHT_KINDS.join(', ')})`);
  const gpu = await nodeGpuContext();
  const r = await gemvBench(gpu, undefined, kinds);
  if (values.json) {
    process.stdout.write(JSON.stringify({ adapter: gpu.adapterName, shape: 'tinyllama-1.1b', ...r }) + '\n');
    return;
  }
  process.stdout.write(`decode GEMV on ${gpu.adapterName}, TinyLlama 1.1B layer shapes; read probe ${r.probe_read_gb_s.toFixed(2)} GB/s\n`);
  for (const k of r.results) {
    process.stdout.write(`  ${k.kind.padEnd(5)} ${k.kernel}${k.workgroup ? ` (workgroup ${k.workgroup})` : ''}: ${(k.bytes / 1e6).toFixed(1)} MB in ${k.ms.toFixed(1)} ms = ${k.gb_s.toFixed(3)} GB/s, ${(100 * k.fraction_of_probe).toFixed(1)}% of the probe\n`);
  }
}

export async function main(argv: string[]): Promise<number> {
  let verbose = argv.includes('--verbose');
  try {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    verbose = values.verbose === true;
    const command = positionals[0];
    if (values.help || !command) {
      process.stdout.write(USAGE + '\n');
      return values.help ? 0 : 2;
    }
    if (command === 'generate') await generateCommand(values);
    else if (command === 'tokenize') await tokenizeCommand(values);
    else if (command === 'bench') await benchCommand(values);
    else if (command === 'bench-gemv') await benchGemvCommand(values);
    else usageError(`unknown command "${command}"`);
    return 0;
  } catch (e) {
    const message = isWebGGUFError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    process.stderr.write(`webgguf: ${verbose ? (e as Error).stack ?? message : message.split('\n')[0]}\n`);
    if (!verbose && message.includes('\n')) process.stderr.write(message.slice(message.indexOf('\n') + 1) + '\n');
    return 1;
  }
}
