import { createEngine } from 'webgguf/node';

const engine = await createEngine();
await engine.load('stories260K.gguf'); // a path, relative to the working directory
for await (const { text } of engine.generate('Once upon a time', { maxTokens: 20, temperature: 0 })) process.stdout.write(text);
await engine.dispose();
