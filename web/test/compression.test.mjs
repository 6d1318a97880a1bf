// The module over the wire: ./build.sh writes matedge.wasm.br and .gz beside
// matedge.wasm, and both servers — `matedge serve` and nginx (gzip_static,
// brotli_static) — send the one the client accepts, with Vary:
// Accept-Encoding, and the identity file otherwise. Chromium takes brotli,
// and the bytes it receives for the module stay within the 1.2 MB target.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { missingBrotliStatic, missingNginx, startNginx } from '../harness/nginx.mjs';
import { DIST, missingBuild, startServer } from '../harness/server.mjs';

const CI = process.env.CI === 'true';

/** WIRE_TARGET is the target for the module over the wire, in bytes. */
const WIRE_TARGET = 1_200_000;

// get fetches url with the given request headers and no decoding of its own.
function get(url, headers) {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

const missing = missingBuild() ?? (await missingBrowser());
const servers = [
  ['matedge serve', () => null, async () => {
    const s = await startServer();
    return { url: s.url, stop: () => s.stop(), wasmBytes: async () => s.requests.filter((r) => r.path === '/matedge.wasm').map((r) => r.bytes) };
  }],
  ['nginx', () => missingNginx() ?? missingBrotliStatic(), async () => {
    const s = await startNginx({ models: {} });
    return { url: s.url, stop: () => s.stop(), wasmBytes: async () => (await s.requests()).filter((r) => r.path === '/matedge.wasm').map((r) => r.bytes) };
  }],
];

for (const [name, needs, start] of servers) {
  const why = missing ?? needs();
  if (why && CI) {
    it(`compressed serving by ${name}`, () => assert.fail(`${why} (CI=true: a missing dependency is a failure)`));
    continue;
  }
  describe(`compressed serving by ${name}`, { skip: why ?? false, timeout: 60_000 }, () => {
    let server;
    let files;
    before(async () => {
      server = await start();
      files = {
        identity: await readFile(join(DIST, 'matedge.wasm')),
        br: await readFile(join(DIST, 'matedge.wasm.br')),
        gzip: await readFile(join(DIST, 'matedge.wasm.gz')),
      };
    }, { timeout: 30_000 });
    after(() => server?.stop(), { timeout: 10_000 });

    it('ships .br and .gz that decode to the module, brotli within the target', () => {
      assert.deepEqual(brotliDecompressSync(files.br), files.identity);
      assert.deepEqual(gunzipSync(files.gzip), files.identity);
      assert.ok(files.br.length <= WIRE_TARGET, `matedge.wasm.br is ${files.br.length} bytes; target ≤ ${WIRE_TARGET}`);
    });

    for (const [accept, want] of [['gzip, deflate, br, zstd', 'br'], ['gzip, deflate', 'gzip'], ['br;q=0, gzip', 'gzip'], ['', 'identity']]) {
      it(`answers Accept-Encoding "${accept}" with ${want}`, async () => {
        const res = await get(`${server.url}matedge.wasm`, accept ? { 'Accept-Encoding': accept } : {});
        assert.equal(res.status, 200);
        assert.equal(res.headers['content-encoding'] ?? 'identity', want);
        assert.match(res.headers.vary ?? '', /Accept-Encoding/);
        assert.equal(res.headers['content-type'], 'application/wasm');
        assert.deepEqual(res.body, files[want]);
      });
    }

    it(`gives Chromium the module in at most ${WIRE_TARGET} bytes`, async () => {
      const browser = await launch();
      try {
        const page = await browser.context.newPage();
        await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
        await page.goto(`${server.url}blank.html`);
        const before = (await server.wasmBytes()).length;
        const decoded = await page.evaluate(async () => (await (await fetch('/matedge.wasm')).arrayBuffer()).byteLength);
        assert.equal(decoded, files.identity.length);
        let sent = [];
        for (let i = 0; i < 100 && !sent.length; i++) { // nginx writes its log line after the response
          sent = (await server.wasmBytes()).slice(before);
          if (!sent.length) await new Promise((r) => setTimeout(r, 20));
        }
        assert.deepEqual(sent, [files.br.length], `bytes sent for /matedge.wasm: ${sent}; want the .br file's ${files.br.length}`);
        assert.ok(sent[0] <= WIRE_TARGET);
      } finally {
        await browser.close();
      }
    });
  });
}
