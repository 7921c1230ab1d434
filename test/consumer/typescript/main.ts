import { createEngine, isWebGGUFError, MODELS, type ChatCompletionChunk, type LoadProgress } from 'webgguf';

const output = document.querySelector<HTMLElement>('#output')!;
try {
  const engine = await createEngine();
  await engine.load('models/stories260K.gguf', { onProgress: ({ phase, loaded, total }: LoadProgress) => console.log(phase, loaded / total) });
  const stream = await engine.chat.completions.create({
    messages: [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'user', content: [{ type: 'text', text: 'Tell me a story.' }] },
    ],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: 20,
  });
  for await (const chunk of stream) {
    const c: ChatCompletionChunk = chunk;
    output.append(c.choices[0]?.delta.content ?? '');
  }
  const reply = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5 });
  console.log(reply.choices[0]?.message.content, reply.usage);
  const text = await engine.completions.create({ prompt: 'Once upon a time', max_tokens: 5 });
  console.log(text.choices[0]?.text);
  for await (const { text: piece } of engine.generate('Once', { maxTokens: 5, temperature: 0 })) output.append(piece);
  console.log(MODELS['qwen2.5-0.5b-instruct-q4_k_m'].bytes, await engine.cache.list(), await engine.cache.persist());
  await engine.dispose();
} catch (error) {
  output.textContent = isWebGGUFError(error) ? `${error.code}: ${error.message}` : String(error);
}
