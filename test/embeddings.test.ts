/** The embeddings request side without a GPU: the query and document prefixes a file's name selects, and input_type's checks. */
import { expect, test } from 'vitest';
import { embeddingPrefixes } from '../src/embedding-prefixes.js';
import { validateEmbeddingRequest } from '../src/embeddings.js';
import type { GGUFFile } from '../src/gguf/gguf.js';

const named = (entries: Record<string, string>) => ({ metadata: new Map(Object.entries(entries)), tensors: [], source: { name: 'x.gguf' } }) as unknown as GGUFFile;

test('prefixes come from the model family named in general.basename or general.name', () => {
  expect(embeddingPrefixes(named({ 'general.basename': 'nomic-embed-text-v1.5' }))).toEqual({ query: 'search_query: ', document: 'search_document: ' });
  expect(embeddingPrefixes(named({ 'general.name': 'Embeddinggemma 300m' }))?.document).toBe('title: none | text: ');
  expect(embeddingPrefixes(named({ 'general.basename': 'Qwen3-Embedding', 'general.name': 'Qwen3 Embedding 0.6B' }))?.query).toBe(
    'Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:',
  );
  expect(embeddingPrefixes(named({ 'general.name': 'Bge Small En v1.5' }))).toEqual({ query: 'Represent this sentence for searching relevant passages: ', document: '' });
  expect(embeddingPrefixes(named({ 'general.name': 'multilingual-e5-small' }))?.document).toBe('passage: ');
  // Models trained without prefixes, and files that name nothing, get none.
  expect(embeddingPrefixes(named({ 'general.name': 'all-MiniLM-L6-v2' }))).toBeUndefined();
  expect(embeddingPrefixes(named({ 'general.name': 'bge-m3' }))).toBeUndefined();
  expect(embeddingPrefixes(named({}))).toBeUndefined();
});

test('input_type is query, document or absent', () => {
  expect(validateEmbeddingRequest({ input: 'a', input_type: 'query' }).inputType).toBe('query');
  expect(validateEmbeddingRequest({ input: 'a' }).inputType).toBeUndefined();
  expect(() => validateEmbeddingRequest({ input: 'a', input_type: 'search' })).toThrow(/input_type/);
});
