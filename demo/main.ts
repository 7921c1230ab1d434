import { createEngine, isWebGGUFError, MODELS, type CatalogModel, type ChatMessage, type Engine, type LoadProgress, type ModelSource } from '../src/index.js';
import { renderMarkdown } from './markdown.js';

/** The presets: the library's catalogue of known-good models, each verified by its SHA-256 on download. */
const PRESETS: CatalogModel[] = Object.values(MODELS);
const DEFAULT_MODEL = MODELS.stories260k.url;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  preset: $<HTMLSelectElement>('preset'), presetInfo: $('preset-info'), estimate: $('estimate'), url: $<HTMLInputElement>('model-url'), file: $<HTMLInputElement>('model-file'), loadUrl: $<HTMLButtonElement>('load-url'),
  progress: $('progress'), fill: $('progress-fill'), progressText: $('progress-text'), cancel: $<HTMLButtonElement>('cancel'),
  status: $('model-status'), cacheList: $('cache-list'), storage: $('storage'), device: $('device'),
  system: $<HTMLTextAreaElement>('system'), temperature: $<HTMLInputElement>('temperature'), topP: $<HTMLInputElement>('top-p'),
  maxTokens: $<HTMLInputElement>('max-tokens'), messages: $('messages'), empty: $('empty'), composer: $<HTMLFormElement>('composer'),
  input: $<HTMLTextAreaElement>('input'), send: $<HTMLButtonElement>('send'), stop: $<HTMLButtonElement>('stop'),
  regenerate: $<HTMLButtonElement>('regenerate'), newChat: $<HTMLButtonElement>('new-chat'),
  banner: $('banner'), bannerText: $('banner-text'), bannerClose: $<HTMLButtonElement>('banner-close'),
};

let engine: Engine | undefined;
let history: ChatMessage[] = [];
let modelLoaded = false;
let loadAbort: AbortController | undefined;
let replyAbort: AbortController | undefined;
let busy = false;
/** Resolves once the engine exists (or failed to start). */
let engineStarted: Promise<void> = Promise.resolve();
/** The URL of the loaded model (undefined for a file or a cached entry), to match it with its estimate. */
let loadedSource: string | undefined;
const enabledFeatures = document.createElement('dd');

