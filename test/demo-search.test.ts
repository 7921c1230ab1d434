/**
 * The demo's "search these notes" panel (demo/notes-search.ts) without its page: pasted text split
 * into passages, embedded by a small generated BERT (the real WordPiece vocabulary) that a local
 * HTTP server serves, and a query ranked against them, through webgguf/node's engine.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { NotesIndex, splitPassages } from '../demo/notes-search.js';
import { makeBertModel } from '../scripts/make-bert.js';
import { serveFile } from '../scripts/serve-file.mjs';
import { createEngine, type Engine } from '../src/node/index.js';
import { testGpu } from './helpers/gpu.js';
import { HAVE_MODELS } from './helpers/models.js';

const NOTES = `Dentist appointment on Tuesday at 3pm. Bring the insurance card.

The garden needs watering every morning in July. Tomatoes first, then the beans.

Quarterly report: revenue grew four percent, costs stayed flat. Send it to Maria by Friday.`;

test('splitPassages: paragraphs, long ones cut at sentence ends', () => {
  expect(splitPassages(NOTES)).toHaveLength(3);
  expect(splitPassages('  \n\n \n')).toEqual([]);
  const long = Array.from({ length: 30 }, (_, i) => `Sentence number ${i} has six words.`).join(' ');
  const parts = splitPassages(long);
  expect(parts.length).toBeGreaterThan(1);
  expect(parts.join(' ')).toBe(long);
  for (const p of parts) expect(p.split(' ').length).toBeLessThanOrEqual(120);
});

describe.skipIf(!HAVE_MODELS)('notes search with a locally served embedding model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgguf-notes-'));
  const path = join(dir, 'tiny-bert.gguf');
  let server: Server;
  let url: string;
  let engine: Engine;

  beforeAll(async () => {
    writeFileSync(path, await makeBertModel({ shape: 'tiny-bert', quant: 'q8_0' }));
    server = createServer((req, res) => serveFile(req, res, path));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tiny-bert.gguf`;
    const gpu = await testGpu();
    engine = await createEngine({ gpu: async () => gpu });
  }, 60_000);

  afterAll(async () => {
    await engine?.dispose();
    await new Promise((resolve) => server?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  test('indexes pasted text and ranks the passage a query is about first', async () => {
    const index = new NotesIndex(engine);
    expect(await index.index(url, NOTES)).toBe(3);
    const hits = await index.search('Quarterly report: revenue grew four percent');
    expect(hits[0]!.passage).toMatch(/^Quarterly report/);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score);
    expect((await index.search('The garden needs watering'))[0]!.passage).toMatch(/^The garden/);
  }, 60_000);
});
