/**
 * The published package's shape, from the built dist/ (npm test builds it first): a thin page
 * entry, a self-contained worker under the name bundlers follow, no builder paths, no native
 * dependency for browser apps, licences shipped. test/consumer.test.ts installs the packed tarball
 * into fresh apps; this checks the files themselves.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DIST = join(ROOT, 'dist');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const read = (path: string) => readFileSync(join(DIST, path), 'utf8');
/** Import specifiers of an ES module: static (from '…') and dynamic (import('…')). */
const imports = (code: string) => ({
  static: [...code.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*["']([^"']+)["']/gm), ...code.matchAll(/^\s*import\s*["']([^"']+)["']/gm)].map((m) => m[1]!),
  dynamic: [...code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!),
});

/** The files a page loads before it calls anything: an entry and its static imports, transitively. */
function staticGraph(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of imports(read(file)).static) if (spec.startsWith('.')) visit(join(dirname(file), spec).replace(/^\.\//, ''));
  };
  visit(entry);
  return [...seen];
}

describe.skipIf(!existsSync(join(DIST, 'index.js')) && !process.env.CI)('package', () => {
  // Unminified here; test/consumer.test.ts measures the page's minified bundle in a Vite app.
  test('the page entry is a thin client: request checks and the worker client, no engine code', () => {
    const files = staticGraph('index.js');
    const gzip = files.reduce((s, f) => s + gzipSync(read(f)).byteLength, 0);
    console.log(`dist/index.js and its static imports: ${files.join(', ')}; ${gzip} bytes gzip`);
    // The request checks (chat, tools, JSON schemas, embeddings) run here too, so a bad streamed
    // request rejects create() itself: about 20 kB unminified, well under the engine's 94 kB.
    expect(gzip).toBeLessThan(24_000);
    const bare = files.flatMap((f) => imports(read(f)).static.filter((s) => !s.startsWith('.')));
    expect(new Set(bare)).toEqual(new Set(['comlink']));
    const code = files.map(read).join('\n');
    expect(code).not.toMatch(/@vite-ignore|\.wgsl|fn main|Tokenizer/);
  });

  test('the worker is named the way bundlers follow it and is self-contained but for its lazy XGrammar chunk; no builder paths anywhere', () => {
    const index = read('index.js');
    expect(index).toContain('new Worker(new URL("./worker.js", import.meta.url)');
    for (const worker of ['worker.js', 'standalone/worker.js']) {
      expect(imports(read(worker)).static, worker).toEqual([]);
      // One lazy chunk, XGrammar's (constrained decoding), beside the worker with what it imports.
      const lazy = imports(read(worker)).dynamic;
      expect(lazy, worker).toEqual([expect.stringMatching(/^\.\/xgrammar-[\w-]+\.js$/)]);
      const chunks = staticGraph(join(dirname(worker), lazy[0]!));
      for (const chunk of chunks) expect(imports(read(chunk)).static.filter((s) => !s.startsWith('.')), chunk).toEqual([]);
    }
    for (const file of readdirSync(DIST, { recursive: true }).map(String).filter((f) => f.endsWith('.js'))) {
      // Emscripten's own URL check (startsWith("file://")) is no builder path.
      const code = read(file).replaceAll('startsWith("file://")', '');
      expect(code, file).not.toContain('file://');
      expect(code, file).not.toContain(ROOT);
    }
  });

  test('the standalone build imports nothing by bare name', () => {
    for (const file of readdirSync(join(DIST, 'standalone')).filter((f) => f.endsWith('.js'))) {
      const { static: s, dynamic: d } = imports(read(`standalone/${file}`));
      expect([...s, ...d].filter((x) => !x.startsWith('.')), file).toEqual([]);
    }
  });

  test("README's browser, no-bundler and Node examples are word for word the apps test/consumer.test.ts runs", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const app = (path: string) => readFileSync(join(ROOT, 'test/consumer', path), 'utf8');
    const html = app('standalone/index.html');
    const script = html.slice(html.indexOf('<script type="module">'), html.indexOf('</script>') + '</script>'.length);
    for (const [name, code] of [['main.js', app('main.js')], ['node/generate.js', app('node/generate.js')], ['node/embed.js', app('node/embed.js')], ['standalone/index.html', script]] as const) {
      expect(readme.includes(code), `README.md does not show test/consumer/${name} as it is`).toBe(true);
    }
  });

  test('no native dependency for browser apps: webgpu is an optional peer; every export exists; licences ship', () => {
    expect(pkg.name).toBe('webgguf');
    expect(pkg.dependencies.webgpu).toBeUndefined();
    expect(pkg.peerDependencies.webgpu).toBeDefined();
    expect(pkg.peerDependenciesMeta.webgpu.optional).toBe(true);
    expect(pkg.bin).toEqual({ webgguf: './bin/webgguf.js' });
    for (const [name, target] of Object.entries(pkg.exports as Record<string, string | Record<string, string>>)) {
      for (const file of typeof target === 'string' ? [target] : Object.values(target)) expect(existsSync(join(ROOT, file)), `${name}: ${file}`).toBe(true);
    }
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'bin', 'LICENSE']));
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/MIT License/);
    const notices = read('THIRD_PARTY_NOTICES.md');
    // `webgguf serve`'s HTTP server is imported by the CLI only, never inlined into a browser build.
    const cliOnly = ['hono', '@hono/node-server'];
    const imports = (file: string, dep: string) => new RegExp(`from ["']${dep}["/]`).test(read(file));
    for (const dep of cliOnly) {
      expect(imports('cli.js', dep), `${dep} imported by cli.js`).toBe(true);
      for (const file of readdirSync(DIST).filter((f) => f.endsWith('.js') && f !== 'cli.js')) expect(imports(file, dep), `${dep} imported by ${file}`).toBe(false);
    }
    for (const dep of Object.keys(pkg.dependencies).filter((d) => d !== '@webgpu/types' && !cliOnly.includes(d))) expect(notices, dep).toContain(`## ${dep} `);
    expect(read('worker.js').slice(0, 300)).toContain('THIRD_PARTY_NOTICES.md');
    for (const field of ['repository', 'keywords', 'sideEffects', 'license']) expect(pkg[field], field).toBeDefined();
  });
});
