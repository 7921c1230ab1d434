/** On a phone the conversations and the settings are drawers over the chat. */
import { ui } from './dom.js';

export function openDrawer(panel: HTMLElement, button: HTMLButtonElement): void {
  closeDrawers();
  panel.classList.add('open');
  document.body.classList.add('drawer-open');
  button.setAttribute('aria-expanded', 'true');
  ui.scrim.hidden = false;
  panel.querySelector<HTMLElement>('button, input, select, textarea')?.focus();
}

export function closeDrawers(): void {
  const wasOpen = document.body.classList.contains('drawer-open');
  for (const p of [ui.chatsPanel, ui.settingsPanel]) p.classList.remove('open');
  for (const b of [ui.openChats, ui.openSettings]) b.setAttribute('aria-expanded', 'false');
  document.body.classList.remove('drawer-open');
  ui.scrim.hidden = true;
  if (wasOpen && !ui.input.disabled) ui.input.focus();
}

export function mountDrawers(): void {
  ui.openChats.addEventListener('click', () => openDrawer(ui.chatsPanel, ui.openChats));
  ui.openSettings.addEventListener('click', () => openDrawer(ui.settingsPanel, ui.openSettings));
  ui.closeSettings.addEventListener('click', closeDrawers);
  // The empty chat's way to the model: the drawer on a phone, the Load button beside it elsewhere.
  ui.emptyLoad.addEventListener('click', () => {
    if (getComputedStyle(ui.openSettings).display !== 'none') openDrawer(ui.settingsPanel, ui.openSettings);
    ui.loadUrl.focus();
  });
  ui.scrim.addEventListener('click', closeDrawers);
}
