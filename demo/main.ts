import {
  createEngine, isWebGGUFError, MODELS,
  type CacheEntry, type CatalogModel, type ChatCompletionMessageParam, type Engine, type ModelInfo, type ModelSource,
} from '../src/index.js';
import { renderChatList as renderChats, type ChatListActions } from './chat-list.js';
import { $, baseName, count, dl, el, mib, ui } from './dom.js';
import { closeDrawers, mountDrawers } from './drawers.js';
import { messageView, type MessageActions } from './messages.js';
import { cachedName, presetOption, presetText, renderCacheList, showProgress } from './models.js';
import { fillSettingsForm, readSettingsForm, samplingFields } from './settings.js';
import {
  DEFAULT_SETTINGS, deleteConversation, lastConversation, lastModel, listConversations, saveConversation, setLastConversation, setLastModel,
  type ChatSettings, type Conversation, type StoredMessage,
} from './store.js';

/** The presets: the library's catalogue of known-good models, each verified by its SHA-256 on download. */
const PRESETS: CatalogModel[] = Object.values(MODELS);
const DEFAULT_MODEL = MODELS.stories260k.url;
const maxTokensLimit = () => loaded?.info.contextLength ?? 32768;

interface LoadedModel { info: ModelInfo; name: string; url?: string }
let engine: Engine | undefined;
let loaded: LoadedModel | undefined;
let loading: AbortController | undefined;
let replying: { conv: Conversation; abort: AbortController } | undefined;
let conversations: Conversation[] = [];
let current: Conversation = newConversation();
/** Field id → what is wrong with it. */
let settingsProblems = new Map<string, string>();
/** Resolves once the engine exists (or failed to start). */
let engineStarted!: () => void;
const engineReady = new Promise<void>((resolve) => (engineStarted = resolve));
let cacheEntries: CacheEntry[] = [];
/** Replies ended (done, stopped or failed), on the body for tests: data-replies. */
let repliesEnded = 0;
const enabledFeatures = document.createElement('dd');

function newConversation(): Conversation {
  return { id: crypto.randomUUID(), title: 'New chat', named: false, updatedAt: Date.now(), messages: [], settings: { ...DEFAULT_SETTINGS } };
}

// ---- Errors ----------------------------------------------------------------------------------

function showError(e: unknown, next = ''): void {
  const message = isWebGGUFError(e) ? e.message : e instanceof Error ? e.message : String(e);
  const advice: Record<string, string> = {
    'quota-exceeded': 'Delete a cached model, or free disk space, then try again.',
    'unsupported-architecture': 'Pick a Llama-family (Llama, TinyLlama, SmolLM, Mistral), Qwen, Gemma or Phi-3 GGUF.',
    'unsupported-tensor-type': 'Pick a file quantized as Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16 or F32.',
    'device-lost': 'The GPU was reset. Load the model again; it comes from the cache.',
    'no-webgpu': 'Use a current Chrome or Edge, or enable WebGPU in your browser flags.',
    'context-overflow': 'Shorten the message, or start a new chat: it does not fit the model’s context.',
    'insufficient-memory': 'Nothing was downloaded. Pick a smaller model or a smaller quantization.',
    integrity: 'The file did not match its checksum and was discarded. Try again, or check the source.',
  };
  const code = isWebGGUFError(e) ? e.code : '';
  const sentence = /[.!?]$/.test(message) ? message : `${message}.`;
  ui.bannerText.textContent = `${sentence} ${next || advice[code] || ''}`.trim();
  ui.banner.hidden = false;
}
const hideError = () => (ui.banner.hidden = true);
ui.bannerClose.addEventListener('click', hideError);
void import('./notes-search.js').then((m) => m.mountNotesSearch($('notes')));

// ---- Controls --------------------------------------------------------------------------------

/** Every button's state from the app's state: one place, so Stop and Cancel never both apply. */
function updateControls(): void {
  const ready = !!loaded && !loading;
  ui.input.disabled = !loaded && !loading;
  ui.send.disabled = !ready || !!replying || settingsProblems.size > 0;
  ui.stop.disabled = !replying;
  ui.cancel.disabled = !loading;
  // Regenerate redoes the last reply, or retries one that failed (the last message is then the user's).
  ui.regenerate.disabled = !ready || !!replying || current.messages.length === 0;
  ui.loadUrl.disabled = !engine || !!loading || !!replying;
  ui.file.disabled = !engine || !!loading || !!replying;
  ui.composerHint.textContent = settingsProblems.size ? 'Fix the settings to send.' : '';
  renderEmpty();
}

