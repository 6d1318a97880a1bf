// The runtime's own modules (msgpack.js, wasi.js, abi.js, loader.js) driving
// dist/matedge.wasm in Node, against `matedge serve` and `matedge generate`.
// The browser tests run the same code in a worker; these pin it down without
// a browser, fast.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { wrongABIModule } from '../harness/fixtures.mjs';
import { generate, missingBuild, startServer } from '../harness/server.mjs';
import { ABI_VERSION, DONE, MatEdgeError, ModuleInstance } from '../src/abi.js';
import { ModelFile, RangeSource, fetchModule } from '../src/loader.js';
import * as msgpack from '../src/msgpack.js';

const CI = process.env.CI === 'true';

describe('msgpack', () => {
  const roundTrips = [
    ['nil', null],
    ['bool', [true, false]],
    ['fixint edges', [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]],
    ['negative ints', [-1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, Number.MIN_SAFE_INTEGER]],
    ['big ints', [2n ** 53n + 1n, 2n ** 64n - 1n, -(2n ** 63n)]],
    ['float64', [0.5, -1.25e-300, 1e300]],
    ['strings', ['', 'é', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65536)]],
    ['bin', [new Uint8Array(0), new Uint8Array(300).fill(7), new Uint8Array(70000).fill(9)]],
    ['arrays', [Array(15).fill(1), Array(16).fill(2), Array(70000).fill(3)]],
    ['maps', { a: 1, nested: { b: [1, 'two', null] }, ['k'.repeat(40)]: true, many: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`f${i}`, i])) }],
  ];
  for (const [name, value] of roundTrips) {
    it(`round-trips ${name}`, () => assert.deepEqual(msgpack.decode(msgpack.encode(value)), value));
  }

  it('encodes the ABI Options document as Go expects', () => {
    const got = msgpack.encode({ seed: 1n, temperature: msgpack.float32(0.5) });
    // fixmap(2) "seed" 1 "temperature" float32(0.5)
    const want = [0x82, 0xa4, ...Buffer.from('seed'), 0x01, 0xab, ...Buffer.from('temperature'), 0xca, 0x3f, 0x00, 0x00, 0x00];
    assert.deepEqual([...got], want);
  });

  it('decodes Go int64 and uint32 forms to Numbers', () => {
    assert.equal(msgpack.decode(new Uint8Array([0xd3, 0, 0, 0, 0, 0, 0, 0x28, 0])), 10240);
    assert.equal(msgpack.decode(new Uint8Array([0xce, 0xb4, 0xdd, 0x2b, 0x1a])), 0xb4dd2b1a);
  });

  it('refuses truncated input, trailing bytes and extension types', () => {
    assert.throws(() => msgpack.decode(new Uint8Array([0x92, 0x01])), /truncated/);
    assert.throws(() => msgpack.decode(new Uint8Array([0x01, 0x02])), /trailing/);
    assert.throws(() => msgpack.decode(new Uint8Array([0xd4, 0x01, 0x02])), /unsupported type byte 0xd4/);
  });
});

