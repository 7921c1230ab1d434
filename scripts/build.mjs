#!/usr/bin/env node
// `npm run build`: the published dist/.
//   dist/index.js, dist/core.js    the browser entries; dependencies stay imports for the app's bundler
//   dist/worker.js                 the engine's module Worker, self-contained (no bare imports), so a
//                                  bundler that does not follow it (esbuild) can ship it as a plain file
//   dist/standalone/               index + worker with every dependency inlined: a plain
//                                  <script type="module"> page or a CDN needs no bundler
//   dist/node.js, dist/cli.js      webgguf/node and the CLI (Dawn stays an import: an optional peer)
//   dist/**/*.d.ts                 types (tsc)
// Shaders are inlined everywhere (`?raw` imports).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const DEPENDENCIES = [/^@huggingface\//, /^@mlc-ai\//, /^@noble\//, 'comlink', 'idb-keyval'];
const PLACEHOLDER = '__WEBGGUF_WORKER_URL__';

/**
 * The engine creates its worker with `new Worker(new URL('./worker.ts', import.meta.url), …)`,
 * which Vite follows in development. Published, it must read `new URL("./worker.js",
 * import.meta.url)` word for word: that is the form app bundlers (Vite, webpack) recognise and
 * ship, and a plain page finds worker.js beside the library. Vite's own worker handling would
 * rewrite it (hashed asset, the builder's absolute path), so it is hidden from Vite and put back.
 */
const publishedWorkerUrl = {
  name: 'webgguf-worker-url',
  enforce: 'pre',
  transform(code, id) {
    if (!id.endsWith('/src/engine/host.ts')) return undefined;
    const source = "new URL('./worker.ts', import.meta.url)";
    if (!code.includes(source)) throw new Error(`${id}: the worker URL expression changed; update scripts/build.mjs`);
    return code.replace(source, PLACEHOLDER);
  },
  renderChunk(code) {
    return code.includes(PLACEHOLDER) ? code.replaceAll(PLACEHOLDER, 'new URL("./worker.js", import.meta.url)') : null;
  },
};

/** Dependencies only the Node CLI imports (`webgguf serve`), never inlined into a browser build. */
const NODE_ONLY = new Set(['hono', '@hono/node-server']);
const INLINED = Object.keys(JSON.parse(readFileSync(`${root}/package.json`, 'utf8')).dependencies).filter((d) => d !== '@webgpu/types' && !NODE_ONLY.has(d));
/** Files that inline the dependencies carry their names, and their licences ship beside them. */
const BANNER = `/*! webgguf (MIT). Inlines ${INLINED.join(', ')}: their licences are in THIRD_PARTY_NOTICES.md in this package. */`;

const common = { root, configFile: false, logLevel: 'warn', base: './' };
/**
 * Chunks keep their module's name, except XGrammar's (constrained decoding, imported only when a
 * request is constrained): its chunk is named for what it is, so a page can tell it never loaded.
 */
const chunkFileNames = (chunk) => (chunk.moduleIds.some((id) => id.includes('/@mlc-ai/web-xgrammar/')) ? 'xgrammar-[hash].js' : '[name]-[hash].js');
/** An ESM build; `inline` (no externals) builds are minified, the others go through the app's bundler. */
const esm = (outDir, entry, external, plugins = []) => ({
  ...common,
  plugins: [publishedWorkerUrl, ...plugins],
  build: {
    outDir, emptyOutDir: false, target: 'es2022', minify: external.length === 0,
    lib: { entry, formats: ['es'] },
    rollupOptions: {
      external,
      // Every chunk at the top of its folder, so './worker.js' is relative to whichever holds the engine.
      output: { entryFileNames: '[name].js', chunkFileNames, ...(external.length === 0 ? { banner: BANNER } : {}) },
    },
  },
});

function thirdPartyNotices() {
  const parts = INLINED.map((name) => {
    const dir = `${root}/node_modules/${name}`;
    const pkg = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8'));
    const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    if (file) return `## ${name} ${pkg.version} (${pkg.license})\n\n${readFileSync(`${dir}/${file}`, 'utf8').trim()}\n`;
    // A package that ships no licence file (@mlc-ai/web-xgrammar) gets the text of the licence its
    // package.json names, kept in scripts/licenses/ (only standard texts, by SPDX id).
    const standard = `${root}/scripts/licenses/${pkg.license}.txt`;
    if (!existsSync(standard)) throw new Error(`${name} ships no licence file and scripts/licenses/ has no ${pkg.license}.txt; THIRD_PARTY_NOTICES.md needs one`);
    return `## ${name} ${pkg.version} (${pkg.license})\n\nThe package ships no licence file; its package.json names ${pkg.license}, whose text follows.\n\n${readFileSync(standard, 'utf8').trim()}\n`;
  });
  return `# Third-party notices\n\nworker.js and standalone/ in this package inline the following packages.\n\n${parts.join('\n')}`;
}

/** Copies a built file and, transitively, the chunks it imports (the worker's lazy XGrammar chunk). */
function copyWithChunks(name, from, to, seen = new Set()) {
  if (seen.has(name)) return;
  seen.add(name);
  copyFileSync(`${from}/${name}`, `${to}/${name}`);
  const code = readFileSync(`${from}/${name}`, 'utf8');
  for (const m of code.matchAll(/(?:\bimport\s*\(\s*|\bfrom\s*|\bimport\s*)["']\.\/([\w.-]+\.js)["']/g)) copyWithChunks(m[1], from, to, seen);
}

rmSync(`${root}/dist`, { recursive: true, force: true });
await build(esm('dist', { worker: 'src/engine/worker.ts' }, []));
// The engine in the page's thread (createEngine({ worker: false })) takes XGrammar from the worker
// build's own chunk (self-contained, its Node-only branches stubbed), not from the package, whose
// UMD file names Node's built-ins that esbuild and webpack refuse to bundle for a browser.
const workerXGrammar = readdirSync(`${root}/dist`).find((f) => /^xgrammar-[\w-]+\.js$/.test(f));
if (!workerXGrammar) throw new Error('the worker build made no xgrammar-*.js chunk');
const sharedXGrammar = {
  name: 'shared-xgrammar',
  enforce: 'pre',
  resolveId: (id) => (/\/xgrammar-module\.js$/.test(id) ? { id: `${root}/dist/${workerXGrammar}`, external: true } : null),
};
const indexBuild = esm('dist', { index: 'src/index.ts', core: 'src/core.ts' }, [...DEPENDENCIES, /^node:/], [sharedXGrammar]);
indexBuild.build.rollupOptions.output.paths = { [`${root}/dist/${workerXGrammar}`]: `./${workerXGrammar}` };
await build(indexBuild);
await build(esm('dist/standalone', { webgguf: 'src/index.ts' }, []));
copyWithChunks('worker.js', `${root}/dist`, `${root}/dist/standalone`);
await build({
  ...common,
  build: {
    ssr: true, outDir: 'dist', emptyOutDir: false, target: 'node20', minify: false,
    rollupOptions: { input: { node: 'src/node/index.ts', cli: 'src/cli/main.ts' }, output: { entryFileNames: '[name].js', chunkFileNames: 'node-[name]-[hash].js' } },
  },
});
writeFileSync(`${root}/dist/THIRD_PARTY_NOTICES.md`, thirdPartyNotices());
execFileSync(process.execPath, [`${root}/node_modules/typescript/bin/tsc`, '-p', `${root}/tsconfig.build.json`], { stdio: 'inherit' });
