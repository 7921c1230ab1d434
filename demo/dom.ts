/** The demo page's elements, and the small builders every panel uses. */

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export const ui = {
  preset: $<HTMLSelectElement>('preset'), presetInfo: $('preset-info'), estimate: $('estimate'), url: $<HTMLInputElement>('model-url'), file: $<HTMLInputElement>('model-file'), loadUrl: $<HTMLButtonElement>('load-url'),
  progress: $('progress'), fill: $('progress-fill'), progressText: $('progress-text'), cancel: $<HTMLButtonElement>('cancel'),
  status: $('model-status'), cacheList: $('cache-list'), storage: $('storage'), device: $('device'),
  settings: $<HTMLFormElement>('settings'), settingsErrors: $('settings-errors'), resetSettings: $<HTMLButtonElement>('reset-settings'),
  system: $<HTMLTextAreaElement>('system'), stopStrings: $<HTMLTextAreaElement>('stop-strings'), jsonMode: $<HTMLInputElement>('json-mode'), jsonSchema: $<HTMLTextAreaElement>('json-schema'),
  messages: $('messages'), empty: $('empty'), emptyTitle: $('empty-title'), emptyText: $('empty-text'), emptyLoad: $<HTMLButtonElement>('empty-load'), composer: $<HTMLFormElement>('composer'),
  input: $<HTMLTextAreaElement>('input'), send: $<HTMLButtonElement>('send'), stop: $<HTMLButtonElement>('stop'), liveStats: $('live-stats'), composerHint: $('composer-hint'),
  regenerate: $<HTMLButtonElement>('regenerate'), newChat: $<HTMLButtonElement>('new-chat'), chatSearch: $<HTMLInputElement>('chat-search'), chatList: $('chat-list'),
  chatTitle: $('chat-title'), contextMeter: $<HTMLMeterElement>('context-meter'), contextText: $('context-text'),
  openChats: $<HTMLButtonElement>('open-chats'), openSettings: $<HTMLButtonElement>('open-settings'), closeSettings: $<HTMLButtonElement>('close-settings'), scrim: $('scrim'),
  chatsPanel: $('chats-panel'), settingsPanel: $('settings-panel'),
  banner: $('banner'), bannerText: $('banner-text'), bannerClose: $<HTMLButtonElement>('banner-close'),
};

export const el = <K extends keyof HTMLElementTagNameMap>(tag: K, props: Record<string, unknown> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};

/** A button that does not submit, named for screen readers by `label` where its text alone would not say what it acts on. */
export function button(text: string, className: string, label?: string, props: Record<string, unknown> = {}): HTMLButtonElement {
  const b = el('button', { type: 'button', className, textContent: text, ...props });
  if (label) b.setAttribute('aria-label', label);
  return b;
}

/** A delete asked in place: `container` shows the question with Delete and Keep until one is clicked. */
export function confirmDelete(container: HTMLElement, question: string, labels: { yes: string; no?: string }, onYes: () => unknown, onNo: () => unknown): void {
  const yes = button('Delete', 'danger small', labels.yes);
  const no = button('Keep', 'ghost small', labels.no);
  container.replaceChildren(el('span', { className: 'confirm', textContent: question }), yes, no);
  no.addEventListener('click', () => void onNo());
  yes.addEventListener('click', () => void onYes());
  yes.focus();
}

/** A description list's terms and definitions. */
export function dl(entries: Record<string, string>): HTMLElement[] {
  return Object.entries(entries).flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: v })]);
}

/** Decimal gigabytes (or megabytes), as download sizes are usually given. */
export const gb = (b: number) => (b >= 1e8 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
/** 260K, 135M, 1.5B: parameter counts as model cards give them. */
export const count = (n: number) => (n >= 1e9 ? `${+(n / 1e9).toFixed(1)}B` : n >= 1e6 ? `${Math.round(n / 1e6)}M` : `${Math.round(n / 1e3)}K`);
export const mib = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GB` : `${(b / 2 ** 20).toFixed(1)} MB`);
export const baseName = (s: string) => decodeURIComponent(s.split(/[/\\]/).pop() || s);
