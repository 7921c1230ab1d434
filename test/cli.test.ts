import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, test, vi } from 'vitest';
import { main } from '../src/cli/main.js';
import { validateJson } from './helpers/json-schema.js';
import { HAVE_MODELS, MODELS, STORIES, storiesPath } from './helpers/models.js';

const BIN = fileURLToPath(new URL('../bin/webgguf.js', import.meta.url));

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 16 << 20, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** In-process runs record whether the GPU was reached: it never is (these stubs end the command there). */
const gpuCalls = vi.hoisted(() => ({ count: 0 }));
const GPU_REACHED = 'test: the GPU was reached';
vi.mock('../src/node/gpu.js', () => ({
  nodeGpuContext: () => {
    gpuCalls.count++;
    throw new Error(GPU_REACHED);
  },
}));
vi.mock('../src/node/load.js', async (original) => ({
  ...(await original<typeof import('../src/node/load.js')>()),
  loadModelFile: () => {
    gpuCalls.count++;
    throw new Error(GPU_REACHED);
  },
}));

/** main() in this process, with its output captured. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string; gpu: boolean }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  const before = gpuCalls.count;
  try {
    const code = await main(args);
    return { code, stdout, stderr, gpu: gpuCalls.count > before };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

const ANY_MODEL = storiesPath('q4_0');

/** Files for --json-schema and --grammar. */
const FILES = mkdtempSync(`${tmpdir()}/webgguf-cli-`);
function file(name: string, text: string): string {
  writeFileSync(`${FILES}/${name}`, text);
  return `${FILES}/${name}`;
}
const SCHEMA = {
  type: 'object',
  properties: { hero: { type: 'string', maxLength: 12 }, age: { type: 'integer' }, pets: { type: 'array', items: { enum: ['cat', 'dog'] }, maxItems: 2 } },
  required: ['hero', 'age', 'pets'],
  additionalProperties: false,
};

