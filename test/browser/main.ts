// Runs in Chromium: the same library code as Node, fed over HTTP range requests.
import { createGpuContext, generate, GGUFTokenizer, LlamaModel, readGGUF, urlSource } from '../../src/core.js';

declare global {
  interface Window {
    runGreedy(url: string, prompt: string, maxTokens: number): Promise<{ tokens: number[]; text: string; adapter: string }>;
  }
}

window.runGreedy = async (url, prompt, maxTokens) => {
  const file = await readGGUF(await urlSource(url));
  const tokenizer = GGUFTokenizer.fromGGUF(file);
  const gpu = await createGpuContext(navigator.gpu);
  const model = await LlamaModel.load(gpu, file);
  const tokens: number[] = [];
  let text = '';
  for await (const t of generate(model, tokenizer, tokenizer.encode(prompt), { temperature: 0, maxTokens })) {
    tokens.push(t.token);
    text += t.text;
  }
  model.dispose();
  gpu.device.destroy();
  return { tokens, text, adapter: gpu.adapterName };
};
