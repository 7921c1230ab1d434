import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { cosineSimilarity } from '../embeddings.js';
import { isWebGGUFError, WebGGUFError } from '../errors.js';
import { DEFAULT_SAMPLING, generate } from '../generate.js';
import { GrammarEngine, type Constraint } from '../grammar/constraint.js';
import { checkConstraintSpec, MAX_CONSTRAINT_CHARS, type ConstraintSpec } from '../grammar/spec.js';
import { bench, followupBench, gemvBench, headBench } from '../node/bench.js';
import { nodeGpuContext } from '../node/gpu.js';
import { loadModelFile, openGGUF } from '../node/load.js';
import { GPU_WEIGHT_KINDS, type GpuWeightKind } from '../quant/formats.js';
import { readPooling } from '../model/config.js';
import { isEncoder } from '../model/encoder.js';
import { GGUFTokenizer } from '../tokenizer/tokenizer.js';
import { DEFAULT_HOST, DEFAULT_MAX_PENDING, DEFAULT_PORT, serve } from '../node/serve.js';

const COMMANDS = {
  generate: { required: ['model', 'prompt'], about: 'continue a prompt' },
  tokenize: { required: ['model', 'text'], about: 'print the token ids of a text' },
  embed: { required: ['model', 'text'], about: 'print the embedding of each text (an embedding model: BERT), and their cosine similarities' },
  bench: { required: ['model'], about: 'time prefill and decode on random tokens (the median of --runs runs); an embedding model: inputs per second' },
  'bench-gemv': { required: [], about: 'time the decode GEMV alone at TinyLlama 1.1B layer shapes, against a read probe' },
  estimate: { required: ['model'], about: 'will it run here: GPU memory from the header, the fit, and the speed measured on this GPU' },
  serve: { required: ['model'], about: 'an OpenAI-compatible HTTP server (/v1/chat/completions, completions, embeddings, models)' },
} as const;
type Command = keyof typeof COMMANDS;

/** What a numeric flag accepts: integers or any finite number, from `min` (or above it) to `max`. */
interface Range {
  min: number;
  max?: number;
  aboveMin?: true;
  integer?: true;
}

interface Flag {
  type: 'string' | 'boolean';
  short?: string;
  /** The value's name in the usage text. */
  value?: string;
  /** Numeric flags: every value (each item, for a list) is checked against it before any work. */
  range?: Range;
  list?: true;
  /** The flag may be given several times (its values in order). */
  repeats?: true;
  /** The values a string flag accepts (checked before any work; shown as its value in the help). */
  choices?: readonly string[];
  default?: number;
  commands: readonly Command[];
  help: string;
}

const MODEL_COMMANDS = ['generate', 'tokenize', 'embed', 'bench', 'estimate', 'serve'] as const;
const DEFAULT_KINDS = 'q4_0,q8_0';

