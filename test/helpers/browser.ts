import { existsSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

/** Debian's Chromium with SwiftShader WebGPU (see README: no browser downloads). */
const ARGS = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/**
 * A context on a real (temporary) profile. CDP's Storage.overrideQuotaForOrigin only takes effect
 * there, not in the off-the-record contexts that browser.newContext() makes.
 */
export function launchPersistentChromium(): Promise<BrowserContext> {
  return chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'webgguf-profile-')), { executablePath: CHROMIUM, headless: true, args: ARGS });
}