describe('webgguf command line, checked before the GPU starts', () => {
  const generate = ['generate', '-m', ANY_MODEL, '-p', 'x'];
  const bench = ['bench', '-m', ANY_MODEL];
  // [arguments, the flag the message names, the range it states]
  const bad: [string[], string, RegExp][] = [
    [[...generate, '--max-tokens', '0'], 'max-tokens', /an integer ≥ 1/],
    [[...generate, '--max-tokens', '-5'], 'max-tokens', /an integer ≥ 1, got "-5"/],
    [[...generate, '--max-tokens=-5'], 'max-tokens', /an integer ≥ 1, got "-5"/],
    [[...generate, '-n', '-5'], 'max-tokens', /an integer ≥ 1/],
    [[...generate, '-n', '1.5'], 'max-tokens', /an integer ≥ 1/],
    [[...generate, '--max-tokens', 'many'], 'max-tokens', /an integer ≥ 1, got "many"/],
    [[...generate, '--max-tokens', ''], 'max-tokens', /an integer ≥ 1/],
    [[...generate, '--temperature', '-0.1'], 'temperature', /a number ≥ 0/],
    [[...generate, '--temperature', 'NaN'], 'temperature', /a number ≥ 0/],
    [[...generate, '--temperature', 'Infinity'], 'temperature', /a number ≥ 0/],
    [[...generate, '--top-k', '-1'], 'top-k', /an integer ≥ 0/],
    [[...generate, '--top-k', '2.5'], 'top-k', /an integer ≥ 0/],
    [[...generate, '--top-p', '0'], 'top-p', /a number in \(0, 1\]/],
    [[...generate, '--top-p', '1.5'], 'top-p', /a number in \(0, 1\]/],
    [[...generate, '--min-p', '-0.1'], 'min-p', /a number in \[0, 1\]/],
    [[...generate, '--min-p', '2'], 'min-p', /a number in \[0, 1\]/],
    [[...generate, '--repeat-penalty', '0'], 'repeat-penalty', /a number > 0/],
    [[...generate, '--seed', '-1'], 'seed', /an integer from 0 to 4294967295/],
    [[...generate, '--seed', '4294967296'], 'seed', /an integer from 0 to 4294967295/],
    [[...generate, '--seed', '1.5'], 'seed', /an integer from 0 to 4294967295/],
    [[...bench, '--runs', '0'], 'runs', /an integer ≥ 1/],
    [[...bench, '--prompt-tokens', '0'], 'prompt-tokens', /an integer ≥ 1/],
    [[...bench, '--gen-tokens', '-1'], 'gen-tokens', /an integer ≥ 1/],
    [[...bench, '--followup', '64,0'], 'followup', /an integer ≥ 1, got "0"/],
    [[...bench, '--followup', '64,x'], 'followup', /an integer ≥ 1, got "x"/],
    [['embed', '-m', ANY_MODEL, '--text', 'x', '--dimensions', '0'], 'dimensions', /an integer ≥ 1, got "0"/],
    [['serve', '-m', ANY_MODEL, '--port', '65536'], 'port', /an integer from 0 to 65535, got "65536"/],
    [['serve', '-m', ANY_MODEL, '--port', '-1'], 'port', /an integer from 0 to 65535/],
    [['serve', '-m', ANY_MODEL, '--max-pending', '0'], 'max-pending', /an integer ≥ 1/],
  ];
  test.each(bad)('%j: a usage error naming --%s and its range', async (args, flag, range) => {
    const r = await run(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.gpu).toBe(false);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')[0]).toMatch(new RegExp(`^webgguf: invalid-argument: --${flag} must be `));
    expect(r.stderr.split('\n')[0]).toMatch(range);
    expect(r.stderr).toContain('usage:');
  });

  const usage: [string[], RegExp][] = [
    [[], /no command given/],
    [['frob'], /unknown command "frob"/],
    [[...generate, '--frob'], /unknown flag --frob/],
    [[...generate, '-x'], /unknown flag -x/],
    [['generate', '-m', ANY_MODEL], /generate needs --prompt/],
    [['generate', '-p', 'x'], /generate needs --model/],
    [['tokenize', '-m', ANY_MODEL], /tokenize needs --text/],
    [['embed', '-m', ANY_MODEL], /embed needs --text/],
    [['embed', '--text', 'x'], /embed needs --model/],
    [['tokenize', '-m', ANY_MODEL, '--text', 'a', '--text', 'b'], /tokenize takes one --text/],
    [['embed', '-m', ANY_MODEL, '--text', 'x', '-n', '3'], /embed takes no --max-tokens/],
    [['bench'], /bench needs --model/],
    [['generate', '-m', ANY_MODEL, '-p'], /-p needs a value/],
    [['generate', '-m', ANY_MODEL, '-p', 'Once', 'upon'], /unexpected argument "upon"/],
    [[...generate, '--json=yes'], /--json takes no value/],
    [['tokenize', '-m', ANY_MODEL, '--text', 'x', '--runs', '3'], /tokenize takes no --runs/],
    [[...generate, '--prompt-tokens', '8'], /generate takes no --prompt-tokens/],
    [['bench-gemv', '--kinds', 'q4_0,q9_9'], /unknown weight kind "q9_9"/],
    [['serve'], /serve needs --model/],
    [['serve', '-m', ANY_MODEL, '--api-key'], /--api-key needs a value/],
    [[...generate, '--port', '8080'], /generate takes no --port/],
    [['serve', '-m', ANY_MODEL, '--json'], /serve takes no --json/],
    [['bench-gemv', '--vocab', '152064,0'], /--vocab/],
  ];
  test.each(usage)('%j: exit status 2 with the usage', async (args, message) => {
    const r = await run(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.gpu).toBe(false);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')[0]).toMatch(/^webgguf: invalid-argument: /);
    expect(r.stderr.split('\n')[0]).toMatch(message);
    expect(r.stderr).toContain('usage:');
  });

  test('--help prints every flag with its short form, range and default, on stdout with status 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/-m, --model FILE/);
    expect(r.stdout).toMatch(/-p, --prompt TEXT/);
    expect(r.stdout).toMatch(/-n, --max-tokens N .*an integer ≥ 1; default 256/);
    for (const flag of ['temperature', 'top-k', 'top-p', 'min-p', 'repeat-penalty', 'seed', 'json-schema', 'grammar', 'text', 'no-bos', 'prompt-tokens', 'gen-tokens', 'runs', 'followup', 'kinds', 'json', 'verbose', 'host', 'port', 'api-key', 'embedding-model', 'max-pending']) {
      expect(r.stdout).toContain(`--${flag}`);
    }
    expect((await run(['generate', '-h'])).stdout).toBe(r.stdout);
  });

  test('--json-schema and --grammar files are read and checked before the GPU (status 1), and exclude each other (status 2)', async () => {
    const generate = ['generate', '-m', ANY_MODEL, '-p', 'x'];
    const missing = await run([...generate, '--json-schema', '/nonexistent/schema.json']);
    expect([missing.code, missing.gpu]).toEqual([1, false]);
    expect(missing.stderr).toBe('webgguf: invalid-argument: --json-schema /nonexistent/schema.json: no such file\n');
    const notJson = await run([...generate, '--json-schema', file('bad.json', '{"type": ')]);
    expect([notJson.code, notJson.gpu]).toEqual([1, false]);
    expect(notJson.stderr).toMatch(/^webgguf: invalid-argument: --json-schema .*bad\.json: not JSON/);
    const unsupported = await run([...generate, '--json-schema', file('unsupported.json', '{"type": "object", "properties": {"a": {"not": {}}}}')]);
    expect([unsupported.code, unsupported.gpu]).toEqual([1, false]);
    expect(unsupported.stderr).toMatch(/keyword "not" \(at \/properties\/a\/not\) is not supported/);
    const noRoot = await run([...generate, '--grammar', file('g.gbnf', 'start ::= "a"')]);
    expect([noRoot.code, noRoot.gpu]).toEqual([1, false]);
    expect(noRoot.stderr).toMatch(/--grammar .*g\.gbnf: a GBNF grammar needs a rule named root/);
    const both = await run([...generate, '--json-schema', file('s.json', '{}'), '--grammar', file('g2.gbnf', 'root ::= "a"')]);
    expect([both.code, both.gpu]).toEqual([2, false]);
    expect(both.stderr).toMatch(/give one/);
    expect((await run([...generate, '--json-schema', file('ok.json', JSON.stringify(SCHEMA))])).stderr).toContain(GPU_REACHED);
  });

  test('a missing model file is a typed error naming the path (status 1), before the GPU; so is an API key that is no bearer token', async () => {
    const missing = await run(['generate', '-m', '/nonexistent/model.gguf', '-p', 'x']);
    expect(missing.code).toBe(1);
    expect(missing.gpu).toBe(false);
    expect(missing.stderr).toBe('webgguf: invalid-argument: --model /nonexistent/model.gguf: no such file\n');
    const embedding = await run(['serve', '-m', ANY_MODEL, '--embedding-model', '/nonexistent/bert.gguf']);
    expect([embedding.code, embedding.gpu]).toEqual([1, false]);
    expect(embedding.stderr).toBe('webgguf: invalid-argument: --embedding-model /nonexistent/bert.gguf: no such file\n');
    const key = await run(['serve', '-m', ANY_MODEL, '--api-key', 'two words']);
    expect([key.code, key.gpu]).toEqual([1, false]);
    expect(key.stderr).toMatch(/^webgguf: invalid-argument: the API key must be a bearer token/);
    const directory = await run(['tokenize', '-m', fileURLToPath(new URL('.', import.meta.url)), '--text', 'x']);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toMatch(/^webgguf: invalid-argument: --model .*: not a file\n$/);
  });
});

