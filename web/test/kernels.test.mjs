// The SIMD128 companion module (kernels.wasm, wasm/kernels) in headless
// Chromium: every kernel against the Go reference, bit for bit, through the
// same trampolines the runtime uses (kernels.js); and the module on the CPU
// backend giving matedge generate's greedy tokens with kernels.wasm linked
// and without it.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { generate, missingBuild, startServer } from '../harness/server.mjs';

const CI = process.env.CI === 'true';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROMPT = 'It is a truth';
const N = 16;

const missing = missingBuild() ?? (await missingBrowser());

// buildCheck builds wasm/kernels/testdata/check: a reactor that links the simd
// kernel set as the module does and exports check(seed) → 0 same bits, 1
// different, 2 kernels.wasm not linked.
async function buildCheck() {
  const dir = await mkdtemp(join(tmpdir(), 'matedge-check-'));
  try {
    const out = join(dir, 'check.wasm');
    await promisify(execFile)('go', ['build', '-buildmode=c-shared', '-o', out, './wasm/kernels/testdata/check'],
      { cwd: ROOT, env: { ...process.env, GOOS: 'wasip1', GOARCH: 'wasm' }, timeout: 300_000 });
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// OLD_KERNELS is a kernels.wasm that exports version and nothing else, as an
// older build seen through a stale cache would lack the newer kernels:
// (module (func (export "version") (result i32) (i32.const 1))).
const OLD_KERNELS = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00,
  0x07, 0x0b, 0x01, 0x07, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x01, 0x0b,
]);

it('a kernels.wasm without every kernel is refused, naming what it lacks', async () => {
  const { fetchKernels, KERNEL_FUNCTIONS } = await import('../src/kernels.js');
  const fetch = async () => new Response(OLD_KERNELS, { headers: { 'content-type': 'application/wasm' } });
  await assert.rejects(fetchKernels('/old/kernels.wasm', { fetch }), new RegExp(`/old/kernels\\.wasm exports no ${KERNEL_FUNCTIONS[0]},.*older than this runtime`));
  const current = await readFile(join(ROOT, 'wasm', 'kernels', 'kernels.wasm'));
  assert.ok(await fetchKernels('/kernels.wasm', { fetch: async () => new Response(current) }) instanceof WebAssembly.Module);
});

if (missing && CI) {
  it('kernels.wasm in headless Chromium', () => assert.fail(`${missing} (CI=true: a missing dependency is a failure)`));
} else {
  describe('kernels.wasm in headless Chromium', { skip: missing ?? false, timeout: 240_000 }, () => {
    let server;
    let browser;
    let page;
    const errors = [];

    before(async () => {
      let check;
      [server, browser, check] = await Promise.all([startServer(), launch({ webgpu: false }), buildCheck()]);
      page = await browser.context.newPage();
      page.on('pageerror', (err) => errors.push(err.message));
      await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
      await page.route(`${server.url}check.wasm`, (route) => route.fulfill({ contentType: 'application/wasm', body: check }));
      await page.goto(`${server.url}blank.html`);
    }, { timeout: 240_000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
    }, { timeout: 20_000 });

    // check runs the guest's check(seed) with kernels.wasm linked (simd) or not.
    const check = (simd, seed) => page.evaluate(async ({ simd, seed }) => {
      const { KernelHost, fetchKernels } = await import('/kernels.js');
      const { WASI } = await import('/wasi.js');
      const module = await WebAssembly.compileStreaming(fetch('/check.wasm'));
      const kernels = new KernelHost(simd ? await fetchKernels('/kernels.wasm') : null);
      const stderr = [];
      const wasi = new WASI({ stderr: (line) => stderr.push(line) });
      const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.importsFor(module), kernels: kernels.imports() });
      kernels.link(instance.exports.memory);
      wasi.initialize(instance);
      const status = instance.exports.check(seed);
      wasi.flush();
      return { status, calls: kernels.calls, name: kernels.name, stderr: stderr.join('\n') };
    }, { simd, seed });

    it('every kernel gives the Go reference\'s bits on odd shapes', async () => {
      for (const seed of [1, 2, 3]) {
        const got = await check(true, seed);
        assert.equal(got.name, 'simd', 'this Chromium compiles SIMD128');
        assert.equal(got.status, 0, `check(${seed}): ${got.stderr}`);
        assert.ok(got.calls > 0, 'the kernels were called');
      }
      const unlinked = await check(false, 1);
      assert.equal(unlinked.status, 2, unlinked.stderr);
      assert.equal(unlinked.calls, 0);
    });

    it('the module decodes matedge generate\'s tokens with kernels.wasm and without it', async () => {
      for (const mix of ['XL', 'S,M,L,XL']) {
        const want = await generate({ prompt: PROMPT, n: N, mix });
        for (const kernels of ['simd', 'go']) {
          const got = await page.evaluate(async ({ mix, kernels, prompt, n }) => {
            const { MatEdge } = await import('/matedge.js');
            const lm = await MatEdge.load({ model: '/models/default.matw', mix, kernels, gpu: false, cache: false });
            try {
              const gen = lm.generate(prompt, { maxTokens: n, temperature: 0, seed: 1, backend: 'cpu' });
              for await (const piece of gen) void piece;
              return { tokens: gen.tokens, backend: gen.backend, kernels: lm.kernels };
            } finally {
              lm.close();
            }
          }, { mix, kernels, prompt: PROMPT, n: N });
          assert.equal(got.kernels, kernels);
          assert.equal(got.backend, 'cpu');
          assert.deepEqual(got.tokens, want.tokens, `${mix} with kernels ${kernels}`);
        }
      }
    });

    it('a kernels.wasm that cannot be fetched leaves the module on its Go kernels, and says why', async () => {
      const got = await page.evaluate(async () => {
        const { MatEdge } = await import('/matedge.js');
        const lm = await MatEdge.load({ model: '/models/default.matw', mix: 'S', kernels: '/nope.wasm', gpu: false, cache: false });
        lm.close();
        return { kernels: lm.kernels, reason: lm.kernelsReason };
      });
      assert.equal(got.kernels, 'go');
      assert.match(got.reason, /nope\.wasm.*HTTP 404/);
    });

    it('raised no uncaught errors in the page', () => assert.deepEqual(errors, []));
  });
}
