#!/usr/bin/env node
// The published package runs the built CLI; a source checkout without a build runs src/ through
// tsx (a dev dependency) with the .wgsl loader.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli.js', import.meta.url);
let main;
if (existsSync(built)) {
  ({ main } = await import(built.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../scripts/register-wgsl.mjs');
  ({ main } = await import('../src/cli/main.ts'));
}
// Exit explicitly: Dawn's instance keeps the event loop alive.
process.exit(await main(process.argv.slice(2)));
