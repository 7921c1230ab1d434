/**
 * The package as users get it: `npm pack`, then fresh projects that install the tarball and their
 * tools from the registry and run the apps in test/consumer/ on a real model: Vite (build and dev
 * server), webpack 5, esbuild and the self-contained build in Chromium, and a Node script on Dawn.
 * Each app streams a reply and marks the page done, or shows the error's code. `npm test` builds
 * dist/ first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { serveFile } from '../scripts/serve-file.mjs';
import { CHROMIUM, HAVE_CHROMIUM, launchChromium } from './helpers/browser.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const APPS = fileURLToPath(new URL('./consumer/', import.meta.url));
const MODEL = storiesPath('q4_0');
const INSTALL = ['install', '--prefer-offline', '--no-audit', '--no-fund'];
const BUNDLERS = ['vite@8', 'webpack@5', 'webpack-cli', 'esbuild', 'typescript@5'];
/** Generous: the package and its runtime dependencies are a few MB; Dawn's binaries alone are over 100. */
const MAX_INSTALLED_BYTES = 20 * 2 ** 20;

if (!HAVE_CHROMIUM) {
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing; CI needs Chromium for the consumer test`);
  console.warn(`consumer test skipped: no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`);
}

/** The environment of a user's shell: nothing from the `npm test` that runs us (its prefix would redirect installs into this repo). */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const key of Object.keys(env)) {
    if (/^(npm_(package_|lifecycle_|command$|config_local_prefix$|config_call$)|VITEST|NODE_ENV$|FORCE_COLOR$)/.test(key)) delete env[key];
  }
  return env;
}

const tail = (text: string, chars = 4000) => (text.length > chars ? `…${text.slice(-chars)}` : text);

/** Runs a command to its end; when it fails, the error names the app and carries the command's output. */
function run(app: string, cwd: string, command: string, args: string[], timeoutMs: number): Promise<{ stdout: string; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (d: Buffer) => ((stdout += d), (output += d)));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${app}: could not start ${command}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ stdout, output });
      const why = signal ? `was killed after ${timeoutMs / 1000} s` : `exited with ${code}`;
      reject(new Error(`${app}: \`${[command, ...args].join(' ')}\` in ${cwd} ${why}; its output:\n${tail(output)}`));
    });
  });
}

/** Serves a folder (index.html for folders) with Range support, as any static host would. */
async function serveFolder(root: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/\.\.+/g, '');
    serveFile(req, res, join(root, path.endsWith('/') ? `${path}index.html` : path));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

function files(dir: string, keep: (name: string) => boolean, found: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.isDirectory()) files(path, keep, found);
    else if (stat.isFile() && keep(name)) found.push(path);
  }
  return found;
}

function bytesUnder(dir: string): number {
  return files(dir, () => true).reduce((sum, path) => sum + lstatSync(path).size, 0);
}

