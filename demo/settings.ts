/** The settings form: a conversation's system prompt and sampling, checked field by field. */
import type { ChatCompletionRequest } from '../src/index.js';
import { $, el, ui } from './dom.js';
import type { ChatSettings } from './store.js';

/** The numeric settings: their field, and what a valid value is (max tokens: up to the model's context). */
const NUMBER_FIELDS: { key: keyof ChatSettings; id: string; label: string; ok: (v: number, maxTokens: number) => boolean; what: string }[] = [
  { key: 'temperature', id: 'temperature', label: 'Temperature', ok: (v) => v >= 0 && v <= 2, what: 'a number from 0 to 2' },
  { key: 'top_p', id: 'top-p', label: 'Top-p', ok: (v) => v > 0 && v <= 1, what: 'a number above 0, at most 1' },
  { key: 'top_k', id: 'top-k', label: 'Top-k', ok: (v) => Number.isInteger(v) && v >= 0, what: 'a whole number ≥ 0 (0: no limit)' },
  { key: 'min_p', id: 'min-p', label: 'Min-p', ok: (v) => v >= 0 && v <= 1, what: 'a number from 0 to 1' },
  { key: 'repetition_penalty', id: 'repetition-penalty', label: 'Repeat penalty', ok: (v) => v > 0 && v <= 2, what: 'a number above 0, at most 2' },
  { key: 'frequency_penalty', id: 'frequency-penalty', label: 'Frequency penalty', ok: (v) => Math.abs(v) <= 2, what: 'a number from -2 to 2' },
  { key: 'presence_penalty', id: 'presence-penalty', label: 'Presence penalty', ok: (v) => Math.abs(v) <= 2, what: 'a number from -2 to 2' },
  { key: 'max_tokens', id: 'max-tokens', label: 'Max tokens', ok: (v, maxTokens) => Number.isInteger(v) && v >= 1 && v <= maxTokens, what: '' },
];

/** Puts a conversation's settings in the form. */
export function fillSettingsForm(s: ChatSettings): void {
  ui.system.value = s.system;
  for (const f of NUMBER_FIELDS) ($<HTMLInputElement>(f.id)).value = String(s[f.key]);
  $<HTMLInputElement>('seed').value = s.seed === null ? '' : String(s.seed);
  ui.stopStrings.value = s.stop.join('\n');
  ui.jsonMode.checked = s.json_schema !== null;
  ui.jsonSchema.hidden = s.json_schema === null;
  ui.jsonSchema.value = s.json_schema ?? JSON.stringify({ type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] }, null, 2);
}

/**
 * Reads and checks every field: `base` with the form's values, and the problems by field id, each
 * shown beside its field and listed under the form.
 */
export function readSettingsForm(base: ChatSettings, maxTokens: number): { settings: ChatSettings; problems: Map<string, string> } {
  const problems = new Map<string, string>();
  const next: ChatSettings = { ...base, system: ui.system.value };
  for (const f of NUMBER_FIELDS) {
    const raw = $<HTMLInputElement>(f.id).value.trim();
    const v = Number(raw);
    const what = f.key === 'max_tokens' ? `a whole number from 1 to ${maxTokens}` : f.what;
    if (raw === '' || !Number.isFinite(v) || !f.ok(v, maxTokens)) problems.set(f.id, `${f.label} must be ${what}${raw === '' ? ' (it is empty)' : `, not ${raw}`}.`);
    else (next[f.key] as number) = v;
  }
  const seedRaw = $<HTMLInputElement>('seed').value.trim();
  if (seedRaw === '') next.seed = null;
  else if (/^-?\d+$/.test(seedRaw) && Number.isSafeInteger(Number(seedRaw))) next.seed = Number(seedRaw);
  else problems.set('seed', `Seed must be a whole number, or empty for a random one, not ${seedRaw}.`);
  next.stop = ui.stopStrings.value.split('\n').filter((s) => s !== '');
  if (next.stop.length > 4) problems.set('stop-strings', `At most 4 stop strings, not ${next.stop.length}.`);
  ui.jsonSchema.hidden = !ui.jsonMode.checked;
  if (ui.jsonMode.checked) {
    try {
      const schema: unknown = JSON.parse(ui.jsonSchema.value);
      if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new Error('not an object');
      next.json_schema = ui.jsonSchema.value;
    } catch {
      problems.set('json-schema', 'The JSON schema must be a JSON object, e.g. {"type": "object"}.');
    }
  } else next.json_schema = null;
  for (const id of ['system', 'seed', 'stop-strings', 'json-schema', ...NUMBER_FIELDS.map((f) => f.id)]) {
    const input = $(id);
    const problem = problems.get(id);
    if (problem) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
  ui.settingsErrors.replaceChildren(...[...problems.values()].map((p) => el('li', { textContent: p })));
  return { settings: next, problems };
}

/** The request's sampling fields from a conversation's settings. */
export function samplingFields(s: ChatSettings): Partial<ChatCompletionRequest> {
  return {
    temperature: s.temperature, top_p: s.top_p, top_k: s.top_k, min_p: s.min_p, repetition_penalty: s.repetition_penalty,
    frequency_penalty: s.frequency_penalty, presence_penalty: s.presence_penalty, max_tokens: s.max_tokens,
    ...(s.seed !== null ? { seed: s.seed } : {}),
    ...(s.stop.length ? { stop: s.stop } : {}),
    ...(s.json_schema !== null ? { response_format: { type: 'json_schema', json_schema: { name: 'reply', schema: JSON.parse(s.json_schema) as Record<string, unknown>, strict: true } } } : {}),
  };
}
