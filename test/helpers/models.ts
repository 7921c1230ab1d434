import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** ../shared/models beside the checkout. Tests read these files in place. */
export const MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
export const STORIES = `${MODELS}stories260K/`;
export const HAVE_MODELS = existsSync(MODELS);
/** In CI the models must be there; only a user's fresh clone may skip. */
if (!HAVE_MODELS && process.env.CI) throw new Error(`${MODELS} is missing; CI needs ../shared/models`);
export const STORIES_QUANTS = ['f32', 'f16', 'q8_0', 'q4_0'] as const;
export const storiesPath = (q: string) => `${STORIES}stories260K-${q}.gguf`;
