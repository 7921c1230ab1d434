import {
  blobSource, createGpuContext, generate, GGUFTokenizer, isWebGPULLMError, LlamaModel, readGGUF, urlSource,
  type ByteSource, type GpuContext,
} from '../src/index.js';

const DEFAULT_MODEL = 'https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf';
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const output = $<HTMLPreElement>('output');
const generateButton = $<HTMLButtonElement>('generate');
const stopButton = $<HTMLButtonElement>('stop');
$<HTMLInputElement>('model-url').value = new URLSearchParams(location.search).get('model') ?? DEFAULT_MODEL;

let gpu: GpuContext | undefined;
let loaded: { model: LlamaModel; tokenizer: GGUFTokenizer } | undefined;
let abort: AbortController | undefined;

function showStatus(text: string, error = false): void {
  status.textContent = text;
  status.classList.toggle('error', error);
}

function describe(e: unknown): string {
  return isWebGPULLMError(e) ? e.message : e instanceof Error ? e.message : String(e);
}

async function load(source: () => Promise<ByteSource>): Promise<void> {
  generateButton.disabled = true;
  loaded?.model.dispose();
  loaded = undefined;
  try {
    showStatus('Reading the model…');
    const file = await readGGUF(await source());
    gpu ??= await createGpuContext(navigator.gpu);
    const model = await LlamaModel.load(gpu, file, {
      onProgress: (done, total) => showStatus(`Uploading weights… ${Math.round((100 * done) / total)}%`),
    });
    loaded = { model, tokenizer: GGUFTokenizer.fromGGUF(file) };
    const c = model.config;
    showStatus(`Loaded ${file.source.name}: ${c.architecture}, ${c.nLayers} layers, ${(model.bytesOnGpu / 2 ** 20).toFixed(1)} MiB on ${gpu.adapterName}.`);
    generateButton.disabled = false;
  } catch (e) {
    showStatus(describe(e), true);
  }
}

$<HTMLButtonElement>('load-url').addEventListener('click', () => void load(() => urlSource($<HTMLInputElement>('model-url').value)));
$<HTMLInputElement>('model-file').addEventListener('change', (ev) => {
  const f = (ev.target as HTMLInputElement).files?.[0];
  if (f) void load(async () => blobSource(f));
});

generateButton.addEventListener('click', async () => {
  if (!loaded) return;
  abort = new AbortController();
  generateButton.disabled = true;
  stopButton.disabled = false;
  output.textContent = '';
  const { model, tokenizer } = loaded;
  const start = performance.now();
  let count = 0;
  try {
    const prompt = tokenizer.encode($<HTMLTextAreaElement>('prompt').value);
    for await (const t of generate(model, tokenizer, prompt, {
      temperature: Number($<HTMLInputElement>('temperature').value),
      maxTokens: Number($<HTMLInputElement>('max-tokens').value),
      signal: abort.signal,
    })) {
      output.textContent += t.text;
      count++;
    }
    const seconds = (performance.now() - start) / 1000;
    $('stats').textContent = `${count} tokens in ${seconds.toFixed(2)} s (${(count / seconds).toFixed(1)} tokens/s)`;
  } catch (e) {
    showStatus(describe(e), true);
  } finally {
    generateButton.disabled = false;
    stopButton.disabled = true;
  }
});
stopButton.addEventListener('click', () => abort?.abort());

if (!navigator.gpu) showStatus('This browser has no WebGPU. Use a current Chrome or Edge, or enable WebGPU in your browser settings.', true);