function renderEmpty(): void {
  ui.empty.hidden = current.messages.length > 0 || ui.messages.querySelector('.message') !== null;
  ui.emptyLoad.hidden = !!loaded || !!loading;
  if (loaded) {
    ui.emptyTitle.textContent = `${loaded.name} is ready. Say hello.`;
    ui.emptyText.textContent = `Context ${loaded.info.contextLength} tokens. Replies are made on this device; nothing is sent anywhere.`;
  } else if (loading) {
    ui.emptyTitle.textContent = 'Loading the model…';
    ui.emptyText.textContent = 'You can type while it loads.';
  } else {
    ui.emptyTitle.textContent = 'Load a model, then say hello.';
    ui.emptyText.textContent = 'The default is stories260K, a 1 MB model that writes tiny stories, so you can see text streaming in seconds.';
  }
}

function renderContextMeter(): void {
  const ctx = loaded?.info.contextLength;
  const last = [...current.messages].reverse().find((m) => m.usage);
  const used = last?.usage && ctx ? Math.min(last.usage.total, ctx) : 0;
  ui.contextMeter.max = ctx ?? 1;
  ui.contextMeter.value = used;
  ui.contextMeter.high = (ctx ?? 1) * 0.8;
  ui.contextText.textContent = ctx ? `${used} / ${ctx} tokens` : '';
}

// ---- Conversations ---------------------------------------------------------------------------

async function persist(conv: Conversation): Promise<void> {
  conv.updatedAt = Date.now();
  if (!conv.named) {
    const first = conv.messages.find((m) => m.role === 'user');
    conv.title = first ? first.content.replace(/\s+/g, ' ').slice(0, 48) : 'New chat';
  }
  if (!conversations.includes(conv)) conversations.unshift(conv);
  conversations.sort((a, b) => b.updatedAt - a.updatedAt);
  renderChatList();
  if (conv === current) ui.chatTitle.textContent = conv.title;
  await saveConversation(conv).catch(() => undefined);
}

const chatListActions: ChatListActions = {
  open: openConversation,
  rename: async (c: Conversation, title: string) => {
    if (title) Object.assign(c, { title, named: true });
    await persist(c);
  },
  remove: async (c: Conversation) => {
    if (replying?.conv === c) replying.abort.abort();
    conversations = conversations.filter((x) => x !== c);
    await deleteConversation(c.id).catch(() => undefined);
    if (c === current) openConversation(conversations[0] ?? newConversation());
    else renderChatList();
  },
  render: () => renderChatList(),
};
function renderChatList(): void {
  renderChats(ui.chatList, conversations, current, ui.chatSearch.value.trim().toLowerCase(), chatListActions);
}
ui.chatSearch.addEventListener('input', renderChatList);

function openConversation(conv: Conversation): void {
  current = conv;
  void setLastConversation(conv.id).catch(() => undefined);
  ui.chatTitle.textContent = conv.title;
  ui.messages.replaceChildren(ui.empty, ...conv.messages.map((m) => messageView(m, messageActions).root));
  ui.messages.scrollTop = ui.messages.scrollHeight;
  fillSettings(conv.settings);
  renderChatList();
  renderContextMeter();
  updateControls();
  closeDrawers();
}

ui.newChat.addEventListener('click', () => {
  // A reply still streaming stops and stays in its own conversation.
  replying?.abort.abort();
  hideError();
  const fresh = newConversation();
  // The new chat starts with the settings of the one before (its system prompt, sampling).
  fresh.settings = { ...current.settings };
  openConversation(fresh);
  ui.input.focus();
});

// ---- Messages --------------------------------------------------------------------------------

const messageActions: MessageActions = {
  contextLength: () => loaded?.info.contextLength,
  canEdit: () => !replying,
  resend: (m, text) => {
    const i = current.messages.indexOf(m);
    if (!text || i < 0 || replying || !loaded || loading) return;
    m.content = text;
    // Everything after the edited message was an answer to the old text.
    current.messages.splice(i + 1);
    openConversation(current);
    void persist(current);
    void reply();
  },
  regenerate: (m, root) => {
    if (replying || !loaded || loading) return;
    const i = current.messages.indexOf(m);
    if (i < 0) return;
    current.messages.splice(i);
    root.remove();
    void reply();
  },
  remove: (m, root) => {
    const i = current.messages.indexOf(m);
    if (i < 0 || replying?.conv === current) return;
    current.messages.splice(i, 1);
    root.remove();
    void persist(current);
    renderContextMeter();
    updateControls();
  },
};

function requestMessages(conv: Conversation): ChatCompletionMessageParam[] {
  const system = conv.settings.system.trim();
  return [
    ...(system ? [{ role: 'system' as const, content: system }] : []),
    ...conv.messages.map((m) => ({ role: m.role, content: m.content })),
  ];
}

