/** The catalogue's GPU memory estimate against what a real load allocates (in-thread engine, Node). */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { readGGUF } from '../src/gguf/gguf.js';
import { bytesSource } from '../src/io/byte-source.js';
import { readConfig } from '../src/model/config.js';
import { estimateGpuBytes, MODELS } from '../src/models.js';
import { testGpu } from './helpers/gpu.js';
import { ModelServer } from './helpers/model-server.js';
import { HAVE_MODELS, storiesPath } from './helpers/models.js';

describe.skipIf(!HAVE_MODELS)('catalogue GPU memory estimate', () => {
  let server: ModelServer;
  let engine: Engine;

  beforeAll(async () => {
    server = await new ModelServer().start();
    engine = await createEngine({ worker: false, cache: false, gpu: testGpu });
  });
  afterAll(async () => {
    await engine?.unload();
    await server?.stop();
  });

  // stories260K as the catalogue has it (F32), and quantized: the estimate holds for both.
  test.each(['f32', 'q8_0'])('stories260K %s: estimateGpuBytes is within 3 percent of bytesOnGpu', async (quant) => {
    const path = storiesPath(quant);
    const bytes = readFileSync(path);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    // A catalogue entry as the source, pointed at the local copy: its extra fields ride along.
    const info = await engine.load({ ...MODELS.stories260k, url: server.url(`stories260K/stories260K-${quant}.gguf`), sha256 });
    const config = readConfig(await readGGUF(bytesSource(new Uint8Array(bytes), 'stories260K.gguf')));
    const estimate = estimateGpuBytes(statSync(path).size, config, info.contextLength);
    expect(Math.abs(estimate - info.bytesOnGpu) / info.bytesOnGpu, `estimate ${estimate}, real ${info.bytesOnGpu}`).toBeLessThan(0.03);
  });
});
