import { createEngine, cosineSimilarity } from 'webgguf/node';

const engine = await createEngine();
await engine.load('bge-small-en-v1.5-q8_0.gguf'); // an embedding model (BERT family)
const notes = [
  'The train to Lyon leaves at 7:40 from platform 3.',
  'Buy oat milk, eggs and coffee beans.',
  'The dentist moved my appointment to Thursday at 10.',
];
const passages = await engine.embeddings.create({ input: notes });
const query = await engine.embeddings.create({ input: 'When do I see the dentist?' });
const ranked = notes
  .map((text, i) => ({ text, score: cosineSimilarity(query.data[0].embedding, passages.data[i].embedding) }))
  .sort((a, b) => b.score - a.score);
for (const { text, score } of ranked) console.log(score.toFixed(3), text);
await engine.dispose();