/** The greedy story llama2.c's run.c prints, from the model card. */
function referenceStory(): string {
  const card = readFileSync(`${STORIES}stories260K.md`, 'utf8');
  const start = card.indexOf('\n', card.indexOf('-t 0.0\n')) + 1;
  return card.slice(start, card.indexOf('```', start)).trimEnd();
}

describe.skipIf(!HAVE_MODELS)('webgguf CLI with a model', () => {
  const generate = ['generate', '-m', ANY_MODEL, '-p', 'x'];
  test('values at the ends of each range are accepted', async () => {
    const r = await run([...generate, '-n', '1', '--temperature', '0', '--top-k', '0', '--top-p', '1', '--min-p', '0', '--seed', '4294967295', '--repeat-penalty', '0.5']);
    expect(r.stderr).toContain(GPU_REACHED);
    const low = await run([...generate, '--top-p', '1e-9', '--min-p', '1', '--seed', '0']);
    expect(low.stderr).toContain(GPU_REACHED);
  });

  test('bench lengths over the model context: context-overflow naming the flags and the context, before the GPU', async () => {
    const r = await run(['bench', '-m', ANY_MODEL, '--prompt-tokens', '100000']);
    expect(r.code).toBe(1);
    expect(r.gpu).toBe(false);
    expect(r.stderr).toMatch(/^webgguf: context-overflow: --prompt-tokens 100000 \+ --gen-tokens 64 = 100064 tokens do not fit .*context of 512\n$/);
    const edge = await run(['bench', '-m', ANY_MODEL, '--prompt-tokens', '500', '--gen-tokens', '13']);
    expect(edge.stderr).toMatch(/--prompt-tokens 500 \+ --gen-tokens 13 = 513 tokens/);
    expect((await run(['bench', '-m', ANY_MODEL, '--prompt-tokens', '500', '--gen-tokens', '12'])).stderr).toContain(GPU_REACHED);
  });
});

