/** The model panel's views: the presets, the cached models, the load's progress. */
import type { CacheEntry, CatalogModel, LoadProgress } from '../src/index.js';
import { baseName, button, confirmDelete, count, el, gb, mib, ui } from './dom.js';

/** The quantization in a GGUF file's name (Q4_K_M, Q8_0, F16…), or ''. */
const quantOf = (name: string) => /(?:^|[-_.])(I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32)(?=\.gguf$|[-_.])/i.exec(name)?.[1]?.toUpperCase() ?? '';

export const cachedName = (entry: CacheEntry) => baseName(entry.source);

/** The preset's option: its name, download size and context. */
export const presetOption = (p: CatalogModel) =>
  el('option', { value: p.url, textContent: `${p.name} · ${gb(p.bytes)} · ${p.contextLength >= 1024 ? `${Math.round(p.contextLength / 1024)}k` : p.contextLength} context` });

/** What the chosen preset is, or what a custom URL may name. */
export const presetText = (p: CatalogModel | undefined) =>
  p
    ? `${p.name}: ${count(p.parameters)} parameters, ${p.quantization}, ${gb(p.bytes)} download, checked against its SHA-256; context ${p.contextLength} tokens; needs about ${gb(p.needs.gpuBytes)} of GPU memory at a ${p.needs.contextLength}-token context. Licence: ${p.license}.`
    : 'Any GGUF of a supported architecture (Llama, Qwen, Gemma, Phi-3, SmolLM…) with F32, F16, BF16, Q8_0, Q4_0/Q4_1, Q5_0/Q5_1 or Q4_K/Q5_K/Q6_K tensors.';

/** What the cached models' buttons do (the app's state is main.ts's); `render` draws the list again. */
export interface CacheListActions {
  load(entry: CacheEntry, name: string): void;
  remove(entry: CacheEntry): Promise<void>;
  render(): void;
}

/** The cached models, the loaded one marked; their Load buttons disabled while `busy`. */
export function renderCacheList(models: readonly CacheEntry[], loadedId: string | undefined, busy: boolean, actions: CacheListActions): void {
  ui.cacheList.replaceChildren(...models.map((m) => {
    const name = cachedName(m);
    const fromFile = m.id.startsWith('file:');
    const isLoaded = loadedId === m.id;
    const li = el('li', { className: isLoaded ? 'loaded' : '' });
    if (isLoaded) li.setAttribute('aria-current', 'true');
    const title = el('span', { className: 'name', textContent: `${name}${fromFile ? ' (file)' : ''}`, title: m.source });
    const details = [quantOf(name), m.architecture, mib(m.storedBytes)].filter(Boolean).join(' · ');
    const info = el('span', { className: 'size', textContent: details });
    const badge = isLoaded ? [el('span', { className: 'badge', textContent: 'loaded' })] : [];
    const load = button('Load', 'ghost small', `Load ${name}`, { disabled: busy });
    load.addEventListener('click', () => actions.load(m, name));
    const del = button('Delete', 'ghost small', `Delete ${name} from the cache`);
    const row = el('div', { className: 'row' }, ...badge, load, del);
    del.addEventListener('click', () =>
      confirmDelete(row, `Delete ${mib(m.storedBytes)}?`, { yes: `Yes, delete ${name} (${mib(m.storedBytes)})`, no: `Keep ${name}` }, () => actions.remove(m), actions.render));
    li.append(el('div', { className: 'title' }, title), info, row);
    return li;
  }));
  if (!models.length) ui.cacheList.replaceChildren(el('li', { textContent: 'None yet.', className: 'hint' }));
}

export function showProgress(p: LoadProgress, started: number): void {
  ui.progress.hidden = false;
  const fraction = p.total ? p.loaded / p.total : 0;
  ui.fill.style.width = `${(100 * fraction).toFixed(1)}%`;
  // One count for the whole load (bytes fetched or read, then uploaded), so the bar never goes back.
  const seconds = (performance.now() - started) / 1000;
  const rate = p.loaded / Math.max(seconds, 0.001);
  const eta = rate > 0 && p.phase !== 'compile' ? ` · ${mib(rate)}/s · ${Math.ceil((p.total - p.loaded) / rate)} s left` : '';
  const label = { download: 'Downloading', cache: 'Reading from cache', upload: 'Uploading to the GPU', compile: 'Compiling kernels' }[p.phase];
  ui.progressText.textContent = `${label} · ${Math.round(100 * fraction)}% of ${mib(p.total)}${eta}`;
}
