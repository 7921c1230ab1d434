#!/usr/bin/env node
// The published package runs the built CLI; a source checkout without a build runs src/ through
// tsx (a dev dependency) with the .wgsl loader.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);

// Dawn writes a warning for each adapter it cannot use ("Vulkan shaderUniform*ArrayDynamicIndexing
// required. - While initializing adapter ...") straight to file descriptor 2, where JavaScript
// cannot catch it. So the CLI runs in a child process whose stderr passes through a filter that
// drops those blocks and keeps everything else. --verbose shows them.
const FILTERED = 'WEBGGUF_STDERR_FILTERED';
if (process.env[FILTERED] !== '1' && !args.includes('--verbose')) {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args], {
    stdio: ['inherit', 'inherit', 'pipe'],
    env: { ...process.env, [FILTERED]: '1' },
  });
  // A terminal's Ctrl-C reaches both processes; the child decides how to end.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  let pending = '';
  let block = [];
  const flushBlock = () => {
    if (!block.some((line) => line.startsWith(' - While initializing adapter'))) process.stderr.write(block.map((l) => l + '\n').join(''));
    block = [];
  };
  const filterLine = (line) => {
    // A block is "Warning: ..." and its context lines (" - While ...", "    at ...") up to a blank line.
    if (line.startsWith('Warning: ')) {
      flushBlock();
      block.push(line);
    } else if (block.length && (line.startsWith(' ') || line === '')) {
      block.push(line);
      if (line === '') flushBlock();
    } else {
      flushBlock();
      process.stderr.write(line + '\n');
    }
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => {
    const lines = (pending + text).split('\n');
    pending = lines.pop();
    lines.forEach(filterLine);
  });
  child.on('close', (code, signal) => {
    if (pending) filterLine(pending);
    flushBlock();
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
} else {
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
  process.exit(await main(args));
}
