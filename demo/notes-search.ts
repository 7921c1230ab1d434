/**
 * The demo's "search these notes" panel: pasted text is split into passages, embedded by an
 * embedding model in this tab and searched by cosine similarity; nothing leaves the page. The
 * panel runs its own engine, so the chat's model stays loaded beside it.
 */
import { cosineSimilarity, createEngine, isWebGGUFError, type Engine } from '../src/index.js';

/** An embedding model small enough to try at once: BERT's bge-small-en-v1.5 at Q8_0 (36 MB). */
export const DEFAULT_EMBEDDING_MODEL = 'https://huggingface.co/CompendiumLabs/bge-small-en-v1.5-gguf/resolve/main/bge-small-en-v1.5-q8_0.gguf';

/** Passages longer than this many words are cut at sentence ends (embedding models read ~512 tokens). */
const PASSAGE_WORDS = 120;

/**
 * The text's passages: its paragraphs (split at blank lines), each long one cut at sentence ends
 * into runs of at most PASSAGE_WORDS words (a sentence longer than that stays whole).
 */
export function splitPassages(text: string): string[] {
  const passages: string[] = [];
  for (const paragraph of text.split(/\n\s*\n/)) {
    const clean = paragraph.replace(/\s+/g, ' ').trim();
    if (!clean) continue;
    let run = '';
    for (const sentence of clean.match(/[^.!?]+(?:[.!?]+|$)/g) ?? [clean]) {
      const next = run ? `${run} ${sentence.trim()}` : sentence.trim();
      if (run && next.split(' ').length > PASSAGE_WORDS) {
        passages.push(run);
        run = sentence.trim();
      } else {
        run = next;
      }
    }
    if (run) passages.push(run);
  }
  return passages;
}

export interface SearchHit {
  passage: string;
  score: number;
}

/** Passages and their vectors, searched by a query's cosine similarity with each. */
export class NotesIndex {
  private passages: string[] = [];
  private vectors: number[][] = [];
  private loadedModel: string | undefined;

  constructor(private readonly engine: Engine) {}

  get size(): number {
    return this.passages.length;
  }

  /** Loads `model` (unless it is the one loaded) and embeds the text's passages in one request. */
  async index(model: string, text: string): Promise<number> {
    const passages = splitPassages(text);
    if (passages.length === 0) throw new Error('Paste some text to search first.');
    if (this.loadedModel !== model) {
      await this.engine.load(model);
      this.loadedModel = model;
    }
    const response = await this.engine.embeddings.create({ input: passages });
    this.passages = passages;
    this.vectors = response.data.map((d) => d.embedding as number[]);
    return passages.length;
  }

  /** The `limit` passages most similar to the query, best first. */
  async search(query: string, limit = 3): Promise<SearchHit[]> {
    if (!this.passages.length) throw new Error('Index some notes first.');
    const [q] = (await this.engine.embeddings.create({ input: query })).data;
    const vector = q!.embedding as number[];
    return this.passages
      .map((passage, i) => ({ passage, score: cosineSimilarity(vector, this.vectors[i]!) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, limit);
  }
}

/** Wires the panel's elements (demo/index.html's #notes section) to a NotesIndex of its own engine. */
export function mountNotesSearch(root: HTMLElement): void {
  const el = <T extends HTMLElement>(name: string) => root.querySelector(`[data-notes="${name}"]`) as T;
  const model = el<HTMLInputElement>('model'), text = el<HTMLTextAreaElement>('text'), indexButton = el<HTMLButtonElement>('index');
  const query = el<HTMLInputElement>('query'), searchButton = el<HTMLButtonElement>('search'), status = el('status'), results = el<HTMLOListElement>('results');
  model.value ||= DEFAULT_EMBEDDING_MODEL;
  let index: NotesIndex | undefined;
  const say = (message: string) => (status.textContent = message);
  const failed = (e: unknown) => say(isWebGGUFError(e) || e instanceof Error ? e.message : String(e));
  const busy = (value: boolean) => {
    indexButton.disabled = value;
    searchButton.disabled = value || !index?.size;
  };
  indexButton.addEventListener('click', async () => {
    busy(true);
    say('Loading the embedding model and embedding the passages…');
    try {
      index ??= new NotesIndex(await createEngine());
      const n = await index.index(model.value.trim(), text.value);
      say(`${n} passage${n === 1 ? '' : 's'} indexed. Ask away.`);
    } catch (e) {
      failed(e);
    } finally {
      busy(false);
    }
  });
  const search = async () => {
    if (!index?.size || !query.value.trim()) return;
    busy(true);
    try {
      results.replaceChildren(...(await index.search(query.value.trim())).map((hit) => {
        const item = document.createElement('li');
        const score = document.createElement('span');
        score.className = 'hint';
        score.textContent = `${hit.score.toFixed(3)} `;
        item.append(score, hit.passage);
        return item;
      }));
      say('');
    } catch (e) {
      failed(e);
    } finally {
      busy(false);
    }
  };
  searchButton.addEventListener('click', search);
  query.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') void search();
  });
  busy(false);
}
