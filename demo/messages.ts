/** A message of the conversation on the page: its text (a reply's as markdown), extras, numbers and buttons. */
import { renderMarkdown } from './markdown.js';
import { button, el } from './dom.js';
import type { StoredMessage } from './store.js';

export interface MessageView { root: HTMLElement; body: HTMLElement; extras: HTMLElement; meta: HTMLElement; update(): void }

/** What a message's buttons do to the conversation (the app's state is main.ts's). */
export interface MessageActions {
  /** The loaded model's context, for numbers saved without one. */
  contextLength(): number | undefined;
  /** Whether a message may be edited now (no reply streaming). */
  canEdit(): boolean;
  /** A user message edited to `text`: the rest of the conversation is redone. */
  resend(m: StoredMessage, text: string): void;
  regenerate(m: StoredMessage, root: HTMLElement): void;
  remove(m: StoredMessage, root: HTMLElement): void;
}

const FINISH_TEXT: Record<string, string> = {
  length: 'Cut off: it reached the max tokens limit (Settings › Max tokens).',
  abort: 'Stopped.',
  error: 'Cut short by an error (above).',
  tool_calls: 'Ended with a tool call.',
};

function statsText(m: StoredMessage, contextLength: number | undefined): string {
  const u = m.usage;
  if (!u) return '';
  const ctx = u.context ?? contextLength;
  return [
    `${u.completion} tokens`,
    `${u.decodeTokS.toFixed(1)} tokens/s${u.predictedTokS ? ` (predicted ${u.predictedTokS.toFixed(1)})` : ''}`,
    `prefill ${Math.round(u.prefillTokS)} tokens/s`,
    `first token ${Math.round(u.ttftMs)} ms`,
    // The last sampled token is not in the context yet: the count never passes its size.
    `context ${ctx ? `${Math.min(u.total, ctx)} / ${ctx}` : u.total}`,
    ...(m.finish === 'abort' ? ['stopped'] : []),
  ].join(' · ');
}

export function messageView(m: StoredMessage, actions: MessageActions): MessageView {
  const root = el('article', { className: `message ${m.role}` });
  const who = el('div', { className: 'who', textContent: m.role === 'user' ? 'You' : 'Model' });
  const extras = el('div', { className: 'extras' });
  const body = el('div', { className: 'body' });
  const meta = el('div', { className: 'meta' });
  const actionBar = el('div', { className: 'actions' });
  const action = (text: string, label: string, onClick: () => void) => {
    const b = button(text, 'ghost small', label);
    b.addEventListener('click', onClick);
    actionBar.append(b);
    return b;
  };
  const copy = action('Copy', m.role === 'user' ? 'Copy your message' : 'Copy the reply', () => {
    void navigator.clipboard?.writeText(m.content).then(() => (copy.textContent = 'Copied'), () => (copy.textContent = 'Copy failed'));
    setTimeout(() => (copy.textContent = 'Copy'), 1500);
  });
  if (m.role === 'user') {
    action('Edit', 'Edit and resend this message', () => editMessage(m, view, actions));
  } else {
    action('Regenerate', 'Regenerate this reply', () => actions.regenerate(m, root));
    action('Delete', 'Delete this reply', () => actions.remove(m, root));
  }
  root.append(who, extras, body, meta, actionBar);
  const view: MessageView = {
    root, body, extras, meta,
    update() {
      root.dataset.finish = m.finish ?? '';
      if (m.usage) root.dataset.promptTokens = String(m.usage.prompt);
      if (m.role === 'user') body.textContent = m.content;
      else {
        body.innerHTML = renderMarkdown(m.content.trimStart());
        for (const pre of body.querySelectorAll('pre')) {
          const b = button('Copy code', 'ghost small copy-code');
          b.addEventListener('click', () => void navigator.clipboard?.writeText(pre.textContent ?? '').then(() => (b.textContent = 'Copied')));
          pre.before(b);
        }
        if (!m.content && !m.reasoning && !m.toolCalls?.length && m.finish) body.replaceChildren(el('p', { className: 'hint', textContent: '(no text)' }));
      }
      extras.replaceChildren();
      if (m.reasoning) {
        const d = el('details', { className: 'reasoning', open: !m.finish }, el('summary', { textContent: 'Reasoning' }), el('div', { className: 'reasoning-text', textContent: m.reasoning }));
        extras.append(d);
      }
      for (const call of m.toolCalls ?? []) {
        extras.append(el('details', { className: 'tool-call', open: true }, el('summary', { textContent: `Tool call: ${call.name}` }), el('pre', {}, el('code', { textContent: call.arguments }))));
      }
      meta.replaceChildren();
      if (m.shifted) meta.append(el('p', { className: 'note shift', textContent: 'Earlier messages no longer fit the model’s context: the oldest turns were left out of this reply.' }));
      // A stopped reply with its numbers says so in them.
      if (m.finish && FINISH_TEXT[m.finish] && !(m.finish === 'abort' && m.usage)) meta.append(el('p', { className: `finish finish-${m.finish}`, textContent: FINISH_TEXT[m.finish]! }));
      if (m.usage) meta.append(el('p', { className: 'stats', textContent: statsText(m, actions.contextLength()) }));
    },
  };
  view.update();
  return view;
}

function editMessage(m: StoredMessage, view: MessageView, actions: MessageActions): void {
  if (!actions.canEdit()) return;
  const box = el('textarea', { value: m.content, rows: Math.min(8, m.content.split('\n').length + 1) });
  box.setAttribute('aria-label', 'Edit your message');
  const send = el('button', { type: 'button', textContent: 'Save and send' });
  const cancel = el('button', { type: 'button', className: 'secondary', textContent: 'Cancel' });
  const form = el('div', { className: 'edit' }, box, el('div', { className: 'buttons' }, send, cancel));
  view.body.replaceChildren(form);
  box.focus();
  const resend = () => actions.resend(m, box.value.trim());
  send.addEventListener('click', resend);
  cancel.addEventListener('click', () => view.update());
  box.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      resend();
    }
    if (ev.key === 'Escape') view.update();
  });
}