/** Every flag: how it parses, what it accepts, which commands take it, and its line of help. */
const FLAGS = {
  model: { type: 'string', short: 'm', value: 'FILE', commands: MODEL_COMMANDS, help: 'the GGUF model file (estimate: also an http(s) URL)' },
  prompt: { type: 'string', short: 'p', value: 'TEXT', commands: ['generate'], help: 'the text to continue ("" for the BOS token alone)' },
  'max-tokens': { type: 'string', short: 'n', value: 'N', range: { min: 1, integer: true }, default: 256, commands: ['generate'], help: 'the most tokens to generate' },
  temperature: { type: 'string', value: 'T', range: { min: 0 }, default: DEFAULT_SAMPLING.temperature, commands: ['generate'], help: '0 is greedy: always the likeliest token' },
  'top-k': { type: 'string', value: 'K', range: { min: 0, integer: true }, default: DEFAULT_SAMPLING.topK, commands: ['generate'], help: 'keep the K likeliest tokens; 0 keeps all' },
  'top-p': { type: 'string', value: 'P', range: { min: 0, aboveMin: true, max: 1 }, default: DEFAULT_SAMPLING.topP, commands: ['generate'], help: 'keep the likeliest tokens that make up P of the probability' },
  'min-p': { type: 'string', value: 'P', range: { min: 0, max: 1 }, default: DEFAULT_SAMPLING.minP, commands: ['generate'], help: 'drop tokens less likely than P times the likeliest one' },
  'repeat-penalty': { type: 'string', value: 'R', range: { min: 0, aboveMin: true }, default: DEFAULT_SAMPLING.repetitionPenalty, commands: ['generate'], help: 'penalty on repeating the last 64 tokens; 1 is none' },
  seed: { type: 'string', value: 'S', range: { min: 0, max: 2 ** 32 - 1, integer: true }, commands: ['generate'], help: 'makes sampling reproducible (random by default)' },
  'json-schema': { type: 'string', value: 'FILE', commands: ['generate'], help: 'the output must be JSON that validates against this JSON Schema file' },
  grammar: { type: 'string', value: 'FILE', commands: ['generate'], help: "the output must match this GBNF grammar file (llama.cpp's format, rule root)" },
  text: { type: 'string', value: 'TEXT', repeats: true, commands: ['tokenize', 'embed'], help: 'the text to tokenize, or (embed; repeatable) to embed' },
  dimensions: { type: 'string', value: 'N', range: { min: 1, integer: true }, commands: ['embed'], help: "keep the first N values of each vector, renormalized (Matryoshka models)" },
  'input-type': {
    type: 'string', value: 'query|document', choices: ['query', 'document'], commands: ['embed'],
    help: "the model family's query or document prefix before each text",
  },
  'no-bos': { type: 'boolean', commands: ['generate', 'tokenize'], help: 'do not add the BOS token' },
  'prompt-tokens': { type: 'string', value: 'N', range: { min: 1, integer: true }, default: 128, commands: ['bench', 'estimate'], help: 'prompt length' },
  context: { type: 'string', value: 'N', range: { min: 1, integer: true }, commands: ['estimate', 'serve'], help: "the context length (default the model's, capped at 4096)" },
  'max-gpu-bytes': { type: 'string', value: 'B', range: { min: 1, integer: true }, commands: ['estimate'], help: 'a GPU memory budget to check against (default none)' },
  'no-speed': { type: 'boolean', commands: ['estimate'], help: 'skip the speed measurement (memory and fit only)' },
  'gen-tokens': { type: 'string', value: 'N', range: { min: 1, integer: true }, default: 64, commands: ['bench'], help: 'tokens decoded per run' },
  inputs: { type: 'string', value: 'N', range: { min: 1, max: 256, integer: true }, default: 8, commands: ['bench'], help: 'embedding models: inputs of --prompt-tokens tokens per timed run' },
  runs: { type: 'string', value: 'N', range: { min: 1, integer: true }, default: 3, commands: ['bench'], help: 'timed runs after a warm-up' },
  followup: { type: 'string', value: 'N,N,...', range: { min: 1, integer: true }, list: true, commands: ['bench'], help: 'also time a follow-up chat turn after histories of N words' },
  'embedding-model': { type: 'string', value: 'FILE', commands: ['serve'], help: 'an embedding model (BERT) served beside a text --model, for /v1/embeddings' },
  host: { type: 'string', value: 'HOST', commands: ['serve'], help: `the address to listen on (default ${DEFAULT_HOST}: this machine only)` },
  port: { type: 'string', value: 'N', range: { min: 0, max: 65535, integer: true }, default: DEFAULT_PORT, commands: ['serve'], help: 'the port to listen on; 0 picks a free one' },
  'api-key': { type: 'string', value: 'K', commands: ['serve'], help: 'requests to /v1 must send "Authorization: Bearer K"' },
  'max-pending': { type: 'string', value: 'N', range: { min: 1, integer: true }, default: DEFAULT_MAX_PENDING, commands: ['serve'], help: 'requests a model may hold, running and queued; more get 429' },
  kinds: { type: 'string', value: 'K,K,...', commands: ['bench-gemv'], help: `the weight kinds to time (default ${DEFAULT_KINDS})` },
  vocab: { type: 'string', value: 'N,N,...', range: { min: 1, integer: true }, list: true, commands: ['bench-gemv'], help: 'also time the output head (Q6_K, 2048 wide) and the sampler at these vocabulary sizes' },
  json: { type: 'boolean', commands: (Object.keys(COMMANDS) as Command[]).filter((c) => c !== 'serve'), help: 'print the result as one line of JSON' },
  verbose: { type: 'boolean', commands: Object.keys(COMMANDS) as Command[], help: "print errors' stacks and every message of Dawn" },
  help: { type: 'boolean', short: 'h', commands: Object.keys(COMMANDS) as Command[], help: 'print this help' },
} as const satisfies Record<string, Flag>;
type FlagName = keyof typeof FLAGS;
type NumericFlag = { [K in FlagName]: (typeof FLAGS)[K] extends { range: Range } ? K : never }[FlagName];