/** Decimal gigabytes (or megabytes), as download sizes are usually given. */
const gb = (b: number) => (b >= 1e8 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
const mib = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GB` : `${(b / 2 ** 20).toFixed(1)} MB`);

function showError(e: unknown, next = ''): void {
  const message = isWebGGUFError(e) ? e.message : e instanceof Error ? e.message : String(e);
  const advice: Record<string, string> = {
    network: 'Check the URL and your connection; a retry resumes where the download stopped.',
    'quota-exceeded': 'Delete a cached model below, or free disk space, then try again.',
    'unsupported-architecture': 'Pick a Llama-family (Llama, TinyLlama, SmolLM, Mistral) or Qwen2 GGUF.',
    'unsupported-tensor-type': 'Pick a file quantized as Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16 or F32.',
    'device-lost': 'The GPU was reset. Load the model again; it comes from the cache.',
    'no-webgpu': 'Use a current Chrome or Edge, or enable WebGPU in your browser flags.',
    'context-overflow': 'Start a new chat: this conversation no longer fits the model’s context.',
    'insufficient-memory': 'Nothing was downloaded. Pick a smaller model or a smaller quantization.',
    integrity: 'The file did not match its checksum and was discarded. Try again, or check the source.',
  };
  const code = isWebGGUFError(e) ? e.code : '';
  const sentence = /[.!?]$/.test(message) ? message : `${message}.`;
  ui.bannerText.textContent = `${sentence} ${next || advice[code] || ''}`.trim();
  ui.banner.hidden = false;
}
ui.bannerClose.addEventListener('click', () => (ui.banner.hidden = true));
void import('./notes-search.js').then((m) => m.mountNotesSearch($('notes')));

function setBusy(value: boolean): void {
  busy = value;
  ui.send.disabled = !modelLoaded || value;
  ui.input.disabled = !modelLoaded;
  ui.stop.disabled = !value;
  ui.regenerate.disabled = !modelLoaded || value || !history.some((m) => m.role === 'assistant');
  ui.loadUrl.disabled = value || !engine;
}

async function refreshCache(): Promise<void> {
  if (!engine) return;
  const [models, usage] = await Promise.all([engine.cache.list(), engine.cache.usage()]);
  ui.cacheList.replaceChildren(...models.map((m) => {
    const li = document.createElement('li');
    const fromFile = m.id.startsWith('file:');
    const label = `${m.source.split('/').pop() ?? m.id}${fromFile ? ' (file)' : ''}`;
    const name = Object.assign(document.createElement('span'), { className: 'name', textContent: label, title: m.source });
    const size = Object.assign(document.createElement('span'), { className: 'size', textContent: mib(m.storedBytes) });
    const load = Object.assign(document.createElement('button'), { className: 'ghost small', textContent: 'Load' });
    load.setAttribute('aria-label', `Load ${name.textContent}`);
    load.addEventListener('click', () => void load_({ cached: m.id }));
    const del = Object.assign(document.createElement('button'), { className: 'ghost small', textContent: 'Delete' });
    del.setAttribute('aria-label', `Delete ${name.textContent} from the cache`);
    del.addEventListener('click', async () => {
      await engine!.cache.delete(m.id);
      await refreshCache();
    });
    li.append(name, size, load, del);
    return li;
  }));
  if (!models.length) ui.cacheList.replaceChildren(Object.assign(document.createElement('li'), { textContent: 'None yet.', className: 'hint' }));
  ui.storage.textContent = usage.quota
    ? `Storage: ${mib(usage.usage ?? 0)} used of ${mib(usage.quota)}${usage.persisted ? ', persisted' : ', may be evicted under pressure'}.`
    : '';
}

function showProgress(p: LoadProgress, started: number): void {
  ui.progress.hidden = false;
  const fraction = p.total ? p.loaded / p.total : 0;
  ui.fill.style.width = `${(100 * fraction).toFixed(1)}%`;
  // One count for the whole load (bytes fetched or read, then uploaded), so the bar never goes back.
  const seconds = (performance.now() - started) / 1000;
  const rate = p.loaded / Math.max(seconds, 0.001);
  const eta = rate > 0 && p.phase !== 'compile' ? ` · ${Math.ceil((p.total - p.loaded) / rate)} s left` : '';
  const label = { download: 'Downloading', cache: 'Reading from cache', upload: 'Uploading to the GPU', compile: 'Compiling kernels' }[p.phase];
  ui.progressText.textContent = `${label} · ${Math.round(100 * fraction)}% of ${mib(p.total)}${eta}`;
}

async function load_(source: ModelSource): Promise<void> {
  await engineStarted; // a file picked or dropped while the engine starts waits for it
  if (!engine || busy) return;
  // The load goes first: a check still running for the URL field would make it wait.
  estimateAbort?.abort();
  loadAbort = new AbortController();
  setBusy(true);
  modelLoaded = false;
  ui.banner.hidden = true;
  ui.status.textContent = 'Loading…';
  const started = performance.now();
  try {
    const info = await engine.load(source, { onProgress: (p) => showProgress(p, started), signal: loadAbort.signal });
    modelLoaded = true;
    loadedSource = typeof source === 'string' ? source : typeof source === 'object' && 'url' in source ? source.url : undefined;
    // A stored model is worth keeping: ask the browser not to evict it (it may ask the user, or decide itself).
    void engine.cache.persist();
    const name = typeof source === 'string' ? source.split('/').pop() : source instanceof File ? source.name : 'url' in source ? source.url.split('/').pop() : info.id.split('/').pop();
    ui.status.textContent = `${name}: ${info.architecture}, ${(info.parameters / 1e6).toFixed(1)}M parameters, ${info.quantTypes.join('/')}, context ${info.contextLength}, ${mib(info.bytesOnGpu)} on the GPU${info.fromCache ? ' (from cache)' : ''}.`;
    enabledFeatures.textContent = info.features.length ? info.features.join(', ') : 'no optional features';
    ui.input.focus();
  } catch (e) {
    ui.status.textContent = 'No model loaded.';
    showError(e);
  } finally {
    ui.progress.hidden = true;
    setBusy(false);
    await refreshCache();
  }
}

function dl(entries: Record<string, string>): HTMLElement[] {
  return Object.entries(entries).flatMap(([k, v]) => [
    Object.assign(document.createElement('dt'), { textContent: k }),
    Object.assign(document.createElement('dd'), { textContent: v }),
  ]);
}

function addMessage(role: 'user' | 'assistant', text: string): { body: HTMLElement; stats: HTMLElement } {
  ui.empty.hidden = true;
  const el = Object.assign(document.createElement('div'), { className: `message ${role}` });
  const who = Object.assign(document.createElement('div'), { className: 'who', textContent: role === 'user' ? 'You' : 'Model' });
  const body = Object.assign(document.createElement('div'), { className: 'body' });
  const stats = Object.assign(document.createElement('div'), { className: 'stats' });
  if (role === 'user') body.textContent = text;
  else body.innerHTML = renderMarkdown(text);
  el.append(who, body, stats);
  ui.messages.append(el);
  ui.messages.scrollTop = ui.messages.scrollHeight;
  return { body, stats };
}

async function reply(): Promise<void> {
  if (!engine) return;
  replyAbort = new AbortController();
  setBusy(true);
  const { body, stats } = addMessage('assistant', '');
  const system = ui.system.value.trim();
  const messages: ChatMessage[] = system ? [{ role: 'system', content: system }, ...history] : history;
  const started = performance.now();
  let firstToken = 0;
  let content = '';
  try {
    const stream = await engine.chat.completions.create({
      messages, stream: true, stream_options: { include_usage: true },
      temperature: Number(ui.temperature.value), top_p: Number(ui.topP.value), max_tokens: Number(ui.maxTokens.value),
    }, { signal: replyAbort.signal });
    let finish: string | null = null;
    for await (const chunk of stream) {
      finish = chunk.choices[0]?.finish_reason ?? finish;
      const delta = chunk.choices[0]?.delta.content;
      if (delta) {
        firstToken ||= performance.now();
        content += delta;
        body.innerHTML = renderMarkdown(content.trimStart());
        ui.messages.scrollTop = ui.messages.scrollHeight;
      }
      if (chunk.usage) {
        const seconds = (performance.now() - firstToken) / 1000;
        const u = chunk.usage;
        const predicted = estimated && estimated.source === loadedSource ? ` (predicted ${estimated.decodeTokS.toFixed(1)})` : '';
        stats.textContent = `${u.completion_tokens} tokens · ${(u.completion_tokens / Math.max(seconds, 1e-3)).toFixed(1)} tokens/s${predicted} · first token ${Math.round(firstToken - started)} ms · context ${u.total_tokens}${finish === 'abort' ? ' · stopped' : ''}`;
      }
    }
    history.push({ role: 'assistant', content: content.trimStart() });
  } catch (e) {
    showError(e);
  } finally {
    setBusy(false);
  }
}

ui.composer.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = ui.input.value.trim();
  if (!text || busy || !modelLoaded) return;
  ui.input.value = '';
  history.push({ role: 'user', content: text });
  addMessage('user', text);
  void reply();
});
ui.input.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.stop.addEventListener('click', () => {
  replyAbort?.abort();
  loadAbort?.abort();
});
ui.cancel.addEventListener('click', () => loadAbort?.abort());
ui.regenerate.addEventListener('click', () => {
  if (history.at(-1)?.role !== 'assistant') return;
  history.pop();
  ui.messages.lastElementChild?.remove();
  void reply();
});
ui.newChat.addEventListener('click', () => {
  replyAbort?.abort();
  history = [];
  ui.messages.replaceChildren(ui.empty);
  ui.empty.hidden = false;
  ui.input.focus();
});
ui.preset.replaceChildren(
  ...PRESETS.map((p) => Object.assign(document.createElement('option'), { value: p.url, textContent: `${p.name} · ${gb(p.bytes)}` })),
  Object.assign(document.createElement('option'), { value: '', textContent: 'Custom URL' }),
);
const showPreset = () => {
  const p = PRESETS.find((x) => x.url === ui.preset.value);
  ui.presetInfo.textContent = p ? `${gb(p.bytes)} download, checked against its SHA-256; needs about ${gb(p.needs.gpuBytes)} of GPU memory at a ${p.needs.contextLength}-token context.` : 'Any Llama-family GGUF with F32, F16, BF16, Q8_0, Q4_0/Q4_1, Q5_0/Q5_1 or Q4_K/Q5_K/Q6_K tensors (Q4_K_M, Q5_K_M, Q6_K files).';
};
/** The prompt length the estimate's time to first token is for. */
const ESTIMATE_PROMPT = 256;
/** The estimate of the model in the URL field: the prediction shown beside the measured speed. */
let estimated: { source: string; decodeTokS: number } | undefined;
let estimateAbort: AbortController | undefined;
let estimateTimer: ReturnType<typeof setTimeout> | undefined;
/**
 * Will the chosen model run here: engine.estimate reads its header (never the weights) and
 * measures its speed on this GPU, before the Load button does anything.
 */
const showEstimate = () => {
  clearTimeout(estimateTimer);
  estimateAbort?.abort();
  ui.estimate.textContent = '';
  delete ui.estimate.dataset.fits;
  const url = ui.url.value.trim();
  if (!url || !engine) return;
  estimateTimer = setTimeout(async () => {
    const abort = (estimateAbort = new AbortController());
    ui.estimate.textContent = 'Checking whether it runs here…';
    try {
      const e = await engine!.estimate(PRESETS.find((p) => p.url === url) ?? url, { promptTokens: ESTIMATE_PROMPT, signal: abort.signal });
      if (abort.signal.aborted) return;
      ui.estimate.dataset.fits = String(e.fits);
      if (e.fits && e.speed) estimated = { source: url, decodeTokS: e.speed.decodeTokS };
      ui.estimate.textContent = e.fits
        ? `Fits this device: ${mib(e.peakGpuBytes)} of GPU memory at a ${e.contextLength}-token context; about ${e.speed!.decodeTokS.toFixed(1)} tokens/s here, first token after ${(e.speed!.ttftMs / 1000).toFixed(1)} s for a ${ESTIMATE_PROMPT}-token prompt.`
        : `Does not fit this device: ${e.reasons.join('; ')}.`;
    } catch (err) {
      if (abort.signal.aborted) return;
      ui.estimate.textContent = `Could not check it before loading: ${isWebGGUFError(err) ? err.message : String(err)}`;
    }
  }, 400);
};
ui.preset.addEventListener('change', () => {
  if (ui.preset.value) ui.url.value = ui.preset.value;
  showPreset();
  showEstimate();
});
ui.url.addEventListener('input', () => {
  ui.preset.value = PRESETS.some((p) => p.url === ui.url.value) ? ui.url.value : '';
  showPreset();
  showEstimate();
});
ui.loadUrl.addEventListener('click', () => {
  const url = ui.url.value.trim();
  void load_(PRESETS.find((p) => p.url === url) ?? url);
});
ui.file.addEventListener('change', () => {
  const f = ui.file.files?.[0];
  if (f) void load_(f);
});
document.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  document.body.classList.add('dragging');
});
document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
document.addEventListener('drop', (ev) => {
  ev.preventDefault();
  document.body.classList.remove('dragging');
  const f = ev.dataTransfer?.files[0];
  if (f) void load_(f);
});

async function start(): Promise<void> {
  const config = await fetch('./demo-config.json').then((r) => (r.ok ? r.json() : {})).catch(() => ({})) as { defaultModel?: string | null };
  ui.url.value = new URLSearchParams(location.search).get('model') ?? (config.defaultModel ? new URL(config.defaultModel, location.href).href : DEFAULT_MODEL);
  ui.url.dispatchEvent(new Event('input'));
  if (!navigator.gpu) {
    ui.device.append(...dl({ WebGPU: 'not available' }));
    showError(new Error('This browser has no WebGPU, which webgguf needs to run models on your GPU.'), 'Use a current Chrome or Edge (113+), or enable WebGPU in your browser’s flags (chrome://flags/#enable-unsafe-webgpu).');
    ui.loadUrl.disabled = true;
    return;
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (adapter) {
    const info = adapter.info;
    const f = ['shader-f16', 'subgroups'].map((x) => `${x} ${adapter.features.has(x) ? '✓' : '✗'}`).join(', ');
    ui.device.append(...dl({
      Adapter: [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unknown',
      Features: f,
      'Max binding': mib(adapter.limits.maxStorageBufferBindingSize),
      'Max buffer': mib(adapter.limits.maxBufferSize),
    }));
    ui.device.append(Object.assign(document.createElement('dt'), { textContent: 'Enabled' }), enabledFeatures);
    enabledFeatures.textContent = '(after a model loads)';
  }
  try {
    engine = await createEngine();
    ui.loadUrl.disabled = false;
    document.body.dataset.ready = 'true';
    showEstimate();
    await refreshCache();
  } catch (e) {
    showError(e);
  }
}
engineStarted = start();