/** The model's reply to the conversation as it stands (its last message is the user's). */
async function reply(): Promise<void> {
  if (!engine || !loaded || loading || replying) return;
  const conv = current;
  const abort = new AbortController();
  replying = { conv, abort };
  hideError();
  updateControls();
  const m: StoredMessage = { role: 'assistant', content: '' };
  const view = messageView(m, messageActions);
  ui.messages.append(view.root);
  ui.messages.scrollTop = ui.messages.scrollHeight;
  const previousTotal = [...conv.messages].reverse().find((x) => x.usage)?.usage?.total ?? 0;
  const started = performance.now();
  let firstToken = 0;
  let pieces = 0;
  let failed: unknown;
  try {
    const stream = await engine.chat.completions.create({
      messages: requestMessages(conv), ...samplingFields(conv.settings), stream: true, stream_options: { include_usage: true },
    }, { signal: abort.signal });
    const calls: { name: string; arguments: string }[] = [];
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice) {
        const d = choice.delta;
        if (d.content || d.reasoning_content) {
          firstToken ||= performance.now();
          pieces++;
        }
        if (d.content) m.content += d.content;
        if (d.reasoning_content) m.reasoning = (m.reasoning ?? '') + d.reasoning_content;
        for (const c of d.tool_calls ?? []) {
          const call = (calls[c.index] ??= { name: '', arguments: '' });
          call.name += c.function.name ?? '';
          call.arguments += c.function.arguments;
          m.toolCalls = calls;
        }
        if (choice.finish_reason) m.finish = choice.finish_reason;
        if (firstToken && conv === current) {
          const seconds = (performance.now() - firstToken) / 1000;
          ui.liveStats.textContent = `${pieces} tokens · ${seconds > 0.05 ? (pieces / seconds).toFixed(1) : '…'} tokens/s`;
        }
        view.update();
        if (conv === current) ui.messages.scrollTop = ui.messages.scrollHeight;
      }
      if (chunk.usage) {
        const u = chunk.usage;
        m.usage = {
          prompt: u.prompt_tokens, completion: u.completion_tokens, total: u.total_tokens,
          ttftMs: firstToken ? firstToken - started : u.extra.time_to_first_token_s * 1000,
          prefillTokS: u.extra.prefill_tokens_per_s, decodeTokS: u.extra.decode_tokens_per_s,
          ...(estimated && estimated.url === loaded?.url ? { predictedTokS: estimated.decodeTokS } : {}),
          ...(loaded ? { context: loaded.info.contextLength } : {}),
        };
        // The prompt holds every earlier turn: shorter than the last total, some were dropped (contextPolicy 'shift').
        m.shifted = u.prompt_tokens < previousTotal;
      }
    }
  } catch (e) {
    if (!abort.signal.aborted) failed = e;
    else m.finish ??= 'abort';
  } finally {
    replying = undefined;
    ui.liveStats.textContent = '';
  }
  const nothing = !m.content && !m.reasoning && !m.toolCalls?.length;
  if (failed && conv === current) showError(failed);
  if (nothing && (failed || m.finish === 'abort')) {
    // A reply that failed or was stopped before any text leaves no bubble. A message too long
    // for the context goes back to the input, to shorten and send again.
    view.root.remove();
    if (failed && conv.messages.at(-1)?.role === 'user' && isWebGGUFError(failed) && failed.code === 'context-overflow') {
      const asked = conv.messages.pop()!;
      if (conv === current) {
        [...ui.messages.querySelectorAll('.message.user')].at(-1)?.remove();
        if (!ui.input.value) ui.input.value = asked.content;
      }
    }
  } else {
    // What came before an error is kept, marked as cut short by it.
    if (failed) m.finish = 'error';
    m.finish ??= 'stop';
    conv.messages.push(m);
    view.update();
  }
  await persist(conv);
  if (conv === current) renderContextMeter();
  updateControls();
  document.body.dataset.replies = String(++repliesEnded);
}

ui.composer.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = ui.input.value.trim();
  if (!text || replying || !loaded || loading || settingsProblems.size) return;
  ui.input.value = '';
  hideError();
  const m: StoredMessage = { role: 'user', content: text };
  current.messages.push(m);
  ui.messages.append(messageView(m, messageActions).root);
  void persist(current);
  void reply();
});
ui.input.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    ui.composer.requestSubmit();
  }
});
document.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Escape') return;
  if (replying) replying.abort.abort();
  else if (document.body.classList.contains('drawer-open')) closeDrawers();
});
ui.stop.addEventListener('click', () => replying?.abort.abort());
ui.cancel.addEventListener('click', () => loading?.abort());
ui.regenerate.addEventListener('click', () => {
  if (replying || !current.messages.length) return;
  if (current.messages.at(-1)!.role === 'assistant') current.messages.pop();
  openConversation(current);
  void reply();
});