const MB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MB`;

interface PageResult {
  state: string;
  output: string;
  log: string[];
  ms: number;
}

describe.skipIf(!HAVE_CHROMIUM || !HAVE_MODELS)('the packed package in fresh apps', () => {
  let work: string;
  let tarball: string;
  /** One project with the tarball and the bundlers; an app per folder, sharing its node_modules. */
  let web: string;
  /** A project with the tarball alone, then webgpu for the Node script. */
  let nodeApp: string;
  /** A project with the tarball and Vite 6 (Vite 6 and 7 pre-bundle dependencies differently from 8). */
  let web6: string;
  let browser: Browser;
  let viteBuild: Promise<unknown> | undefined;
  const timings: string[] = [];

  const timed = async <T>(label: string, step: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await step();
    } finally {
      timings.push(`${label}: ${((performance.now() - start) / 1000).toFixed(1)} s`);
    }
  };

  const newProject = (name: string) => {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }));
    return dir;
  };

  /** Copies test/consumer/APP (and main.js) into the web project, with the model where the page asks for it. */
  const app = (name: string, modelDir = 'models', project = web) => {
    const dir = join(project, name);
    cpSync(join(APPS, name), dir, { recursive: true });
    if (name !== 'standalone' && name !== 'typescript') copyFileSync(join(APPS, 'main.js'), join(dir, 'main.js'));
    mkdirSync(join(dir, modelDir), { recursive: true });
    copyFileSync(MODEL, join(dir, modelDir, 'stories260K.gguf'));
    return dir;
  };

  const open = async (url: string, timeoutMs: number): Promise<PageResult> => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const log: string[] = [];
    page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && log.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => log.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
    page.on('response', (r) => r.status() >= 400 && log.push(`HTTP ${r.status()} ${r.url()}`));
    const start = performance.now();
    try {
      await page.goto(url);
      const settled = await page.waitForSelector('body[data-state]', { timeout: timeoutMs }).then(() => true, () => false);
      const ms = performance.now() - start;
      const [state, output] = await page.evaluate(() => [document.body.dataset.state ?? '', document.querySelector('#output')?.textContent ?? '']);
      return { state: settled ? state! : `still running after ${timeoutMs / 1000} s`, output: output!, log, ms };
    } finally {
      await context.close();
    }
  };

  /** The app streamed a non-empty reply; otherwise the failure says which app and shows its page's errors. */
  const expectReply = (appName: string, result: PageResult) => {
    const report = `${appName}: ${result.state}; #output: ${JSON.stringify(result.output)}\n${result.log.join('\n') || '(no console errors)'}`;
    expect(result.state, report).toBe('done');
    expect(result.output.trim(), report).not.toBe('');
    console.log(`${appName}: ${JSON.stringify(result.output)} (${(result.ms / 1000).toFixed(1)} s)`);
  };

  const serveAndOpen = async (appName: string, root: string) => {
    const server = await serveFolder(root);
    try {
      return await timed(`${appName}: page`, () => open(`${server.origin}/`, 60_000));
    } finally {
      await server.close();
    }
  };

  beforeAll(async () => {
    if (!existsSync(join(REPO, 'dist/index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
    work = mkdtempSync(join(tmpdir(), 'webgguf-consumer-'));
    const packed = await timed('npm pack', () => run('npm pack', REPO, 'npm', ['pack', '--json', '--pack-destination', work], 60_000));
    tarball = join(work, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
    web = newProject('web');
    nodeApp = newProject('node');
    web6 = newProject('web6');
    await Promise.all([
      timed('install: tarball + vite 6', () => run('Vite 6 project install', web6, 'npm', [...INSTALL, tarball, 'vite@6'], 240_000)),
      timed('install: tarball + bundlers', () => run('web project install', web, 'npm', [...INSTALL, tarball, ...BUNDLERS], 240_000)),
      timed('install: tarball alone', () => run('node project install', nodeApp, 'npm', [...INSTALL, tarball], 240_000)),
    ]);
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    if (work) rmSync(work, { recursive: true, force: true });
    console.log(`consumer test timings:\n  ${timings.join('\n  ')}`);
  });

  test('installed alone, the package and its runtime dependencies hold no native binary', () => {
    const modules = join(nodeApp, 'node_modules');
    const packages = readdirSync(modules).filter((n) => !n.startsWith('.')).flatMap((n) => (n.startsWith('@') ? readdirSync(join(modules, n)).map((s) => `${n}/${s}`) : [n]));
    const sizes = packages.map((name) => [name, bytesUnder(join(modules, name))] as const).sort((a, b) => b[1] - a[1]);
    const total = bytesUnder(modules);
    console.log(`installed size of webgguf and its runtime dependencies: ${MB(total)}\n  ${sizes.map(([n, b]) => `${n}: ${MB(b)}`).join('\n  ')}`);
    expect(files(modules, (n) => n.endsWith('.node')), 'native binaries installed with the package alone').toEqual([]);
    expect(total, `installed size ${MB(total)}`).toBeLessThan(MAX_INSTALLED_BYTES);
  });

  test('in a browser app, nothing in the package\'s dependency tree is a native binary', async () => {
    // Vite's own tree has native bindings (rolldown, lightningcss); only the package's tree counts.
    const { stdout } = await run('npm query', web, 'npm', ['query', '#webgguf, #webgguf *'], 60_000);
    const tree = (JSON.parse(stdout) as { name: string; path: string }[]);
    expect(tree.map((p) => p.name)).toContain('webgguf');
    const binaries = tree.flatMap((p) => files(p.path, (n) => n.endsWith('.node')));
    expect(binaries, `packages in webgguf's tree: ${tree.map((p) => p.name).join(', ')}`).toEqual([]);
  });

  const buildVite = () => (viteBuild ??= timed('vite build', () => run('Vite build', app('vite', 'public/models'), '../node_modules/.bin/vite', ['build'], 120_000)));

  test('Vite: a production build streams a reply; the page\'s own bundle stays small (the engine is in the worker)', async () => {
    await buildVite();
    // What the page loads before it calls anything: its entry script and that script's static imports.
    const dist = join(web, 'vite/dist');
    const entry = /<script type="module"[^>]*src="\.?\/?([^"]+)"/.exec(readFileSync(join(dist, 'index.html'), 'utf8'))![1]!;
    const page = new Set<string>();
    const visit = (file: string) => {
      if (page.has(file)) return;
      page.add(file);
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:from\s*|import\s*)["'](\.{1,2}\/[^"']+)["']/g)) visit(join(dirname(file), m[1]!));
    };
    visit(join(dist, entry));
    const gzip = [...page].reduce((sum, f) => sum + gzipSync(readFileSync(f)).byteLength, 0);
    console.log(`Vite build: the page loads ${page.size} script(s), ${gzip} bytes gzip (minified: app code, webgguf's client, comlink)`);
    // The request checks (chat, tools, JSON schemas, embeddings) run in the page, so a bad request
    // is refused before it crosses to the worker: about 15 kB with the app and comlink.
    expect(gzip, `page scripts: ${[...page].join(', ')}`).toBeLessThan(18_000);
    expectReply('Vite build', await serveAndOpen('Vite build', join(web, 'vite/dist')));
  });

  test('Vite: without its worker file, createEngine() fails with worker-failed within seconds', async () => {
    await buildVite();
    // Outside the app's folder, where the dev server would scan its index.html.
    const dist = join(web, 'vite-dist-no-worker');
    cpSync(join(web, 'vite/dist'), dist, { recursive: true });
    const workers = files(dist, (n) => /^worker.*\.js$/.test(n));
    expect(workers.length, `worker files in the build: ${files(dist, () => true).join(', ')}`).toBeGreaterThan(0);
    for (const path of workers) rmSync(path);
    const server = await serveFolder(dist);
    try {
      const result = await open(`${server.origin}/`, 15_000);
      const report = `Vite build without worker.js: ${result.state}; #output: ${JSON.stringify(result.output)}\n${result.log.join('\n')}`;
      expect(result.state, report).toBe('error');
      expect(result.output, report).toMatch(/^worker-failed: /);
      expect(result.ms, report).toBeLessThan(10_000);
    } finally {
      await server.close();
    }
  });

  /** Runs `vite` (the dev server) in an app folder, opens its page and expects a reply. */
  const devServer = async (label: string, dir: string) => {
    let child: ChildProcess | undefined;
    try {
      const origin = await timed(`${label}: start`, () => new Promise<string>((resolve, reject) => {
        child = spawn('../node_modules/.bin/vite', ['--port', '0', '--strictPort', '--host', '127.0.0.1'], { cwd: dir, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        const timer = setTimeout(() => reject(new Error(`${label}: no URL after 30 s; its output:\n${tail(output)}`)), 30_000);
        const onData = (d: Buffer) => {
          output += d;
          const url = /Local:\s+(http:\/\/\S+?)\/?\s/.exec(output);
          if (url) (clearTimeout(timer), resolve(url[1]!));
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
        child.on('exit', (code) => (clearTimeout(timer), reject(new Error(`${label} exited with ${code}; its output:\n${tail(output)}`))));
      }));
      let serverOutput = '';
      child!.stdout!.on('data', (d: Buffer) => (serverOutput += d));
      child!.stderr!.on('data', (d: Buffer) => (serverOutput += d));
      const result = await timed(`${label}: page`, () => open(`${origin}/`, 60_000));
      result.log.push(`${label} output:\n${tail(serverOutput)}`);
      expectReply(label, result);
    } finally {
      child?.kill();
    }
  };

  test('Vite: the dev server serves an app that streams a reply', async () => {
    // A dev server pre-bundles dependencies on the first request, which is where workers get lost.
    const dir = join(web, 'vite');
    if (!existsSync(join(dir, 'main.js'))) app('vite', 'public/models');
    await devServer('Vite dev server', dir);
  }, 180_000);

  test("Vite 6: a production build, and the dev server with the README's optimizeDeps line, stream a reply", async () => {
    const dir = app('vite6', 'public/models', web6);
    await timed('vite 6 build', () => run('Vite 6 build', dir, '../node_modules/.bin/vite', ['build'], 120_000));
    expectReply('Vite 6 build', await serveAndOpen('Vite 6 build', join(dir, 'dist')));
    await devServer('Vite 6 dev server', dir);
  }, 240_000);

  test('webpack 5: a production build streams a reply', async () => {
    const dir = app('webpack');
    await timed('webpack', () => run('webpack build', dir, '../node_modules/.bin/webpack', [], 180_000));
    // The bundle names no path of the machine that built it (webpack inlines import.meta.url it cannot follow).
    for (const file of files(join(dir, 'dist'), (n) => n.endsWith('.js'))) {
      // Emscripten's own URL check (startsWith("file://"), in the lazy XGrammar chunk) is no builder path.
      const code = readFileSync(file, 'utf8').replaceAll('startsWith("file://")', '');
      expect(code, `${file} holds a file:// URL`).not.toContain('file://');
      expect(code, `${file} holds the build folder's path`).not.toContain(work);
    }
    expectReply('webpack', await serveAndOpen('webpack', dir));
  }, 300_000);

  test('esbuild: a bundle with the worker file copied beside it streams a reply', async () => {
    const dir = app('esbuild');
    await timed('esbuild', () => run('esbuild bundle', dir, '../node_modules/.bin/esbuild', ['main.js', '--bundle', '--format=esm', '--outdir=dist'], 60_000));
    copyFileSync(join(web, 'node_modules/webgguf/dist/worker.js'), join(dir, 'dist/worker.js'));
    expectReply('esbuild', await serveAndOpen('esbuild', dir));
  });

  test('TypeScript 5: an app using the whole API type-checks against the published .d.ts with skipLibCheck false', async () => {
    const dir = join(web, 'typescript');
    cpSync(join(APPS, 'typescript'), dir, { recursive: true });
    await timed('tsc', () => run('TypeScript app', dir, '../node_modules/.bin/tsc', ['-p', '.'], 120_000));
  });

  test('no bundler: the self-contained build from a plain <script type="module"> streams a reply', async () => {
    const dir = app('standalone');
    const standalone = join(web, 'node_modules/webgguf/dist/standalone');
    expect(existsSync(join(standalone, 'webgguf.js')), `${standalone}/webgguf.js is missing from the package`).toBe(true);
    cpSync(standalone, join(dir, 'webgguf'), { recursive: true });
    expectReply('self-contained build', await serveAndOpen('self-contained build', dir));
  });

  test('Node: a script on webgguf/node streams a reply once webgpu is installed, and says to install it before', async () => {
    copyFileSync(join(APPS, 'node/generate.js'), join(nodeApp, 'generate.js'));
    copyFileSync(MODEL, join(nodeApp, 'stories260K.gguf'));
    // webgpu (Dawn) is an optional peer dependency: without it, a typed error that names it.
    const missing = await run('Node script without webgpu', nodeApp, process.execPath, ['generate.js'], 60_000).then(() => 'it succeeded', (e: Error) => e.message);
    expect(missing, 'the Node script without webgpu installed should fail with the typed no-webgpu error').toMatch(/no-webgpu/);
    await timed('install: webgpu', () => run('node project install', nodeApp, 'npm', [...INSTALL, 'webgpu'], 240_000));
    const { stdout } = await timed('node script', () => run('Node script', nodeApp, process.execPath, ['generate.js'], 90_000));
    console.log(`Node script: ${JSON.stringify(stdout)}`);
    expect(stdout.trim(), 'the Node script printed nothing').not.toBe('');
  }, 300_000);
});
