// The loader's network failure modes in Node, against a local server that
// stalls, breaks off, answers 5xx, or changes the file between requests:
// RangeSource retries and resumes after the bytes it already handed on,
// reports a changed file as ERR_CHANGED, and stops at once on abort.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startFileServer } from '../harness/fileserver.mjs';
import { RangeSource } from '../src/loader.js';

const FILE = Uint8Array.from({ length: 20_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff);

describe('RangeSource against a failing server', () => {
  let files;
  before(async () => { files = await startFileServer({ name: 'f.bin', bytes: FILE }); });
  after(() => files.stop());

  // fresh resets the server's hooks and returns a source and the request mark.
  const fresh = (options = {}) => {
    Object.assign(files, { cutAfter: Infinity, breakAfter: Infinity, stallAfter: Infinity, fail: [], corrupt: -1 });
    files.replace(FILE);
    return { source: new RangeSource(`${files.url}f.bin`, { stallTimeout: 300, ...options }), mark: files.requests.length };
  };
  const ranges = (mark) => files.requests.slice(mark).map((r) => `${r.range} ${r.status} ${r.bytes}`);

  it('a request that stalls mid-body is retried from the first byte not received', async () => {
    const { source, mark } = fresh();
    files.stallAfter = 3000;
    const got = await source.bytes(1000, 10_000);
    assert.deepEqual(got, FILE.subarray(1000, 11_000));
    assert.deepEqual(ranges(mark), ['bytes=1000-10999 206 3000', 'bytes=4000-10999 206 7000']);
  });

  it('a connection that breaks mid-body is resumed', async () => {
    const { source, mark } = fresh();
    files.breakAfter = 5000;
    assert.deepEqual(await source.bytes(0, 12_000), FILE.subarray(0, 12_000));
    assert.deepEqual(ranges(mark), ['bytes=0-11999 206 5000', 'bytes=5000-11999 206 7000']);
  });

  it('5xx answers are retried, a 404 is not', async () => {
    let { source, mark } = fresh();
    files.fail = [503, 502];
    assert.deepEqual(await source.bytes(10, 100), FILE.subarray(10, 110));
    assert.deepEqual(ranges(mark), ['bytes=10-109 503 0', 'bytes=10-109 502 0', 'bytes=10-109 206 100']);

    ({ source, mark } = fresh());
    files.fail = [404];
    await assert.rejects(source.bytes(10, 100), (e) => e.code === 'ERR_FETCH' && /HTTP 404/.test(e.message));
    assert.equal(ranges(mark).length, 1);
  });

  it('gives up after its retries with the last error', async () => {
    const { source, mark } = fresh({ retries: 2 });
    files.fail = [503, 503, 503, 503];
    await assert.rejects(source.bytes(0, 10), (e) => e.code === 'ERR_FETCH' && /HTTP 503/.test(e.message));
    assert.equal(ranges(mark).length, 3);
  });

  it('a file whose size changes between requests is ERR_CHANGED', async () => {
    const { source } = fresh();
    await source.bytes(0, 12);
    files.replace(FILE.subarray(0, 15_000));
    await assert.rejects(source.bytes(100, 10), (e) => e.code === 'ERR_CHANGED' && /20000 bytes.*now 15000 bytes/.test(e.message));
  });

  it('a file whose ETag changes between requests is ERR_CHANGED, even at the same size', async () => {
    const { source } = fresh();
    await source.bytes(0, 12);
    const edited = Uint8Array.from(FILE);
    edited[5000] ^= 1;
    files.replace(edited);
    await assert.rejects(source.bytes(100, 10), (e) => e.code === 'ERR_CHANGED' && /ETag/.test(e.message));
  });

  it('a file that changes between a stalled request and its retry is ERR_CHANGED, not spliced', async () => {
    const { source } = fresh();
    await source.bytes(0, 12);
    files.stallAfter = 2000;
    const read = source.bytes(0, 10_000);
    setTimeout(() => files.replace(FILE.subarray(0, 18_000)), 100);
    await assert.rejects(read, (e) => e.code === 'ERR_CHANGED');
  });

  it('a server that ignores Range is read once; a whole body of another size than known is ERR_CHANGED', async () => {
    const plain = await startFileServer({ name: 'p.bin', bytes: FILE, ranges: false });
    try {
      const source = new RangeSource(`${plain.url}p.bin`);
      assert.deepEqual(await source.bytes(0, 12), FILE.subarray(0, 12));
      assert.deepEqual(await source.bytes(19_000, 1000), FILE.subarray(19_000));
      assert.equal(plain.requests.length, 1);
      const stale = new RangeSource(`${plain.url}p.bin`);
      stale.size = 30_000; // as a cached header of an older file would set it
      await assert.rejects(stale.bytes(0, 12), (e) => e.code === 'ERR_CHANGED');
    } finally {
      await plain.stop();
    }
  });

  it('an abort stops a stalled request at once, with the signal\'s reason', async () => {
    const controller = new AbortController();
    const { source } = fresh({ signal: controller.signal, stallTimeout: 60_000 });
    files.stallAfter = 100;
    const started = Date.now();
    setTimeout(() => controller.abort(new Error('user gave up')), 100);
    await assert.rejects(source.bytes(0, 10_000), /user gave up/);
    assert.ok(Date.now() - started < 5_000, 'the abort did not wait for the stall timeout');
  });
});
