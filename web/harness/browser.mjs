// browser: Debian's Chromium, headless, with WebGPU on SwiftShader, driven by
// playwright-core. No browser is ever downloaded.

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** CHROMIUM is the browser binary: $MATEDGE_CHROMIUM, else Debian's. */
export const CHROMIUM = process.env.MATEDGE_CHROMIUM || '/usr/bin/chromium';

/**
 * FLAGS are the ones ARCHITECTURE.md records as verified — new headless,
 * WebGPU on, nothing phoning home — and --hide-scrollbars, so that screenshots
 * show the page as a phone does (overlay scrollbars) rather than cropped by a
 * 15 px gutter.
 */
export const FLAGS = ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic',
  '--hide-scrollbars'];

/** missingBrowser returns why the browser cannot start ("needs …"), or null. */
export async function missingBrowser() {
  if (!existsSync(CHROMIUM)) return `needs chromium at ${CHROMIUM} (apt-get install chromium, or set MATEDGE_CHROMIUM)`;
  try {
    await import('playwright-core');
  } catch {
    return 'needs playwright-core: run npm ci in web/';
  }
  return null;
}

/**
 * launch starts Chromium with a fresh profile and resolves with its browser
 * context; close() ends it and removes the profile. With webgpu false it
 * leaves out --enable-unsafe-webgpu: headless Chromium on Linux then has no
 * adapter, as a browser without WebGPU.
 */
export async function launch({ timeoutMs = 30_000, webgpu = true } = {}) {
  const { chromium } = await import('playwright-core');
  const profile = await mkdtemp(join(tmpdir(), 'matedge-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: false, // FLAGS carries --headless=new itself
      args: webgpu ? FLAGS : FLAGS.filter((f) => f !== '--enable-unsafe-webgpu'),
      timeout: timeoutMs,
      viewport: { width: 1000, height: 900 },
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(timeoutMs);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}
