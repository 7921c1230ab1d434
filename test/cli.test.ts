import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { HAVE_MODELS, MODELS, STORIES, storiesPath } from './helpers/models.js';

const BIN = fileURLToPath(new URL('../bin/webgguf.js', import.meta.url));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The greedy story llama2.c's run.c prints, from the model card. */
function referenceStory(): string {
  const card = readFileSync(`${STORIES}stories260K.md`, 'utf8');
  const start = card.indexOf('\n', card.indexOf('-t 0.0\n')) + 1;
  return card.slice(start, card.indexOf('```', start)).trimEnd();
}

describe.skipIf(!HAVE_MODELS)('webgguf CLI', () => {
  test('greedy, 256 tokens, empty prompt: exactly the story run.c prints', async () => {
    const r = await cli(['generate', '--model', storiesPath('f32'), '--prompt', '', '--temperature', '0', '--max-tokens', '256']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(referenceStory() + '\n');
  });

  test('--json prints prompt tokens, tokens and the continuation only', async () => {
    const r = await cli(['generate', '--model', storiesPath('q4_0'), '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '20', '--json']);
    expect(r.code, r.stderr).toBe(0);
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
    for (const key of ['adapter', 'decode_tok_s', 'prefill_tok_s', 'ttft_ms', 'weight_bytes_per_token', 'probe_read_gb_s', 'decode_gb_s', 'roofline_fraction', 'dispatches_per_token', 'peak_gpu_bytes']) {
      expect(b, key).toHaveProperty(key);
    }
    expect(b.decode_tok_s).toBeGreaterThan(0);
    expect(b.decode_gb_s).toBeCloseTo((b.weight_bytes_per_token * b.decode_tok_s) / 1e9, 9);
    expect(b.roofline_fraction).toBeCloseTo(b.decode_gb_s / b.probe_read_gb_s, 9);
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
    const bad = await cli(['generate', '--model', storiesPath('f32'), '--max-tokens', 'many']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--max-tokens expects an integer/);
    const kind = await cli(['bench-gemv', '--kinds', 'q4_0,q9_9']);
    expect(kind.code).toBe(1);
    expect(kind.stderr).toMatch(/unknown weight kind "q9_9"/);
  });
});
