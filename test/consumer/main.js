import { createEngine } from 'webgguf';

const output = document.querySelector('#output');

async function tellStory() {
  const engine = await createEngine();
  await engine.load('models/stories260K.gguf'); // relative to the page
  const stream = await engine.chat.completions.create({
    messages: [{ role: 'user', content: 'Tell me a story.' }],
    stream: true,
    max_tokens: 20,
  });
  for await (const chunk of stream) output.append(chunk.choices[0].delta.content ?? '');
}

tellStory().then(
  () => (document.body.dataset.state = 'done'), // what the consumer test waits for
  (error) => {
    output.textContent = `${error.code}: ${error.message}`; // a WebGGUFError has a code
    document.body.dataset.state = 'error';
  },
);
