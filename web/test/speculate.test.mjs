// The core of web/bench/speculate.mjs in headless Chromium, untimed: on a
// tiny prompt, greedy self-speculative decoding (S, M and L drafts, k fixed
// and auto, the shared cache) gives the verifier's tokens on the CPU backend
// with kernels.wasm linked, and the summary says so.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { CONFIGS, runSpeculation, summarize } from '../bench/speculate.mjs';
import { launch, missingBrowser } from '../harness/browser.mjs';
import { generate, missingBuild, startServer } from '../harness/server.mjs';

const CI = process.env.CI === 'true';
const missing = missingBuild() ?? (await missingBrowser());
const PROMPT = 'It is a truth';
const N = 12;

if (missing && CI) {
  it('speculate.mjs in headless Chromium', () => assert.fail(`${missing} (CI=true: a missing dependency is a failure)`));
} else {
  describe('speculate.mjs in headless Chromium', { skip: missing ?? false, timeout: 120_000 }, () => {
    let server;
    let browser;
    let page;

    before(async () => {
      [server, browser] = await Promise.all([startServer(), launch({ webgpu: false })]);
      page = await browser.context.newPage();
      await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
      await page.goto(`${server.url}blank.html`);
    }, { timeout: 45_000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
    }, { timeout: 20_000 });

    it('greedy speculative tokens equal the verifier\'s and the CLI\'s, for every draft and k', async () => {
      const [measured, want] = await Promise.all([
        page.evaluate(runSpeculation, { backend: 'cpu', kernels: 'simd', prompts: [PROMPT], tokens: N, configs: CONFIGS, timing: false }),
        generate({ prompt: PROMPT, n: N, mix: 'XL' }),
      ]);
      assert.equal(measured.kernels, 'simd');
      assert.equal(measured.results.length, CONFIGS.length);
      for (const r of measured.results) {
        const what = `draft ${r.config.draft}, k ${r.config.k}`;
        assert.deepEqual(r.verifier.tokens, want.tokens, `${what}: the verifier alone is matedge generate`);
        assert.deepEqual(r.speculative.tokens, want.tokens, `${what}: speculative decoding is the verifier`);
        const s = r.speculative.speculation;
        assert.equal(s.draft.every((g) => g === r.config.draft), true, `${what}: ${JSON.stringify(s)}`);
        assert.ok(s.rounds > 0 && s.accepted <= s.proposed && s.accepted + s.rounds >= N, `${what}: ${JSON.stringify(s)}`);
        if (r.config.k) assert.equal(s.proposed, s.rounds * r.config.k, `${what}: every round proposes k: ${JSON.stringify(s)}`);
        assert.equal(r.verifier.ms, null, 'untimed');
      }
      // The summary (with made-up times: the test does not time).
      const timed = { ...measured, results: measured.results.map((r) => ({ ...r, verifier: { ...r.verifier, ms: 10 }, speculative: { ...r.speculative, ms: 5 } })) };
      const rows = summarize('test', timed);
      assert.equal(rows.length, CONFIGS.length + 1);
      assert.deepEqual(rows[0], { where: 'test', draft: 'none', k: '–', cache: '–', temperature: 0, accepted: null, tokensPerVerify: 1, tokensPerSecond: 1200, verifierTokensPerSecond: 1200, speedup: 1, greedyEqual: null });
      for (const row of rows.slice(1)) {
        assert.equal(row.greedyEqual, true);
        assert.equal(row.speedup, 2);
      }
      // A run whose tokens differ is reported as such.
      const broken = structuredClone(timed);
      broken.results[0].speculative.tokens[0] += 1;
      assert.equal(summarize('test', broken)[1].greedyEqual, false);
    }, { timeout: 60_000 });
  });
}