describe.skipIf(!HAVE_MODELS)('webgguf CLI', () => {
  test('a bad flag fails fast, with status 2, and never starts the GPU (no drivers here would be status 1)', async () => {
    const t0 = performance.now();
    const r = await cli(['generate', '-m', ANY_MODEL, '-p', 'x', '--max-tokens', '-5'], { VK_ICD_FILENAMES: '/nonexistent/icd.json' });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('webgguf: invalid-argument: --max-tokens must be an integer ≥ 1, got "-5"');
    expect(performance.now() - t0).toBeLessThan(20_000);
    const unknown = await cli(['generate', '--frob']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('usage:');
  });

  test('greedy, 256 tokens, empty prompt: exactly the story run.c prints', async () => {
    const r = await cli(['generate', '--model', storiesPath('f32'), '--prompt', '', '--temperature', '0', '--max-tokens', '256']);
    expect(r.code, r.stderr).toBe(0);
    // Nothing from Dawn, the Vulkan loader or its layers.
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(referenceStory() + '\n');
  });

  test('--json prints prompt tokens, tokens and the continuation only', async () => {
    const r = await cli(['generate', '-m', storiesPath('q4_0'), '-p', 'Once upon a time', '--temperature', '0', '-n', '20', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { prompt_tokens: number[]; tokens: number[]; text: string };
    expect(out.prompt_tokens).toEqual([1, 403, 407, 261, 378]);
    expect(out.tokens).toHaveLength(20);
    expect(out.text.startsWith(',')).toBe(true);
    expect(out.text).not.toContain('Once upon a time');
  });

  test('sampling with a seed is reproducible; another seed differs', async () => {
    const run = (seed: string) =>
      cli(['generate', '--model', storiesPath('q8_0'), '--prompt', 'Lily', '--temperature', '1', '--top-k', '40', '--top-p', '0.9', '--seed', seed, '--max-tokens', '40', '--json']);
    const [a, b, c] = await Promise.all([run('7'), run('7'), run('8')]);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).tokens).toEqual(JSON.parse(b.stdout).tokens);
    expect(JSON.parse(a.stdout).tokens).not.toEqual(JSON.parse(c.stdout).tokens);
  });

  test('estimate: memory, fit and speed as JSON; a budget it exceeds is a "no" with the reason', async () => {
    const r = await cli(['estimate', '-m', storiesPath('q8_0'), '--prompt-tokens', '32', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const e = JSON.parse(r.stdout);
    expect(e).toMatchObject({ architecture: 'llama', contextLength: 512, fits: true, reasons: [], speed: { promptTokens: 32 } });
    expect(e.speed.decodeTokS).toBeGreaterThan(0);
    const tight = await cli(['estimate', '-m', storiesPath('q8_0'), '--max-gpu-bytes', '100000', '--no-speed']);
    expect(tight.code, tight.stderr).toBe(0);
    expect(tight.stdout).toMatch(/fits {5}no: it needs [\d.]+ MiB of GPU memory .* over this engine's budget of 0\.1 MiB/);
  });

  test('--json-schema (sampled) and --grammar (greedy): outputs that end before --max-tokens validate', async () => {
    const schema = file('story.json', JSON.stringify(SCHEMA));
    const grammar = file('story.gbnf', 'root ::= "Once " who " was " [a-z]+ "."\nwho ::= "Lily" | "Tom"\n');
    const runs = await Promise.all([
      cli(['generate', '-m', ANY_MODEL, '-p', 'Once upon a time', '--temperature', '1', '--seed', '3', '-n', '100', '--json-schema', schema, '--json']),
      cli(['generate', '-m', ANY_MODEL, '-p', 'Lily', '--temperature', '0', '-n', '40', '--grammar', grammar, '--json']),
    ]);
    for (const [i, r] of runs.entries()) {
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { tokens: number[]; text: string };
      expect(out.tokens.length, out.text).toBeLessThan(i === 0 ? 100 : 40);
      if (i === 0) expect(validateJson(SCHEMA, JSON.parse(out.text)), out.text).toBeUndefined();
      else expect(out.text).toMatch(/^Once (Lily|Tom) was [a-z]+\.$/);
    }
  });

  test('tokenize works on a vocab-only GGUF', async () => {
    const vocab = `${MODELS}tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf`;
    const r = await cli(['tokenize', '--model', vocab, '--text', 'Hello world', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ tokens: [1, 15043, 3186] });
    const noBos = await cli(['tokenize', '--model', vocab, '--text', 'Hello world', '--no-bos']);
    expect(noBos.stdout.trim()).toBe('15043 3186');
  });

  test('bench --json reports every field, with consistent arithmetic', async () => {
    const r = await cli(['bench', '--model', storiesPath('q4_0'), '--prompt-tokens', '8', '--gen-tokens', '8', '--runs', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const b = JSON.parse(r.stdout);
    for (const key of ['adapter', 'decode_tok_s', 'prefill_tok_s', 'ttft_ms', 'weight_bytes_per_token', 'probe_read_gb_s', 'decode_gb_s', 'roofline_fraction', 'dispatches_per_token', 'peak_gpu_bytes', 'predicted_decode_tok_s', 'predicted_prefill_tok_s']) {
      expect(b, key).toHaveProperty(key);
    }
    expect(b.decode_tok_s).toBeGreaterThan(0);
    expect(b.decode_gb_s).toBeCloseTo((b.weight_bytes_per_token * b.decode_tok_s) / 1e9, 9);
    expect(b.roofline_fraction).toBeCloseTo(b.decode_gb_s / b.probe_read_gb_s, 9);
    // The f16 KV cache: 5 layers × keys and values × 4 kv heads × 8 dims × 2 bytes.
    expect(b.kv_cache).toBe('f16');
    expect(b.kv_bytes_per_token).toBe(5 * 2 * 4 * 8 * 2);
  });

  test('errors exit non-zero with one line, a stack only with --verbose', async () => {
    const v1 = `${STORIES}original/tinyllamas-stories-260k-f32.gguf`;
    const r = await cli(['generate', '--model', v1, '--prompt', 'x']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('webgguf:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/unsupported-version/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const missing = await cli(['generate', '--model', '/nonexistent.gguf', '--prompt', 'x']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^webgguf: .*nonexistent/m);
    const verbose = await cli(['generate', '--model', v1, '--prompt', 'x', '--verbose']);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });
});