function describeRange(r: Range): string {
  const what = r.integer ? 'an integer' : 'a number';
  if (r.max === undefined) return `${what} ${r.aboveMin ? '>' : '≥'} ${r.min}`;
  if (r.integer) return `${what} from ${r.min} to ${r.max}`;
  return `${what} in ${r.aboveMin ? '(' : '['}${r.min}, ${r.max}]`;
}

/** The flag's help: its text, range and default, a clause moved to the next line past 100 columns. */
function flagLine(name: FlagName): string {
  const f: Flag = FLAGS[name];
  const flag = `  ${f.short ? `-${f.short}, ` : '    '}--${name}${f.value ? ` ${f.value}` : ''}`;
  const left = flag.padEnd(27);
  const clauses = [f.range && `${f.list ? 'each ' : ''}${describeRange(f.range)}`, f.default !== undefined && `default ${f.default}`].filter((c): c is string => !!c);
  // A flag too long for the column has its help on the next line.
  const lines = flag.length < left.length ? [left + f.help] : [flag, ' '.repeat(left.length) + f.help];
  for (const clause of clauses) {
    if (lines.at(-1)!.length + clause.length + 2 > 100) lines.push(' '.repeat(left.length) + clause);
    else lines[lines.length - 1] += `; ${clause}`;
  }
  return lines.join('\n');
}

const SYNOPSIS = `usage:
  webgguf generate -m FILE -p TEXT [-n N] [--temperature T] [--top-k K] [--top-p P] [--min-p P]
                   [--repeat-penalty R] [--seed S] [--json-schema FILE | --grammar FILE] [--no-bos]
                   [--json]
  webgguf tokenize -m FILE --text TEXT [--no-bos] [--json]
  webgguf embed -m FILE --text TEXT [--text TEXT ...] [--input-type query|document]
                [--dimensions N] [--json]
  webgguf bench -m FILE [--prompt-tokens N] [--gen-tokens N] [--runs N] [--followup N,N,...]
                [--inputs N] [--json]
  webgguf bench-gemv [--kinds K,K,...] [--vocab N,N,...] [--json]
  webgguf estimate -m FILE|URL [--context N] [--prompt-tokens N] [--max-gpu-bytes B] [--no-speed]
                   [--json]
  webgguf serve -m FILE [--embedding-model FILE] [--host HOST] [--port N] [--api-key K]
                [--max-pending N] [--context N]`;

const HELP = `${SYNOPSIS}

commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(11)} ${c.about}`).join('\n')}

flags:
${(Object.keys(FLAGS) as FlagName[]).map(flagLine).join('\n')}

