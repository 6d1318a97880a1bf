// The runtime's failure modes in headless Chromium (without WebGPU: the
// CPU backend), each with a clear and recoverable outcome: the Cache API
// full or disabled, bytes damaged in transit, the file replaced between
// requests, a stall or a 5xx mid-download, an aborted load, a module trap,
// and a model on another origin with and without CORS headers. The page
// comes from `matedge serve`; the model, where a failure must be staged,
// from the harness's file server on another port.

import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { startFileServer } from '../harness/fileserver.mjs';
import { DIST, generate, missingBuild, startServer } from '../harness/server.mjs';

const CI = process.env.CI === 'true';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL_FILE = join(ROOT, 'weights', 'defaultmodel', 'default.matw');
const OTHER_FILE = join(ROOT, 'weights', 'testdata', 'tiny.matw');
const PROMPT = 'It is a truth';
const N = 8;

const missing = missingBuild() ?? (await missingBrowser());

// dataStart is where a version-2 file's data begins (weights/doc.go).
const dataStart = (bytes) => Math.ceil((16 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true)) / 256) * 256;

if (missing && CI) {
  it('failure modes in headless Chromium', () => assert.fail(`${missing} (CI=true: a missing dependency is a failure)`));
} else {
  describe('failure modes in headless Chromium', { skip: missing ?? false, timeout: 300_000 }, () => {
    let server;
    let browser;
    let page;
    let files;
    let model;
    let bytes;
    let want;

    before(async () => {
      bytes = new Uint8Array(await readFile(MODEL_FILE));
      [server, browser, files, want] = await Promise.all([
        startServer(), launch({ webgpu: false }), startFileServer({ name: 'm.matw', bytes }),
        generate({ prompt: PROMPT, n: N, mix: 'S' }),
      ]);
      model = `${files.url}m.matw`;
      page = await browser.context.newPage();
      await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
      await page.goto(`${server.url}blank.html`);
    }, { timeout: 60_000 });

    after(async () => {
      await browser?.close();
      await files?.stop();
      await server?.stop();
    }, { timeout: 20_000 });

    // load runs MatEdge.load in the page and resolves with what came of it:
    // {error: {code, message, name}} or the loaded model's facts.
    const load = (options) => page.evaluate(async (o) => {
      const { MatEdge } = await import('/matedge.js');
      window.lm?.close();
      window.lm = null;
      try {
        window.lm = await MatEdge.load({ mix: 'S', ...o });
      } catch (e) {
        return { error: { code: e.code, message: e.message, name: e.name } };
      }
      const { info, mix, fileSize, downloaded } = window.lm;
      return { info, mix, fileSize, downloaded };
    }, { model, ...options });
    const run = () => page.evaluate(async ({ prompt, n }) => {
      const gen = window.lm.generate(prompt, { maxTokens: n, temperature: 0, backend: 'cpu' });
      for await (const _ of gen);
      return gen.tokens;
    }, { prompt: PROMPT, n: N });
    const clearCache = () => page.evaluate(async () => (await import('/matedge.js')).MatEdge.clearCache());
    const reset = () => {
      Object.assign(files, { cutAfter: Infinity, breakAfter: Infinity, stallAfter: Infinity, fail: [], corrupt: -1, answer: null });
      files.replace(bytes);
      return files.requests.length;
    };
    const dataRequests = (mark) => files.requests.slice(mark).filter((r) => r.range !== '-' && Number(/^bytes=(\d+)/.exec(r.range)[1]) >= dataStart(bytes));

    // withWorkerPrelude runs fn on a page whose worker.js starts with
    // prelude, as a browser whose Cache API misbehaves would have it: a copy
    // of dist/ served by a second matedge serve.
    async function withWorkerPrelude(prelude, fn) {
      const dist = await mkdtemp(join(tmpdir(), 'matedge-dist-'));
      await cp(DIST, dist, { recursive: true });
      const worker = join(dist, 'worker.js');
      await writeFile(worker, `${prelude}\n${await readFile(worker, 'utf8')}`);
      const other = await startServer({ args: ['-dist', dist] });
      try {
        await page.route(`${other.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
        await page.goto(`${other.url}blank.html`);
        return await fn();
      } finally {
        await page.goto(`${server.url}blank.html`);
        await other.stop();
        await rm(dist, { recursive: true, force: true });
      }
    }

    it('a full Cache API: the load comes from the network, and so does the next', async () => {
      await clearCache();
      await withWorkerPrelude('Cache.prototype.put = async () => { throw new DOMException("the quota is full", "QuotaExceededError"); };', async () => {
        for (const round of [1, 2]) {
          const mark = reset();
          const loaded = await load({});
          assert.equal(loaded.error, undefined, JSON.stringify(loaded.error));
          assert.equal(loaded.downloaded.cachedBytes, 0, `round ${round}: nothing came from the cache`);
          assert.ok(dataRequests(mark).length > 0, `round ${round}: the weights came from the network`);
          assert.deepEqual(await run(), want.tokens);
        }
      });
    }, { timeout: 60_000 });

    it('a disabled Cache API (caches.open refused): the load works without it', async () => {
      await withWorkerPrelude('self.caches.open = async () => { throw new DOMException("storage is disabled", "SecurityError"); };', async () => {
        reset();
        const loaded = await load({});
        assert.equal(loaded.error, undefined, JSON.stringify(loaded.error));
        assert.equal(loaded.downloaded.cachedBytes, 0);
        assert.deepEqual(await run(), want.tokens);
      });
    }, { timeout: 60_000 });

    it('a byte damaged in transit: its tensor fails its checksum and is fetched again', async () => {
      const start = dataStart(bytes);
      const probe = await load({ cache: false });
      const entry = probe.info.header.entries.find((e) => e.tensor === 'layers.1.query');
      const mark = reset();
      files.corrupt = start + entry.offset + 100;
      const loaded = await load({ cache: false });
      assert.equal(loaded.error, undefined, JSON.stringify(loaded.error));
      assert.equal(files.corrupt, -1, 'the byte was damaged');
      const again = dataRequests(mark).map((r) => r.range).at(-1);
      assert.equal(again, `bytes=${start + entry.offset}-${start + entry.offset + entry.length - 1}`, 'only the damaged tensor is fetched again');
      assert.deepEqual(await run(), want.tokens);
    }, { timeout: 60_000 });

    it('a stall mid-download: the request is retried from the first byte not received', async () => {
      const mark = reset();
      files.stallAfter = 50_000; // the header is shorter: the first data request stalls
      const loaded = await load({ cache: false, stallTimeout: 500 });
      assert.equal(loaded.error, undefined, JSON.stringify(loaded.error));
      const data = dataRequests(mark);
      const [first, second] = data.map((r) => /^bytes=(\d+)-(\d+)$/.exec(r.range).slice(1).map(Number));
      assert.equal(data[0].bytes, 50_000);
      assert.deepEqual(second, [first[0] + 50_000, first[1]], 'the retry asks for the rest only');
      assert.equal(data.reduce((n, r) => n + r.bytes, 0), loaded.mix.needed.reduce((n, r) => n + r.length, 0), 'no byte was fetched twice');
      assert.deepEqual(await run(), want.tokens);
    }, { timeout: 60_000 });

    it('a 5xx and a broken connection mid-download are retried', async () => {
      const mark = reset();
      files.breakAfter = 40_000; // the first data request breaks off…
      let data = 0;
      files.answer = (entry) => (entry.range !== '-' && Number(/^bytes=(\d+)/.exec(entry.range)[1]) >= dataStart(bytes) && ++data === 2 ? 503 : undefined);
      const loaded = await load({ cache: false });
      assert.equal(loaded.error, undefined, JSON.stringify(loaded.error));
      assert.deepEqual(dataRequests(mark).slice(0, 3).map((r) => [r.status, r.bytes]).map(([s, b]) => (s === 206 && b === 40_000 ? 'broken' : s)),
        ['broken', 503, 206], '…its retry gets a 503, and the next retry the rest');
      assert.deepEqual(await run(), want.tokens);
    }, { timeout: 60_000 });

    it('the file replaced between requests: its cache is dropped and the load starts over on the new file', async () => {
      await clearCache();
      reset();
      assert.equal((await load({})).error, undefined); // the old file's header and blocks are cached now
      const other = new Uint8Array(await readFile(OTHER_FILE));
      const mark = reset();
      files.replace(other);
      // The cached header says the old size: the first data response shows the new one.
      const loaded = await load({ mix: 'XL' });
      assert.equal(loaded.error, undefined, JSON.stringify(loaded.error));
      assert.equal(loaded.fileSize, other.length);
      assert.equal(loaded.info.header.config.dim, 32, 'the new file\'s header');
      const [got, wantOther] = await Promise.all([run(), generate({ prompt: PROMPT, n: N, mix: 'XL', model: OTHER_FILE })]);
      assert.deepEqual(got, wantOther.tokens);
      assert.ok(files.requests.slice(mark).some((r) => r.range === 'bytes=0-11'), 'the header was fetched again');
      const stale = await page.evaluate(async () => {
        const cache = await caches.open('matedge-weights-v1');
        return (await cache.keys()).length;
      });
      assert.ok(stale > 0);
      // Mid-download: replace the file after the header, before the data.
      const mid = reset();
      let swapped = false;
      files.answer = (entry) => {
        if (!swapped && entry.range !== '-' && Number(/^bytes=(\d+)/.exec(entry.range)[1]) >= dataStart(bytes)) {
          swapped = true;
          files.replace(other);
        }
      };
      await clearCache();
      const midLoad = await load({ mix: 'XL' });
      assert.equal(midLoad.error, undefined, JSON.stringify(midLoad.error));
      assert.equal(midLoad.info.header.config.dim, 32);
      assert.ok(swapped && files.requests.slice(mid).filter((r) => r.range === 'bytes=0-11').length === 2, 'the load started over');
    }, { timeout: 90_000 });

    it('an aborted load rejects at once with ERR_ABORTED, and the next load works', async () => {
      reset();
      files.stallAfter = 50_000;
      const aborted = await page.evaluate(async (model) => {
        const { MatEdge } = await import('/matedge.js');
        const controller = new AbortController();
        const started = performance.now();
        setTimeout(() => controller.abort(), 1500);
        try {
          await MatEdge.load({ model, mix: 'S', cache: false, signal: controller.signal, stallTimeout: 60_000 });
          return null;
        } catch (e) {
          return { name: e.name, code: e.code, ms: performance.now() - started };
        }
      }, model);
      assert.equal(aborted?.code, 'ERR_ABORTED');
      assert.ok(aborted.ms < 10_000, `rejected after ${aborted.ms} ms`);
      reset();
      assert.equal((await load({ cache: false })).error, undefined);
    }, { timeout: 60_000 });

    it('a module trap: the call fails with ERR_TRAP, later calls say so, and a new load works', async () => {
      reset();
      assert.equal((await load({ cache: false })).error, undefined);
      const errors = await page.evaluate(async () => {
        const code = (p) => p.then(() => null, (e) => ({ code: e.code, message: e.message }));
        const trap = await code(window.lm.simulateTrap());
        const gen = window.lm.generate('It is', { maxTokens: 2 });
        const after = await code(gen.finished);
        return { trap, after };
      });
      assert.equal(errors.trap?.code, 'ERR_TRAP');
      assert.match(errors.trap.message, /trapped.*load the model again/);
      assert.equal(errors.after?.code, 'ERR_TRAP');
      assert.equal((await load({ cache: false })).error, undefined);
      assert.deepEqual(await run(), want.tokens);
    }, { timeout: 60_000 });

    it('a model on another origin: refused without CORS headers, with a hint; served with matedge serve -cors', async () => {
      const bare = await startFileServer({ name: 'm.matw', bytes, cors: false });
      const other = await startServer({ args: ['-cors', server.url.replace(/\/$/, '')] });
      try {
        const refused = await load({ model: `${bare.url}m.matw`, cache: false });
        assert.equal(refused.error?.code, 'ERR_FETCH');
        assert.match(refused.error.message, /CORS/);
        const served = await load({ model: `${other.url}models/default.matw`, cache: false });
        assert.equal(served.error, undefined, JSON.stringify(served.error));
        assert.deepEqual(await run(), want.tokens);
      } finally {
        await bare.stop();
        await other.stop();
      }
    }, { timeout: 60_000 });
  });
}
