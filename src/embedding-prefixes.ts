import { metaString, type GGUFFile } from './gguf/gguf.js';

/** A model's prefixes for queries and documents (its sentence-transformers "prompts"). */
export interface EmbeddingPrefixes {
  query: string;
  document: string;
}

/**
 * Model families trained with prefixes, by a pattern of their name, with the prefixes from each
 * model's card and sentence-transformers config. Matched against general.basename, then
 * general.name; the first match wins.
 */
const KNOWN_PREFIXES: [RegExp, EmbeddingPrefixes][] = [
  [/nomic[-_ ]embed[-_ ]text/i, { query: 'search_query: ', document: 'search_document: ' }],
  [/embedding[-_ ]?gemma/i, { query: 'task: search result | query: ', document: 'title: none | text: ' }],
  [/qwen3[-_ ]embedding/i, { query: 'Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:', document: '' }],
  [/bge[-_ ](small|base|large)[-_ ]en[-_ ]v1\.5|mxbai[-_ ]embed[-_ ]large/i, { query: 'Represent this sentence for searching relevant passages: ', document: '' }],
  [/(^|[^a-z])(multilingual[-_ ])?e5[-_ ](small|base|large)/i, { query: 'query: ', document: 'passage: ' }],
];

/** The query and document prefixes of the file's model family, if it is one trained with them. */
export function embeddingPrefixes(file: GGUFFile): EmbeddingPrefixes | undefined {
  for (const name of [metaString(file, 'general.basename'), metaString(file, 'general.name')]) {
    if (!name) continue;
    const known = KNOWN_PREFIXES.find(([pattern]) => pattern.test(name));
    if (known) return known[1];
  }
  return undefined;
}
