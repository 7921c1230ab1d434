/** The saved conversations' list: open, rename in place, delete after asking. */
import { button, confirmDelete, el } from './dom.js';
import type { Conversation } from './store.js';

/** What the list's buttons do (the app's state is main.ts's); `render` draws the list again. */
export interface ChatListActions {
  open(c: Conversation): void;
  /** Saves the conversation, named `title` where one was given. */
  rename(c: Conversation, title: string): Promise<void>;
  remove(c: Conversation): Promise<void>;
  render(): void;
}

/** The conversations whose title or messages hold `query`, most recent first as given, into `list`. */
export function renderChatList(list: HTMLElement, conversations: Conversation[], current: Conversation, query: string, actions: ChatListActions): void {
  const shown = conversations.filter((c) => !query || c.title.toLowerCase().includes(query) || c.messages.some((m) => m.content.toLowerCase().includes(query)));
  list.replaceChildren(...shown.map((c) => {
    const open = el('button', { type: 'button', className: 'chat-open', textContent: c.title });
    if (c === current) open.setAttribute('aria-current', 'true');
    open.addEventListener('click', () => actions.open(c));
    const rename = button('✎', 'ghost small icon', `Rename “${c.title}”`, { title: 'Rename' });
    const remove = button('✕', 'ghost small icon', `Delete “${c.title}”`, { title: 'Delete' });
    const li = el('li', {}, open, rename, remove);
    rename.addEventListener('click', () => {
      const input = el('input', { type: 'text', value: c.title, className: 'rename' });
      input.setAttribute('aria-label', 'New name of the conversation');
      const done = () => actions.rename(c, input.value.trim());
      input.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') void done();
        if (ev.key === 'Escape') actions.render();
      });
      input.addEventListener('blur', () => void done());
      li.replaceChildren(input);
      input.select();
    });
    remove.addEventListener('click', () => confirmDelete(li, 'Delete this chat?', { yes: `Yes, delete “${c.title}”` }, () => actions.remove(c), actions.render));
    return li;
  }));
  if (!shown.length) list.replaceChildren(el('li', { className: 'hint', textContent: query ? 'No chat matches.' : 'No saved chats yet.' }));
}
