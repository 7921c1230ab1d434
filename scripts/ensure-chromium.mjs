// pretest: the GPU and browser tests need Debian's Chromium (its SwiftShader gives WebGPU on the
// CPU, to the browser and to Dawn in Node) and the Vulkan loader. Installs them when missing and
// running as root; otherwise says how. Browsers are never downloaded.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasVulkanLoader = () => {
  try {
    return execSync('ldconfig -p', { encoding: 'utf8' }).includes('libvulkan.so.1');
  } catch {
    return false;
  }
};
const missing = [];
if (!existsSync(CHROMIUM)) missing.push('chromium');
if (!hasVulkanLoader()) missing.push('libvulkan1');

if (missing.length === 0) process.exit(0);
const command = `apt-get update && apt-get install -y ${missing.join(' ')}`;
if (process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
  console.log(`Installing ${missing.join(' and ')} for the GPU and browser tests: ${command}`);
  execSync(command, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
} else {
  console.warn(
    `The GPU and browser tests need ${missing.join(' and ')} (Debian packages). Install them with:\n` +
      `  sudo ${command}\n` +
      `Without them those tests are skipped (and fail under CI).`,
  );
}
