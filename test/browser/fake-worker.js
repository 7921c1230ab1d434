// A stand-in for the engine's worker (createEngine({ workerUrl })) that misbehaves on request, to
// test the main thread's side of the worker lifecycle: loading the model 'spin' blocks the
// worker's thread for good, as a hostile input stuck in synchronous work would; any other source
// loads at once. `?broken` throws while starting; `?silent` never answers.
import * as Comlink from '../../node_modules/comlink/dist/esm/comlink.mjs';

const mode = new URL(import.meta.url).search.slice(1);
if (mode === 'broken') throw new Error('this worker fails to start');
if (mode !== 'silent') {
  let loaded = 0;
  Comlink.expose({
    init: () => undefined,
    ping: () => undefined,
    abort: () => undefined,
    load: (source) => {
      if (source.endsWith('spin')) for (;;);
      loaded++;
      return { id: source, architecture: 'fake', loads: loaded };
    },
    bytesOnGpu: () => 1234,
    cacheList: () => [],
    unload: () => undefined,
    dispose: () => undefined,
  });
}