const missing = missingBuild();
if (missing && CI) {
  it('the module in Node', () => assert.fail(`${missing} (CI=true: a missing dependency is a failure)`));
} else {
  describe('the module in Node', { skip: missing ?? false, timeout: 60_000 }, () => {
    let server;
    let compiled;
    const prompt = 'It is a truth';
    const n = 16;

    before(async () => {
      server = await startServer();
      compiled = await fetchModule(`${server.url}matedge.wasm`);
    }, { timeout: 30_000 });
    after(() => server?.stop(), { timeout: 10_000 });

    // run loads mix into a fresh instance and generates n greedy tokens.
    async function run(mix, options = { seed: 1, temperature: 0, top_k: 40, top_p: 0.95 }) {
      const mod = await ModuleInstance.instantiate(compiled);
      const file = new ModelFile(`${server.url}models/default.matw`);
      const info = await file.loadHeader(mod);
      const mixInfo = await file.loadMix(mod, mix);
      const source = file.source;
      mod.reset({ ...options, backend: 'cpu' });
      const promptTokens = mod.prompt(prompt);
      const tokens = [];
      while (tokens.length < n) {
        const status = mod.step();
        if (status === DONE) break;
        tokens.push(status);
      }
      return { info, mixInfo, promptTokens, tokens, source };
    }

    for (const mix of ['S', 'XL', 'S,M,L,XL']) {
      it(`gives matedge generate's greedy tokens for mix ${mix}`, async () => {
        const [got, want] = await Promise.all([run(mix), generate({ prompt, n, mix })]);
        assert.deepEqual(got.mixInfo.mix, want.mix);
        assert.deepEqual(got.promptTokens, want.prompt_tokens);
        assert.deepEqual(got.tokens, want.tokens);
      });
    }

    it('samples the same tokens as matedge generate at temperature 0.8', async () => {
      const [got, want] = await Promise.all([
        run('M', { seed: 7, temperature: 0.8, top_k: 40, top_p: 0.95 }),
        generate({ prompt, n, mix: 'M', seed: 7, temperature: 0.8, topK: 40, topP: 0.95 }),
      ]);
      assert.deepEqual(got.tokens, want.tokens);
    });

    it('fetches only the header and the S ranges for mix S', async () => {
      const { info, source } = await run('S');
      const s = info.ranges[0].reduce((sum, r) => sum + r.length, 0);
      const header = info.ranges[0][0].offset;
      assert.ok(source.stats.bytes <= 12 + header + s, `fetched ${source.stats.bytes} bytes; want ≤ ${12 + header + s}`);
      assert.ok(source.stats.bytes < source.size * 0.6, `fetched ${source.stats.bytes} of ${source.size} bytes`);
    });

    it(`refuses a module whose ABI version is not ${ABI_VERSION}`, async () => {
      const wrong = await WebAssembly.compile(wrongABIModule(ABI_VERSION + 1));
      await assert.rejects(ModuleInstance.instantiate(wrong), (err) => {
        assert.ok(err instanceof MatEdgeError);
        assert.equal(err.code, 'ERR_ABI');
        assert.match(err.message, new RegExp(`ABI version ${ABI_VERSION + 1}, this runtime speaks ${ABI_VERSION}`));
        return true;
      });
    });

    it('reports a bad weights file with the module message', async () => {
      const mod = await ModuleInstance.instantiate(compiled);
      assert.throws(() => mod.headerLen(new TextEncoder().encode('NOPE\x01\x00\x00\x00\x10\x00\x00\x00')), (err) => {
        assert.equal(err.code, 'ERR_FORMAT');
        assert.match(err.message, /^matedge: header_len: .*magic/);
        return true;
      });
    });

    it('checks the header checksum of a version-2 file and still reads version 1', async () => {
      const file = new Uint8Array(await (await fetch(`${server.url}models/default.matw`)).arrayBuffer());
      const view = new DataView(file.buffer);
      const docEnd = 12 + view.getUint32(8, true);
      const need = (bytes) => bytes.subarray(0, 12);
      let mod = await ModuleInstance.instantiate(compiled);
      assert.equal(view.getUint32(4, true), 2);
      assert.equal(mod.headerLen(need(file)), docEnd + 4, 'version 2: the header checksum follows the document');
      assert.equal(mod.loadHeader(file.subarray(0, docEnd + 4), file.length).format_version, 2);

      // A flipped bit near the document's end (the tokenizer's merges, the
      // last key) decodes to a valid header with another tokenizer: version 1
      // cannot tell, version 2 refuses it.
      const flipped = file.slice(0, docEnd + 4);
      flipped[docEnd - 20] ^= 0x01;
      assert.throws(() => mod.loadHeader(flipped, file.length), (err) => err.code === 'ERR_FORMAT' && /header checksum mismatch/.test(err.message));

      // Version 1: the same document without the checksum; the data moves to the next 256-byte boundary after it.
      const v1Start = Math.ceil(docEnd / 256) * 256;
      const v1 = new Uint8Array(v1Start);
      v1.set(file.subarray(0, docEnd));
      new DataView(v1.buffer).setUint32(4, 1, true);
      mod = await ModuleInstance.instantiate(compiled);
      assert.equal(mod.headerLen(need(v1)), docEnd);
      const info = mod.loadHeader(v1.subarray(0, docEnd), -1);
      assert.equal(info.format_version, 1);
      assert.equal(info.data_start, v1Start);
      v1[docEnd - 20] ^= 0x01;
      assert.equal(mod.loadHeader(v1.subarray(0, docEnd), -1).format_version, 1, 'version 1 cannot tell');
    });

    it('reports a missing file as an HTTP error', async () => {
      const source = new RangeSource(`${server.url}models/nope.matw`);
      await assert.rejects(source.bytes(0, 12), { code: 'ERR_FETCH', message: /HTTP 404/ });
    });
  });
}