// ---- Settings --------------------------------------------------------------------------------

function fillSettings(s: ChatSettings): void {
  fillSettingsForm(s);
  readSettings();
}

/** Reads and checks every field; valid settings are kept for this conversation, problems shown beside their fields. */
function readSettings(): void {
  const { settings, problems } = readSettingsForm(current.settings, maxTokensLimit());
  settingsProblems = problems;
  if (!problems.size) current.settings = settings;
  updateControls();
}
ui.settings.addEventListener('input', () => {
  readSettings();
  if (!settingsProblems.size && current.messages.length) void persist(current);
});
ui.settings.addEventListener('submit', (ev) => ev.preventDefault());
ui.resetSettings.addEventListener('click', () => {
  current.settings = { ...DEFAULT_SETTINGS };
  fillSettings(current.settings);
  if (current.messages.length) void persist(current);
});

// ---- Models ----------------------------------------------------------------------------------

async function refreshCache(): Promise<void> {
  if (!engine) return;
  const [models, usage] = await Promise.all([engine.cache.list(), engine.cache.usage()]).catch(() => [[], undefined] as const);
  cacheEntries = [...models];
  renderCacheList(models, loaded?.info.id, !!loading || !!replying, {
    load: (m, name) => void loadModel({ cached: m.id }, { name }),
    remove: async (m) => {
      await engine!.cache.delete(m.id).catch(showError);
      await refreshCache();
    },
    render: () => void refreshCache(),
  });
  ui.storage.textContent = usage?.quota
    ? `Storage: ${mib(usage.usage ?? 0)} used of ${mib(usage.quota)}${usage.persisted ? ', persisted' : ', may be evicted under pressure'}.`
    : '';
}

/** The loaded model's fields: the preset and URL say what is loaded, not what was typed before. */
function followLoadedModel(): void {
  if (!loaded) return;
  ui.url.value = loaded.url ?? '';
  ui.url.placeholder = loaded.url ? '' : `${loaded.name} (loaded from ${loaded.info.id.startsWith('file:') ? 'a file' : 'the cache'})`;
  ui.preset.value = PRESETS.find((p) => p.url === loaded!.url)?.url ?? '';
  showPreset();
}

async function loadModel(source: ModelSource, label: { name: string; url?: string }): Promise<void> {
  await engineReady; // a file picked or dropped while the engine starts waits for it
  if (!engine || loading || replying) return;
  // The load goes first: a check of the URL field, pending or running, would make it wait.
  clearTimeout(estimateTimer);
  estimateAbort?.abort();
  const abort = (loading = new AbortController());
  const previous = loaded;
  loaded = undefined;
  hideError();
  ui.status.textContent = `Loading ${label.name}…`;
  updateControls();
  const started = performance.now();
  let downloaded = 0;
  try {
    const info = await engine.load(source, {
      signal: abort.signal,
      onProgress: (p) => {
        if (p.phase === 'download') downloaded = p.loaded;
        showProgress(p, started);
      },
    });
    loaded = { info, ...label };
    void setLastModel(info.id).catch(() => undefined);
    // A stored model is worth keeping: ask the browser not to evict it (it may ask the user, or decide itself).
    void engine.cache.persist().catch(() => undefined);
    enabledFeatures.textContent = info.features.length ? info.features.join(', ') : 'no optional features';
    ui.input.focus();
  } catch (e) {
    if (!abort.signal.aborted) {
      const network = isWebGGUFError(e) && e.code === 'network';
      showError(e, network
        ? downloaded > 0
          ? 'Check your connection; a retry resumes where the download stopped.'
          : 'Nothing was downloaded. Check the address and your connection (the presets come from Hugging Face, which needs the internet), or open a .gguf file from this device.'
        : '');
    }
    // The model that worked before stays: the engine let it go to load this one, so it comes back from the cache.
    if (previous) {
      try {
        loaded = { ...previous, info: await engine.load({ cached: previous.info.id }) };
      } catch {
        loaded = undefined;
      }
    }
  } finally {
    loading = undefined;
    ui.progress.hidden = true;
  }
  ui.status.textContent = loaded
    ? `${loaded.name}: ${loaded.info.architecture}, ${count(loaded.info.parameters)} parameters, ${loaded.info.quantTypes.join('/')}, context ${loaded.info.contextLength}, ${mib(loaded.info.bytesOnGpu)} on the GPU${loaded.info.fromCache ? ' (from cache)' : ''}.`
    : 'No model loaded.';
  document.body.dataset.model = loaded ? 'loaded' : 'none';
  followLoadedModel();
  readSettings(); // max tokens is checked against the new context
  renderContextMeter();
  updateControls();
  await refreshCache();
}

