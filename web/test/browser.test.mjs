// The runtime and the demo in headless Chromium (Debian's, through
// playwright-core), against `matedge serve`: the page's greedy tokens equal
// `matedge generate`'s, only the mix's byte ranges are downloaded, failures
// are clean errors, and the demo streams text (screenshot in test-results/).

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { wrongABIModule } from '../harness/fixtures.mjs';
import { generate, missingBuild, startServer } from '../harness/server.mjs';

const CI = process.env.CI === 'true';
const RESULTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-results');
const MODEL = '/models/default.matw';
const PROMPT = 'It is a truth';
const N = 24;

const missing = missingBuild() ?? (await missingBrowser());
if (missing && CI) {
  it('matedge in headless Chromium', () => assert.fail(`${missing} (CI=true: a missing dependency is a failure)`));
} else {
  describe('matedge in headless Chromium', { skip: missing ?? false, timeout: 150_000 }, () => {
    let server;
    let browser;
    let page; // a blank page on the server's origin, for driving matedge.js directly
    const pageErrors = [];

    before(async () => {
      [server, browser] = await Promise.all([startServer(), launch()]);
      page = await browser.context.newPage();
      page.on('pageerror', (err) => pageErrors.push(err.message));
      // A blank document on the server's origin: the demo page would start its own download.
      await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
      await page.goto(`${server.url}blank.html`);
    }, { timeout: 45_000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
    }, { timeout: 20_000 });

    // modelRequests waits until the server has logged `count` requests for
    // the model since log position `mark`, and returns them.
    async function modelRequests(mark, count) {
      const deadline = Date.now() + 5_000;
      for (;;) {
        const got = server.requests.slice(mark).filter((r) => r.path === MODEL);
        if (got.length >= count || Date.now() > deadline) return got;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    // inPage runs one step of a scenario on window.lm in the page.
    const load = (opts) => page.evaluate(async ({ model, mix }) => {
      const { MatEdge } = await import('/matedge.js');
      window.lm?.close();
      window.lm = await MatEdge.load({ model, mix });
      return { info: window.lm.info, mix: window.lm.mix, fileSize: window.lm.fileSize, downloaded: window.lm.downloaded };
    }, { model: MODEL, ...opts });
    const setMix = (mix) => page.evaluate(async (spec) => {
      await window.lm.setMix(spec);
      return { mix: window.lm.mix, downloaded: window.lm.downloaded };
    }, mix);
    const run = (options) => page.evaluate(async ({ prompt, options }) => {
      const gen = window.lm.generate(prompt, options);
      let text = '';
      for await (const piece of gen) text += piece;
      return { text, tokens: gen.tokens, promptTokens: gen.promptTokens, backend: gen.backend, reason: gen.reason };
    }, { prompt: PROMPT, options: { maxTokens: N, temperature: 0, seed: 1, ...options } });

    const sum = (ranges) => ranges.reduce((n, r) => n + r.length, 0);

    it('S: fetches only the header and the S prefix, and gives matedge generate\'s greedy tokens', async () => {
      const mark = server.requests.length;
      const [loaded, want] = await Promise.all([load({ mix: 'S' }), generate({ prompt: PROMPT, n: N, mix: 'S' })]);
      const s = loaded.info.ranges[0];
      const requests = await modelRequests(mark, loaded.downloaded.requests);
      const bytes = requests.reduce((n, r) => n + r.bytes, 0);
      assert.ok(requests.every((r) => r.status === 206), `every model request is a 206: ${JSON.stringify(requests)}`);
      assert.equal(bytes, loaded.downloaded.bytes, 'bytes the server sent = bytes the runtime counted');
      const header = s[0].offset; // the data starts after the header
      assert.ok(bytes <= 12 + header + sum(s), `downloaded ${bytes} bytes; header + S is ${12 + header + sum(s)}`);
      const sEnd = s.at(-1).offset + s.at(-1).length;
      for (const r of requests) {
        const [, last] = /^bytes=\d+-(\d+)$/.exec(r.range);
        assert.ok(Number(last) < sEnd, `request ${r.range} reaches past the S prefix (ends at ${sEnd})`);
      }
      assert.ok(bytes < loaded.fileSize * 0.6, `downloaded ${bytes} of ${loaded.fileSize} bytes`);

      const got = await run();
      assert.equal(got.backend, 'cpu');
      assert.deepEqual(got.promptTokens, want.prompt_tokens);
      assert.deepEqual(got.tokens, want.tokens);
      assert.equal(got.reason, 'length');
    }, { timeout: 40_000 });

    it('S → XL fetches only the rows XL adds, and gives XL\'s tokens', async () => {
      const before = await page.evaluate(() => ({ ...window.lm.downloaded, info: window.lm.info }));
      const mark = server.requests.length;
      const [switched, want] = await Promise.all([setMix('XL'), generate({ prompt: PROMPT, n: N, mix: 'XL' })]);
      const requests = await modelRequests(mark, switched.downloaded.requests - before.requests);
      const delta = sum(before.info.ranges.at(-1)) - sum(before.info.ranges[0]);
      assert.equal(requests.reduce((n, r) => n + r.bytes, 0), delta);
      assert.equal(switched.downloaded.bytes - before.bytes, delta);
      assert.deepEqual((await run()).tokens, want.tokens);
    }, { timeout: 40_000 });

    it('XL → S,M,L,XL fetches nothing, and gives that mix\'s tokens', async () => {
      const mix = 'S,M,L,XL';
      const before = await page.evaluate(() => window.lm.downloaded);
      const [switched, want] = await Promise.all([setMix(mix), generate({ prompt: PROMPT, n: N, mix })]);
      assert.deepEqual(switched.mix.mix, ['S', 'M', 'L', 'XL']);
      assert.deepEqual(switched.downloaded, before);
      assert.deepEqual((await run()).tokens, want.tokens);
    }, { timeout: 40_000 });

    it('breaking out of the loop cancels the generation', async () => {
      const got = await page.evaluate(async () => {
        const gen = window.lm.generate('It is', { maxTokens: 200, temperature: 0 });
        for await (const piece of gen) if (piece) break;
        await gen.finished;
        return { reason: gen.reason, tokens: gen.tokens.length };
      });
      assert.equal(got.reason, 'cancelled');
      assert.ok(got.tokens < 200, `${got.tokens} tokens generated`);
    }, { timeout: 20_000 });

    it('a fresh load of S,M,L,XL, sampled at temperature 0.8, gives matedge generate\'s tokens', async () => {
      const mix = 'S,M,L,XL';
      const sampling = { seed: 7, temperature: 0.8, topK: 40, topP: 0.95 };
      const [loaded, want] = await Promise.all([load({ mix }), generate({ prompt: PROMPT, n: N, mix, ...sampling })]);
      assert.equal(loaded.downloaded.bytes < loaded.fileSize, true);
      assert.deepEqual((await run(sampling)).tokens, want.tokens);
    }, { timeout: 40_000 });

    it('a server that ignores Range still works: one 200, same tokens', async () => {
      const file = new Uint8Array(await (await fetch(new URL(MODEL, server.url))).arrayBuffer());
      const seen = [];
      const plain = createServer((req, res) => {
        seen.push(`${req.method} ${req.headers.range ?? '-'}`);
        res.setHeader('Access-Control-Allow-Origin', '*');
        res.setHeader('Access-Control-Allow-Headers', 'Range');
        if (req.method === 'OPTIONS') return res.writeHead(204).end();
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': file.length }).end(file);
      });
      await new Promise((resolve) => plain.listen(0, '127.0.0.1', resolve));
      try {
        const model = `http://127.0.0.1:${plain.address().port}/default.matw`;
        const [loaded, want] = await Promise.all([load({ model, mix: 'S' }), generate({ prompt: PROMPT, n: N, mix: 'S' })]);
        assert.deepEqual(seen.filter((s) => s.startsWith('GET')), ['GET bytes=0-11'], 'one GET: the rest is cut from its body');
        assert.equal(loaded.fileSize, file.length);
        assert.deepEqual((await run()).tokens, want.tokens);
      } finally {
        plain.closeAllConnections();
        await new Promise((resolve) => plain.close(resolve));
      }
    }, { timeout: 40_000 });

    it('a module with another ABI version fails with a clear error', async () => {
      const err = await page.evaluate(async (bytes) => {
        const { MatEdge } = await import('/matedge.js');
        const wasm = URL.createObjectURL(new Blob([new Uint8Array(bytes)], { type: 'application/wasm' }));
        try {
          await MatEdge.load({ model: '/models/default.matw', wasm });
          return null;
        } catch (e) {
          return { name: e.name, code: e.code, message: e.message };
        } finally {
          URL.revokeObjectURL(wasm);
        }
      }, [...wrongABIModule(2)]);
      assert.deepEqual(err && { name: err.name, code: err.code }, { name: 'MatEdgeError', code: 'ERR_ABI' });
      assert.match(err.message, /module ABI version 2, this runtime speaks 1/);
    }, { timeout: 20_000 });

    it('a missing model or module file fails with the HTTP status', async () => {
      const errs = await page.evaluate(async () => {
        const { MatEdge } = await import('/matedge.js');
        const attempt = (o) => MatEdge.load(o).then(() => null, (e) => ({ code: e.code, message: e.message }));
        return [await attempt({ model: '/models/nope.matw' }), await attempt({ model: '/models/default.matw', wasm: '/nope.wasm' })];
      });
      for (const [err, file] of [[errs[0], '/models/nope.matw'], [errs[1], '/nope.wasm']]) {
        assert.equal(err?.code, 'ERR_FETCH', `loading with ${file}`);
        assert.match(err.message, new RegExp(`${file.replace('.', '\\.')}.*HTTP 404`));
      }
    }, { timeout: 20_000 });

    it('the demo page loads, switches size, streams text, and fits a phone', async () => {
      const demo = await browser.context.newPage();
      const errors = [];
      demo.on('pageerror', (err) => errors.push(err.message));
      demo.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
      try {
        const settled = (states) => demo.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout: 20_000 });
        await demo.goto(server.url);
        await settled(['ready', 'error']);
        assert.equal(await demo.getAttribute('body', 'data-state'), 'ready', await demo.textContent('#status'));
        await demo.click('.sizes label:has(input[value="M"])');
        await settled(['ready', 'error']);
        assert.match(await demo.textContent('#status'), /Ready: M — fetched [\d.]+ MB more/);
        await demo.fill('#prompt', 'It is a truth universally acknowledged');
        await demo.click('#generate');
        await settled(['done', 'error']);
        assert.equal(await demo.getAttribute('body', 'data-state'), 'done', await demo.textContent('#status'));
        assert.ok((await demo.textContent('#out-text')).length > 0, 'some text was generated');
        assert.match(await demo.textContent('#stats'), /^96 tokens · \d+ tokens\/s · cpu backend · mix M$/);

        await mkdir(RESULTS, { recursive: true });
        await demo.screenshot({ path: join(RESULTS, 'demo.png'), fullPage: true });
        await demo.setViewportSize({ width: 390, height: 844 });
        const overflow = await demo.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 390 px screen`);
        await demo.screenshot({ path: join(RESULTS, 'demo-phone.png'), fullPage: true });
        assert.deepEqual(errors, []);
      } finally {
        await demo.close();
      }
    }, { timeout: 60_000 });

    it('raised no uncaught errors in the page', () => assert.deepEqual(pageErrors, []));
  });
}