exit status: 0 on success, 1 when the command fails, 2 for a bad command line`;

/** A bad command line: exit status 2, with the synopsis. */
class UsageError extends WebGGUFError {
  constructor(message: string) {
    super('invalid-argument', message);
  }
}

interface Args {
  command: Command;
  values: { [K in FlagName]?: (typeof FLAGS)[K]['type'] extends 'boolean' ? boolean : string };
  /** Every value of the flags that repeat, in order. */
  texts: string[];
  /** Numeric flags, checked, with their defaults. */
  numbers: { [K in NumericFlag]?: number };
  /** List flags ("64,256"), each item checked. */
  lists: { [K in NumericFlag]?: number[] };
  kinds: GpuWeightKind[];
}

function parseNumber(name: NumericFlag, raw: string): number {
  const range: Range = FLAGS[name].range;
  const n = raw.trim() === '' ? NaN : Number(raw);
  const ok =
    Number.isFinite(n) &&
    (range.integer ? Number.isSafeInteger(n) : true) &&
    (range.aboveMin ? n > range.min : n >= range.min) &&
    (range.max === undefined || n <= range.max);
  if (!ok) throw new UsageError(`--${name} must be ${describeRange(range)}, got "${raw}"`);
  return n;
}

function weightKinds(list: string): GpuWeightKind[] {
  const kinds = list.split(',');
  const unknown = kinds.find((k) => !(GPU_WEIGHT_KINDS as readonly string[]).includes(k));
  if (unknown !== undefined) throw new UsageError(`--kinds: unknown weight kind "${unknown}" (known: ${GPU_WEIGHT_KINDS.join(', ')})`);
  return kinds as GpuWeightKind[];
}

/**
 * Checks the whole command line before any work starts. parseArgs runs non-strict, so a value
 * that starts with a dash ("--max-tokens -5", "-p -x") is taken as the value and reaches the
 * flag's own check; unknown flags and misplaced values are reported here.
 */
function parseCommandLine(argv: string[]): Args | 'help' {
  const options = Object.fromEntries(Object.entries(FLAGS).map(([name, f]: [string, Flag]) => [name, { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.repeats ? { multiple: true } : {}) }]));
  const { values, positionals, tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  if (values.help) return 'help';
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const flag: Flag | undefined = (FLAGS as Record<string, Flag>)[t.name];
    if (!flag) throw new UsageError(`unknown flag ${t.rawName}`);
    if (flag.type === 'string' && t.value === undefined) throw new UsageError(`${t.rawName} needs a value`);
    if (flag.type === 'boolean' && t.inlineValue) throw new UsageError(`${t.rawName} takes no value`);
  }
  const [command, ...extra] = positionals;
  if (command === undefined) throw new UsageError('no command given');
  if (!Object.hasOwn(COMMANDS, command)) throw new UsageError(`unknown command "${command}"`);
  const cmd = command as Command;
  if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}" (values that contain spaces need quotes)`);
  const texts = (values.text as string[] | undefined) ?? [];
  if (cmd !== 'embed' && texts.length > 1) throw new UsageError(`${cmd} takes one --text`);
  const args: Args = { command: cmd, values: { ...values, text: texts[0] } as Args['values'], texts, numbers: {}, lists: {}, kinds: [] };
  for (const name of Object.keys(values) as FlagName[]) {
    if (!(FLAGS[name].commands as readonly Command[]).includes(cmd)) throw new UsageError(`${cmd} takes no --${name}`);
  }
  for (const [name, flag] of Object.entries(FLAGS) as [FlagName, Flag][]) {
    const value = values[name];
    if (flag.choices && typeof value === 'string' && !flag.choices.includes(value)) throw new UsageError(`--${name} must be ${flag.choices.join(' or ')}, got "${value}"`);
  }
  for (const name of COMMANDS[cmd].required) {
    if (values[name] === undefined) throw new UsageError(`${cmd} needs --${name}`);
  }
  for (const [name, flag] of Object.entries(FLAGS) as [NumericFlag, Flag][]) {
    if (!flag.range || !flag.commands.includes(cmd)) continue;
    const raw = values[name] as string | undefined;
    if (flag.list) args.lists[name] = raw?.split(',').map((item) => parseNumber(name, item));
    else args.numbers[name] = raw === undefined ? flag.default : parseNumber(name, raw);
  }
  if (cmd === 'bench-gemv') args.kinds = weightKinds(args.values.kinds ?? DEFAULT_KINDS);
  if (values['json-schema'] !== undefined && values.grammar !== undefined) throw new UsageError('--json-schema and --grammar both constrain the output; give one');
  return args;
}

