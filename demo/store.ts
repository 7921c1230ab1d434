/** The demo's conversations and its last model, in IndexedDB (its own database, beside the weight cache's). */
import { createStore, del, get, set, values } from 'idb-keyval';

/** Sampling and prompt settings, kept per conversation. */
export interface ChatSettings {
  system: string;
  temperature: number;
  top_p: number;
  top_k: number;
  min_p: number;
  repetition_penalty: number;
  frequency_penalty: number;
  presence_penalty: number;
  /** null: a new seed each time. */
  seed: number | null;
  stop: string[];
  max_tokens: number;
  /** The reply must validate against this JSON schema (its text), or null for free text. */
  json_schema: string | null;
}

export const DEFAULT_SETTINGS: Readonly<ChatSettings> = Object.freeze({
  system: '', temperature: 0.7, top_p: 0.95, top_k: 40, min_p: 0.05, repetition_penalty: 1.1,
  frequency_penalty: 0, presence_penalty: 0, seed: null, stop: [], max_tokens: 256, json_schema: null,
});

export interface ToolCallView { name: string; arguments: string }

export interface StoredMessage {
  role: 'user' | 'assistant';
  content: string;
  reasoning?: string;
  toolCalls?: ToolCallView[];
  /** Assistant replies: why it ended, and its numbers. */
  finish?: string;
  /**
   * predictedTokS: engine.estimate's decode speed for the model, measured before it was loaded;
   * context: the model's context length then.
   */
  usage?: { prompt: number; completion: number; total: number; ttftMs: number; prefillTokS: number; decodeTokS: number; predictedTokS?: number; context?: number };
  /** Earlier turns the engine left out to fit the context when this reply was made. */
  shifted?: boolean;
}

export interface Conversation {
  id: string;
  title: string;
  /** Whether the user named it (else the first message names it). */
  named: boolean;
  updatedAt: number;
  messages: StoredMessage[];
  settings: ChatSettings;
}

const chats = createStore('webgguf-demo-chats', 'conversations');
const meta = createStore('webgguf-demo-meta', 'meta');

export const listConversations = async (): Promise<Conversation[]> => (await values<Conversation>(chats)).sort((a, b) => b.updatedAt - a.updatedAt);
export const saveConversation = (c: Conversation): Promise<void> => set(c.id, structuredClone(c), chats);
export const deleteConversation = (id: string): Promise<void> => del(id, chats);
/** The cache id of the model loaded last, reloaded from the cache on the next visit. */
export const lastModel = (): Promise<string | undefined> => get<string>('lastModel', meta);
export const setLastModel = (id: string): Promise<void> => set('lastModel', id, meta);
/** The conversation open last. */
export const lastConversation = (): Promise<string | undefined> => get<string>('lastConversation', meta);
export const setLastConversation = (id: string): Promise<void> => set('lastConversation', id, meta);