/** An absolute http(s) URL, or undefined: anything else would be fetched as a path of this page. */
function modelUrl(text: string): string | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

const showPreset = () => {
  ui.presetInfo.textContent = presetText(PRESETS.find((x) => x.url === ui.preset.value));
};
/** The prompt length the estimate's time to first token is for. */
const ESTIMATE_PROMPT = 256;
let estimateAbort: AbortController | undefined;
/** The speed engine.estimate measured for a URL, shown beside the measured speed once it is loaded. */
let estimated: { url: string; decodeTokS: number } | undefined;
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
  const url = modelUrl(ui.url.value.trim());
  if (!url || !engine || loading) return;
  estimateTimer = setTimeout(async () => {
    if (loading) return;
    const abort = (estimateAbort = new AbortController());
    ui.estimate.textContent = 'Checking whether it runs here…';
    try {
      const e = await engine!.estimate(PRESETS.find((p) => p.url === url) ?? url, { promptTokens: ESTIMATE_PROMPT, signal: abort.signal });
      if (abort.signal.aborted) return;
      ui.estimate.dataset.fits = String(e.fits);
      if (e.speed) estimated = { url, decodeTokS: e.speed.decodeTokS };
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
  const text = ui.url.value.trim();
  const url = modelUrl(text);
  if (!url) {
    showError(new Error(text ? `“${text}” is not a web address` : 'No URL was given'), 'Give the http(s) URL of a .gguf file, pick a preset, or open a file from this device.');
    return;
  }
  const preset = PRESETS.find((p) => p.url === url);
  void loadModel(preset ?? url, { name: preset?.name ?? baseName(new URL(url).pathname), url });
});
ui.file.addEventListener('change', () => {
  const f = ui.file.files?.[0];
  if (f) void loadModel(f, { name: f.name });
  ui.file.value = '';
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
  if (f) void loadModel(f, { name: f.name });
});

mountDrawers();

// ---- Start -----------------------------------------------------------------------------------

ui.preset.replaceChildren(...PRESETS.map(presetOption), el('option', { value: '', textContent: 'Custom URL' }));

async function start(): Promise<void> {
  // The app shell works offline after the first visit (the model itself is in IndexedDB).
  if (import.meta.env.PROD && 'serviceWorker' in navigator) void navigator.serviceWorker.register('./sw.js').catch(() => undefined);
  const config = await fetch('./demo-config.json').then((r) => (r.ok ? r.json() : {})).catch(() => ({})) as { defaultModel?: string | null };
  ui.url.value = new URLSearchParams(location.search).get('model') ?? (config.defaultModel ? new URL(config.defaultModel, location.href).href : DEFAULT_MODEL);
  ui.url.dispatchEvent(new Event('input'));
  const [saved, lastId] = await Promise.all([listConversations().catch(() => []), lastConversation().catch(() => undefined)]);
  conversations = saved;
  openConversation(conversations.find((c) => c.id === lastId) ?? newConversation());
  if (!navigator.gpu) {
    ui.device.append(...dl({ WebGPU: 'not available' }));
    showError(new Error('This browser has no WebGPU, which webgguf needs to run models on your GPU.'), 'Use a current Chrome or Edge (113+), or enable WebGPU in your browser’s flags (chrome://flags/#enable-unsafe-webgpu).');
    ui.loadUrl.disabled = true;
    engineStarted();
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
    ui.device.append(el('dt', { textContent: 'Enabled' }), enabledFeatures);
    enabledFeatures.textContent = '(after a model loads)';
  }
  try {
    // A long chat keeps going: the oldest turns drop out of the context (the reply says so).
    engine = await createEngine({ contextPolicy: 'shift' });
    engineStarted();
    updateControls();
    document.body.dataset.ready = 'true';
    await refreshCache();
    // The model used last comes back from the cache, as the conversations do.
    const last = await lastModel().catch(() => undefined);
    const entry = cacheEntries.find((e) => e.id === last);
    if (entry) await loadModel({ cached: entry.id }, { name: cachedName(entry), ...(modelUrl(entry.source) ? { url: entry.source } : {}) });
    else showEstimate();
  } catch (e) {
    showError(e);
  } finally {
    engineStarted();
  }
}
void start();