/** The constraint of --json-schema or --grammar, read and checked before the GPU starts. */
async function readConstraint(values: Args['values']): Promise<ConstraintSpec | undefined> {
  const flag = values['json-schema'] !== undefined ? 'json-schema' : values.grammar !== undefined ? 'grammar' : undefined;
  if (!flag) return undefined;
  const path = values[flag]!;
  const what = `--${flag} ${path}`;
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new WebGGUFError('invalid-argument', `${what}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, { cause: e });
  });
  if (!info.isFile()) throw new WebGGUFError('invalid-argument', `${what}: not a file`);
  if (info.size > MAX_CONSTRAINT_CHARS * 4) throw new WebGGUFError('invalid-argument', `${what}: over ${MAX_CONSTRAINT_CHARS} characters`);
  const text = await readFile(path, 'utf8');
  let spec: ConstraintSpec;
  if (flag === 'grammar') spec = { type: 'grammar', grammar: text };
  else {
    try {
      spec = { type: 'json_schema', schema: JSON.parse(text) as unknown };
    } catch (e) {
      throw new WebGGUFError('invalid-argument', `${what}: not JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e });
    }
  }
  checkConstraintSpec(spec, what);
  return spec;
}

/** A missing or unreadable model is reported by name before the GPU starts. */
async function checkModelFile(path: string, flag = '--model'): Promise<void> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new WebGGUFError('invalid-argument', `${flag} ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, { cause: e });
  });
  if (!info.isFile()) throw new WebGGUFError('invalid-argument', `${flag} ${path}: not a file`);
}

async function generateCommand({ values, numbers }: Args): Promise<void> {
  const spec = await readConstraint(values);
  const loaded = await loadModelFile(values.model!);
  let constraint: Constraint | undefined;
  try {
    const { model, tokenizer } = loaded;
    const prompt = tokenizer.encode(values.prompt!, { addBos: values['no-bos'] ? false : undefined });
    if (spec) constraint = await (await GrammarEngine.for(tokenizer, model.config.vocabSize)).constraint(spec);
    const stream = generate(model, tokenizer, prompt, {
      constraint,
      maxTokens: numbers['max-tokens'],
      temperature: numbers.temperature,
      topK: numbers['top-k'],
      topP: numbers['top-p'],
      minP: numbers['min-p'],
      repetitionPenalty: numbers['repeat-penalty'],
      seed: numbers.seed,
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
    constraint?.dispose();
    await loaded.dispose();
  }
}

async function tokenizeCommand({ values }: Args): Promise<void> {
  const { file, close } = await openGGUF(values.model!);
  try {
    const tokens = GGUFTokenizer.fromGGUF(file).encode(values.text!, { addBos: values['no-bos'] ? false : undefined });
    process.stdout.write(values.json ? JSON.stringify({ tokens }) + '\n' : tokens.join(' ') + '\n');
  } finally {
    await close();
  }
}

async function embedCommand({ values, numbers, texts }: Args): Promise<void> {
  const { createEngine } = await import('../node/index.js');
  const engine = await createEngine();
  try {
    await engine.load(values.model!);
    const inputType = values['input-type'] as 'query' | 'document' | undefined;
    const response = await engine.embeddings.create({ input: texts, dimensions: numbers.dimensions, input_type: inputType });
    if (values.json) {
      process.stdout.write(JSON.stringify(response) + '\n');
      return;
    }
    const vectors = response.data.map((d) => d.embedding as number[]);
    vectors.forEach((v, i) => process.stdout.write(`embedding ${i}: ${v.map((x) => x.toFixed(6)).join(' ')}\n`));
    if (vectors.length > 1) {
      process.stdout.write('cosine similarities:\n');
      for (const a of vectors) process.stdout.write(vectors.map((b) => cosineSimilarity(a, b).toFixed(3).padStart(7)).join('') + '\n');
    }
  } finally {
    await engine.dispose();
  }
}

async function benchCommand({ values, numbers, lists }: Args): Promise<void> {
  const model = values.model!;
  if (await isEmbeddingModel(model)) {
    const { embedBench } = await import('../node/embed-bench.js');
    const r = await embedBench(model, numbers['prompt-tokens']!, numbers.inputs!, numbers.runs!);
    process.stdout.write(values.json ? JSON.stringify(r) + '\n' : `${r.model} on ${r.adapter}\n  embed    ${r.inputs_per_s.toFixed(2)} inputs/s of ${r.input_tokens} tokens (${r.tokens_per_s.toFixed(1)} tok/s), ${r.inputs} inputs per run; ${(r.gpu_bytes / 2 ** 20).toFixed(1)} MiB on the GPU\n`);
    return;
  }
  const result = await bench(model, numbers['prompt-tokens']!, numbers['gen-tokens']!, numbers.runs!);
  // --followup 64,256: follow-up chat turns after histories of about these many words.
  const followup = lists.followup ? await followupBench(model, lists.followup) : undefined;
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...result, ...(followup ? { followup } : {}) }) + '\n');
    return;
  }
  const r = result;
  process.stdout.write(
    `${r.model} on ${r.adapter}\n` +
      `  decode   ${r.decode_tok_s.toFixed(2)} tok/s (min ${r.decode_tok_s_min.toFixed(2)}, max ${r.decode_tok_s_max.toFixed(2)}; predicted ${r.predicted_decode_tok_s.toFixed(2)}), ${r.dispatches_per_token} dispatches/token\n` +
      `  prefill  ${r.prefill_tok_s.toFixed(1)} tok/s (predicted ${r.predicted_prefill_tok_s.toFixed(1)}), time to first token ${r.ttft_ms.toFixed(1)} ms (${r.prompt_tokens} tokens)\n` +
      `  memory   ${(r.weight_bytes_per_token / 1e6).toFixed(2)} MB read per token; ${(r.gpu_bytes / 2 ** 20).toFixed(1)} MiB on the GPU (peak ${(r.peak_gpu_bytes / 2 ** 20).toFixed(1)}, ${(100 * r.peak_overhead_fraction).toFixed(1)}% over weights + KV cache); KV cache ${r.kv_cache}, ${r.kv_bytes_per_token} bytes per token\n` +
      `  roofline ${r.decode_gb_s.toFixed(3)} GB/s of ${r.probe_read_gb_s.toFixed(2)} GB/s probed = ${(100 * r.roofline_fraction).toFixed(1)}%\n` +
      `  kernels  ${r.decode_workgroup ? `GPU decode GEMVs, workgroup ${r.decode_workgroup} (tuned)` : 'CPU-adapter decode GEMVs'}; sums over workgroups ${r.subgroups ? 'with subgroup operations' : 'through workgroup memory'}\n`,
  );
  for (const f of followup ?? []) {
    process.stdout.write(
      `  follow-up after ${f.history_tokens} tokens: ${f.new_tokens} new (${f.cached_tokens} reused), time to first token ${f.followup_ttft_ms.toFixed(1)} ms (first turn ${f.first_turn_ttft_ms.toFixed(1)} ms)\n`,
    );
  }
}

async function benchGemvCommand({ values, kinds, lists }: Args): Promise<void> {
  const gpu = await nodeGpuContext();
  const r = await gemvBench(gpu, undefined, kinds);
  const head = lists.vocab ? await headBench(gpu, lists.vocab) : undefined;
  if (values.json) {
    process.stdout.write(JSON.stringify({ adapter: gpu.adapterName, shape: 'tinyllama-1.1b', ...r, ...(head ? { head } : {}) }) + '\n');
    return;
  }
  process.stdout.write(`decode GEMV on ${gpu.adapterName}, TinyLlama 1.1B layer shapes; read probe ${r.probe_read_gb_s.toFixed(2)} GB/s\n`);
  for (const k of r.results) {
    process.stdout.write(`  ${k.kind.padEnd(5)} ${k.kernel}${k.workgroup ? ` (workgroup ${k.workgroup})` : ''}: ${(k.bytes / 1e6).toFixed(1)} MB in ${k.ms.toFixed(1)} ms = ${k.gb_s.toFixed(3)} GB/s, ${(100 * k.fraction_of_probe).toFixed(1)}% of the probe\n`);
  }
  for (const h of head ?? []) {
    process.stdout.write(`  head   vocab ${h.vocab}: ${h.head_kind} output head ${h.head_ms.toFixed(1)} ms; sampler greedy ${h.sample_greedy_ms.toFixed(1)} ms, top-k/top-p ${h.sample_top_p_ms.toFixed(1)} ms; ${h.ns_per_token.toFixed(1)} ns per vocabulary entry\n`);
  }
}

async function estimateCommand({ values, numbers }: Args): Promise<void> {
  const { createEngine } = await import('../node/index.js');
  const engine = await createEngine({ maxGpuBytes: numbers['max-gpu-bytes'] ?? Infinity });
  try {
    const e = await engine.estimate(values.model!, { contextLength: numbers.context, promptTokens: numbers['prompt-tokens'], speed: !values['no-speed'] });
    if (values.json) {
      process.stdout.write(JSON.stringify(e) + '\n');
      return;
    }
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    process.stdout.write(
      `${e.model} (${e.architecture}, ${mib(e.fileBytes)}) at a context of ${e.contextLength}\n` +
        `  memory   ${mib(e.peakGpuBytes)} on the GPU: weights ${mib(e.weightBytes)}, context ${mib(e.contextBytes)}, work ${mib(e.workBytes)}; largest buffer ${mib(e.largestBufferBytes)}\n` +
        `  fits     ${e.fits ? 'yes' : `no: ${e.reasons.join('; ')}`}\n` +
        (e.speed
          ? `  speed    about ${e.speed.decodeTokS.toFixed(2)} tok/s decode, ${e.speed.prefillTokS.toFixed(1)} tok/s prefill, first token after ${e.speed.ttftMs.toFixed(0)} ms (${e.speed.promptTokens}-token prompt)\n`
          : ''),
    );
  } finally {
    await engine.dispose();
  }
}

/**
 * Serves until SIGINT or SIGTERM, then closes. The first line on stdout, once requests are
 * accepted, is "webgguf serve: listening on http://HOST:PORT" (scripts and tests wait for it).
 */
async function serveCommand({ values, numbers }: Args): Promise<void> {
  const server = await serve({
    model: values.model!, embeddingModel: values['embedding-model'], host: values.host, port: numbers.port, apiKey: values['api-key'],
    maxPending: numbers['max-pending'], contextLength: numbers.context, log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`webgguf serve: listening on ${server.url}\n`);
  process.stderr.write(`webgguf serve: ${server.models.map((m) => `${m.id} (${m.kind}, ${m.architecture})`).join(', ')}; Ctrl-C stops\n`);
  // Listening through close(): a terminal's Ctrl-C reaches this process twice (bin/webgguf.js
  // forwards it too), and the second must not end it mid-close.
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.on('SIGINT', stop).on('SIGTERM', stop);
  try {
    await stopped;
    await server.close();
  } finally {
    process.off('SIGINT', stop).off('SIGTERM', stop);
  }
}

/** An encoder (BERT), or a decoder whose file names its pooling (EmbeddingGemma, Qwen3-Embedding). */
async function isEmbeddingModel(path: string): Promise<boolean> {
  const { file, close } = await openGGUF(path);
  try {
    return isEncoder(file) || readPooling(file) !== undefined;
  } finally {
    await close();
  }
}

/** Runs the CLI; returns the exit status (0 done, 1 failed, 2 bad command line). */
export async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes('--verbose');
  try {
    const args = parseCommandLine(argv);
    if (args === 'help') {
      process.stdout.write(HELP + '\n');
      return 0;
    }
    if (args.values.model !== undefined && !(args.command === 'estimate' && /^https?:\/\//i.test(args.values.model))) await checkModelFile(args.values.model);
    if (args.values['embedding-model'] !== undefined) await checkModelFile(args.values['embedding-model'], '--embedding-model');
    if (args.command === 'generate') await generateCommand(args);
    else if (args.command === 'tokenize') await tokenizeCommand(args);
    else if (args.command === 'embed') await embedCommand(args);
    else if (args.command === 'bench') await benchCommand(args);
    else if (args.command === 'estimate') await estimateCommand(args);
    else if (args.command === 'serve') await serveCommand(args);
    else await benchGemvCommand(args);
    return 0;
  } catch (e) {
    const message = isWebGGUFError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    process.stderr.write(`webgguf: ${verbose ? ((e as Error).stack ?? message) : message}\n`);
    if (e instanceof UsageError) {
      process.stderr.write(`${SYNOPSIS}\n(webgguf --help lists every flag)\n`);
      return 2;
    }
    return 1;
  }
}
