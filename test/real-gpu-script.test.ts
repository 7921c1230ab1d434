import { execFileSync } from 'node:child_process';
import { expect, test } from 'vitest';
import { GPU_WEIGHT_KINDS } from '../src/quant/formats.js';

// bench/real-gpu.sh (issue 18 item 5) runs on a machine with a Vulkan GPU; here its plan is checked
// without a GPU (--dry-run prints the commands and runs none). Its --tiny run on SwiftShader takes
// minutes on this machine, so it is a documented check (docs/PERFORMANCE.md), not a test.
test('bench/real-gpu.sh --dry-run: bench-gemv for every weight kind, and bench with a 512-token prefill on the three shapes', () => {
  const stderr = execFileSync('bash', ['-c', 'bash bench/real-gpu.sh --dry-run 2>&1 >/dev/null'], { encoding: 'utf8', env: { ...process.env, OUT_DIR: '/tmp/real-gpu-dry-run' } });
  const lines = stderr.split('\n').filter((l) => l.startsWith('+ '));
  const gemv = lines.find((l) => l.includes(' bench-gemv '));
  expect(gemv).toBeDefined();
  expect(gemv!.match(/--kinds (\S+)/)![1]!.split(',').sort()).toEqual([...GPU_WEIGHT_KINDS].sort());
  expect(gemv).toContain('--vocab 152064,262144');
  for (const [shape, quant] of [['tinyllama-1.1b', 'q4_0'], ['smollm2-135m', 'q4_0'], ['llama-3.2-1b', 'q4_k_m']]) {
    const model = `/tmp/real-gpu-dry-run/${shape}-${quant}.gguf`;
    expect(lines).toContain(`+ npx tsx scripts/make-model.ts --arch llama --shape ${shape} --quant ${quant} --out ${model}`);
    expect(lines.find((l) => l.includes(` bench -m ${model} `))).toMatch(/--prompt-tokens 512 /);
  }
  expect(() => execFileSync('bash', ['bench/real-gpu.sh', '--bogus'], { stdio: 'pipe' })).toThrow(/unknown option --bogus/);
});
