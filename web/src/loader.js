// loader: brings a weights file into a ModuleInstance over HTTP, fetching only
// the bytes a mix needs — the preamble, the header, then MixInfo.missing with
// Range requests — as host/generate.go's Load does from a local file, and
// keeping what it fetched in a BlockCache (cache.js) for the next visit.

import { BlockCache } from './cache.js';
import { MatEdgeError, PREAMBLE } from './abi.js';

/** FEED_CHUNK is the most bytes handed to one feed call. */
export const FEED_CHUNK = 1 << 20;

/** PARALLEL_RANGES is how many Range requests run at once. */
export const PARALLEL_RANGES = 4;

/**
 * Cached blocks are a sixteenth of the range being downloaded, within these
 * bounds: small enough that an interrupted download loses little, few
 * enough that the cache does not hold thousands of entries per model.
 */
export const MIN_BLOCK = 64 << 10;
export const MAX_BLOCK = 4 << 20;

/** STALL_TIMEOUT is how long (ms) a request may go without a byte before it is retried. */
export const STALL_TIMEOUT = 15_000;

/** RETRIES is how many times a failed request (a stall, a 5xx, a broken connection) is tried again. */
export const RETRIES = 3;

/**
 * RangeSource reads byte ranges of one URL. A server that answers a Range
 * request with 200 (the whole file) is read once, and every later range is
 * cut from that copy. `stats` counts requests and body bytes received.
 *
 * A request that stalls (no byte for stallTimeout ms), fails with a 5xx
 * or 408/429 status, or breaks off mid-body is tried again up to `retries`
 * times, asking only for the bytes not received yet (they were handed on
 * already). A response whose Content-Range total or ETag differs from an
 * earlier one is a file that changed between requests: ERR_CHANGED. An
 * aborted `signal` stops everything with its reason.
 */
export class RangeSource {
  constructor(url, {
    fetch = globalThis.fetch.bind(globalThis), onBytes = () => {}, signal = null, stallTimeout = STALL_TIMEOUT, retries = RETRIES,
  } = {}) {
    this.url = String(url);
    this.fetch = fetch;
    this.onBytes = onBytes; // called with each body chunk's length
    this.signal = signal;
    this.stallTimeout = stallTimeout;
    this.retries = retries;
    this.size = -1; // the file's size once a response told it
    this.etag = null; // the file's ETag once a response told it
    this.whole = null; // the file, when the server ignored Range
    this.stats = { requests: 0, bytes: 0 };
  }

  /** read yields the bytes [offset, offset+length) as they arrive, in order. */
  async *read(offset, length) {
    let got = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        for await (const chunk of this.readOnce(offset + got, length - got)) {
          got += chunk.length;
          yield chunk;
        }
        return;
      } catch (err) {
        if (!err.retry || attempt >= this.retries || this.signal?.aborted) throw err;
        await sleep(250 * 2 ** attempt, this.signal);
      }
    }
  }

  // readOnce is one request for [offset, offset+length).
  async *readOnce(offset, length) {
    if (this.whole) {
      yield this.slice(offset, length);
      return;
    }
    const last = offset + length - 1;
    const watch = this.watch();
    try {
      const response = await this.request({ headers: { Range: `bytes=${offset}-${last}` } }, watch);
      if (response.status === 200) {
        // Content-Length may count compressed bytes: compare the body's length.
        this.noteVersion(response, -1);
        const whole = await this.body(response, watch);
        this.noteVersion(response, whole.length);
        this.whole = whole;
        yield this.slice(offset, length);
        return;
      }
      const contentRange = response.headers.get('Content-Range');
      if (response.status !== 206) {
        await response.body?.cancel();
        // A 416 tells the file's size: a file that shrank is a changed one.
        const unsatisfiable = response.status === 416 && /^bytes \*\/(\d+)$/.exec(contentRange ?? '');
        if (unsatisfiable) this.noteVersion(response, Number(unsatisfiable[1]));
        throw this.httpError(response, `bytes ${offset}-${last}`);
      }
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '');
      if (range) this.noteVersion(response, range[3] === '*' ? -1 : Number(range[3]));
      if (!range || Number(range[1]) !== offset || Number(range[2]) !== last) {
        await response.body.cancel();
        const hint = contentRange === null && this.crossOrigin ? ' (a cross-origin server must expose Content-Range: Access-Control-Expose-Headers)' : '';
        throw new MatEdgeError(`matedge: ${this.url}: asked for bytes ${offset}-${last}, got Content-Range "${contentRange}"${hint}`, { code: 'ERR_FETCH' });
      }
      let got = 0;
      for await (const chunk of this.chunks(response, watch)) {
        got += chunk.length;
        if (got > length) throw new MatEdgeError(`matedge: ${this.url}: bytes ${offset}-${last}: the server sent more than ${length} bytes`, { code: 'ERR_FETCH' });
        yield chunk;
      }
      if (got !== length) {
        throw retryable(new MatEdgeError(`matedge: ${this.url}: bytes ${offset}-${last}: the response ended after ${got} of ${length} bytes`, { code: 'ERR_FETCH' }));
      }
    } finally {
      watch.stop();
    }
  }

  // noteVersion records the file's size and ETag from a response, and
  // throws ERR_CHANGED when they differ from an earlier response's.
  noteVersion(response, total) {
    const etag = response.headers.get('ETag');
    if ((total >= 0 && this.size >= 0 && total !== this.size) || (etag && this.etag && etag !== this.etag)) {
      const was = `${this.size} bytes${this.etag ? `, ETag ${this.etag}` : ''}`;
      const now = `${total} bytes${etag ? `, ETag ${etag}` : ''}`;
      throw new MatEdgeError(`matedge: ${this.url} changed on the server between requests (${was}, now ${now})`, { code: 'ERR_CHANGED' });
    }
    if (total >= 0) this.size = total;
    if (etag) this.etag = etag;
  }

  get crossOrigin() {
    const here = globalThis.location?.origin;
    return Boolean(here) && new URL(this.url, globalThis.location.href).origin !== here;
  }

  // watch is one request's AbortController: it aborts when this.signal
  // does, or when poke() has not been called for stallTimeout ms.
  watch() {
    const controller = new AbortController();
    const w = { signal: controller.signal, stalled: false, timer: null };
    const abort = () => controller.abort(this.signal.reason);
    this.signal?.addEventListener('abort', abort, { once: true });
    w.poke = () => {
      clearTimeout(w.timer);
      w.timer = setTimeout(() => {
        w.stalled = true;
        controller.abort(new Error('stalled'));
      }, this.stallTimeout);
    };
    w.stop = () => {
      clearTimeout(w.timer);
      this.signal?.removeEventListener('abort', abort);
    };
    w.poke();
    return w;
  }

  // failure turns what a fetch or a body read threw into the error to report.
  failure(err, what, watch) {
    if (this.signal?.aborted) return this.signal.reason ?? err;
    if (watch?.stalled) return retryable(new MatEdgeError(`matedge: ${what} ${this.url}: no byte for ${this.stallTimeout} ms`, { code: 'ERR_FETCH' }));
    if (err instanceof MatEdgeError) return err;
    const hint = this.crossOrigin ? ' (a model on another origin needs CORS headers from its server, e.g. matedge serve -cors)' : '';
    return retryable(new MatEdgeError(`matedge: ${what} ${this.url}: ${err.message}${hint}`, { code: 'ERR_FETCH' }));
  }

  /** bytes returns [offset, offset+length) as one array. */
  async bytes(offset, length) {
    const out = new Uint8Array(length);
    let at = 0;
    for await (const chunk of this.read(offset, length)) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  slice(offset, length) {
    if (offset + length > this.whole.length) {
      throw new MatEdgeError(`matedge: ${this.url} has ${this.whole.length} bytes; bytes ${offset}-${offset + length - 1} are past its end`, { code: 'ERR_FETCH' });
    }
    return this.whole.subarray(offset, offset + length);
  }

  async request(init, watch) {
    this.stats.requests++;
    try {
      return await this.fetch(this.url, { ...init, signal: watch?.signal ?? this.signal ?? undefined });
    } catch (err) {
      throw this.failure(err, 'fetching', watch);
    }
  }

  httpError(response, what) {
    const err = new MatEdgeError(`matedge: fetching ${this.url}${what ? ` (${what})` : ''}: HTTP ${response.status} ${response.statusText}`.trimEnd(), { code: 'ERR_FETCH' });
    return response.status >= 500 || response.status === 408 || response.status === 429 ? retryable(err) : err;
  }

  async *chunks(response, watch) {
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        watch?.poke();
        this.stats.bytes += value.length;
        this.onBytes(value.length);
        yield value;
      }
    } catch (err) {
      throw this.failure(err, 'reading', watch);
    } finally {
      reader.releaseLock();
    }
  }

  async body(response, watch) {
    const parts = [];
    let n = 0;
    for await (const chunk of this.chunks(response, watch)) {
      parts.push(chunk);
      n += chunk.length;
    }
    const out = new Uint8Array(n);
    n = 0;
    for (const p of parts) {
      out.set(p, n);
      n += p.length;
    }
    return out;
  }
}

// retryable marks err as worth another request.
function retryable(err) {
  err.retry = true;
  return err;
}

// sleep waits ms, or rejects when signal aborts.
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/** fetchModule downloads and compiles matedge.wasm, reporting progress as onProgress({loaded, total}) (total -1: unknown). */
export async function fetchModule(url, { fetch, onProgress = () => {} } = {}) {
  const source = new RangeSource(url, { fetch });
  const response = await source.request();
  if (!response.ok) throw source.httpError(response);
  // A compressed answer's Content-Length counts the encoded bytes, and the
  // body stream yields decoded ones: the total is then unknown.
  const encoding = response.headers.get('Content-Encoding');
  const total = encoding && encoding !== 'identity' ? -1 : Number(response.headers.get('Content-Length') ?? -1);
  let loaded = 0;
  source.onBytes = (n) => onProgress({ loaded: (loaded += n), total });
  const bytes = await source.body(response);
  try {
    return await WebAssembly.compile(bytes);
  } catch (err) {
    throw new MatEdgeError(`matedge: ${url} is not a WebAssembly module: ${err.message}`, { code: 'ERR_ABI' });
  }
}

/**
 * ModelFile is one weights file: its RangeSource, its cached blocks (when a
 * BlockCache is given), and what the module has been fed from either.
 * `stats` counts {requests, bytes} over the network and {cachedBytes} fed
 * from the cache.
 */
export class ModelFile {
  /** options: fetch, cache (a BlockCache), and RangeSource's signal, stallTimeout and retries. */
  constructor(url, { fetch, cache = null, signal, stallTimeout, retries } = {}) {
    this.url = String(url);
    this.sourceOptions = { fetch, signal, stallTimeout, retries };
    this.source = new RangeSource(url, this.sourceOptions);
    this.cache = cache;
    this.identity = null; // the header's SHA-256, once the header is loaded with a cache
    this.info = null; // ModelInfo
    this.cachedBytes = 0;
    this.cacheFailed = false; // a put failed (quota): stop writing
  }

  get size() { return this.source.size; }

  /**
   * restart forgets this file after it changed on the server (ERR_CHANGED):
   * its cached header and blocks are dropped, and the next loadHeader reads
   * it afresh. Bytes already counted in stats stay counted.
   */
  async restart() {
    if (this.cache) {
      await this.cache.dropHeader(this.url).catch(() => {});
      if (this.identity) await this.cache.dropModel(this.identity).catch(() => {});
    }
    const stats = this.source.stats;
    this.source = new RangeSource(this.url, this.sourceOptions);
    this.source.stats = stats;
    this.identity = null;
    this.info = null;
  }

  get stats() { return { ...this.source.stats, cachedBytes: this.cachedBytes }; }

  /**
   * loadHeader hands the module the preamble and header — from the cache
   * when it holds this URL's, else fetched — and returns ModelInfo.
   */
  async loadHeader(mod) {
    if (this.cache) {
      const hit = await this.cache.header(this.url);
      if (hit) {
        try {
          this.info = this.headerInto(mod, hit.bytes, hit.fileSize);
          this.identity = await BlockCache.identity(hit.bytes);
          this.source.size = hit.fileSize;
          this.source.etag = hit.etag; // a later response with another size or ETag is ERR_CHANGED
          this.cachedBytes += hit.bytes.length;
          return this.info;
        } catch (err) {
          if (err.code !== 'ERR_FORMAT') throw err;
          await this.cache.dropHeader(this.url); // a damaged entry: fetch it again
        }
      }
    }
    const preamble = await this.source.bytes(0, PREAMBLE);
    const header = await this.source.bytes(0, mod.headerLen(preamble));
    this.info = mod.loadHeader(header, this.source.size);
    if (this.cache) {
      this.identity = await BlockCache.identity(header);
      await this.cache.putHeader(this.url, header, this.source.size, this.source.etag).catch(() => { this.cacheFailed = true; });
    }
    return this.info;
  }

  headerInto(mod, bytes, fileSize) {
    const need = mod.headerLen(bytes.subarray(0, PREAMBLE));
    if (need !== bytes.length) throw new MatEdgeError(`matedge: cached header has ${bytes.length} bytes, want ${need}`, { code: 'ERR_FORMAT' });
    return mod.loadHeader(bytes, fileSize);
  }

  /**
   * loadMix selects mix in the module and feeds it every byte range it still
   * misses: first what the cache holds, then the rest over the network (the
   * gaps only, adjacent ones merged, PARALLEL_RANGES at a time), caching
   * each block as it completes. The module checks every tensor's CRC-32C as
   * it completes; a tensor that fails (a damaged cached block, or bytes
   * damaged in transit) is listed missing again: its cached blocks are
   * dropped and it is fetched once more. It returns the final MixInfo.
   *
   * onProgress({loaded, total, cached, network, granularities}) counts bytes
   * of the mix: total is every byte it reads (MixInfo.needed), loaded those
   * the module has; granularities splits both by the granularity that first
   * needs them ([{name, loaded, total}], smallest first).
   */
  async loadMix(mod, mix, { onProgress = () => {} } = {}) {
    const first = mod.setMix(mix);
    const progress = new Progress(this.info, first.needed, first.missing, onProgress);
    let missing = first.missing;
    let checksumError = null;
    const feed = (offset, bytes) => {
      for (let i = 0; i < bytes.length; i += FEED_CHUNK) {
        const piece = bytes.subarray(i, i + FEED_CHUNK);
        try {
          mod.feed(offset + i, piece);
        } catch (err) {
          if (err.code !== 'ERR_CHECKSUM') throw err;
          checksumError ??= err;
        }
        progress.add(offset + i, piece.length);
      }
    };
    // Round 0 reads the cache and fetches its gaps; round 1, only after a
    // checksum failure, fetches the failed tensors again, whose blocks are
    // dropped by then.
    for (let round = 0; ; round++) {
      checksumError = null;
      const blocks = this.cache && this.identity && round === 0 ? await this.cache.blocks(this.identity) : [];
      const { hits, gaps } = cover(missing, blocks);
      for (const hit of hits) {
        const bytes = await this.cache.get(hit.block);
        if (!bytes) { // evicted since it was listed
          gaps.push({ offset: hit.offset, length: hit.length });
          continue;
        }
        this.cachedBytes += hit.length;
        const from = hit.offset - hit.block.offset;
        feed(hit.offset, bytes.subarray(from, from + hit.length));
      }
      await pool(mergeAdjacent(gaps), PARALLEL_RANGES, (range) => this.fetchRange(range, feed));
      const info = mod.setMix(mix);
      if (!info.missing.length) return info;
      if (!checksumError) {
        throw new MatEdgeError(`matedge: mix ${mix}: ${rangeBytes(info.missing)} bytes still missing after the download`, { code: 'ERR_MISSING' });
      }
      if (round === 1) {
        throw new MatEdgeError(`${checksumError.message} — the bytes the server sends do not match the weights header; if the file changed, clear the cache (MatEdge.clearCache()) or version its URL`, { code: 'ERR_CHECKSUM' });
      }
      missing = info.missing;
      if (this.cache && this.identity) await this.dropBlocks(missing);
      progress.reset(missing);
    }
  }

  // fetchRange streams one range from the network into feed, and caches it
  // in blocks as they complete.
  async fetchRange({ offset, length }, feed) {
    const size = Math.min(MAX_BLOCK, Math.max(MIN_BLOCK, Math.ceil(length / 16 / 4096) * 4096));
    let block = new Uint8Array(Math.min(size, length));
    let blockStart = offset;
    let filled = 0;
    let at = offset;
    let writes = Promise.resolve();
    try {
      for await (const chunk of this.source.read(offset, length)) {
        feed(at, chunk);
        at += chunk.length;
        for (let used = 0; used < chunk.length && this.cache && this.identity && !this.cacheFailed;) {
          const n = Math.min(block.length - filled, chunk.length - used);
          block.set(chunk.subarray(used, used + n), filled);
          filled += n;
          used += n;
          if (filled === block.length) {
            const [start, bytes] = [blockStart, block];
            writes = writes.then(() => this.cache.put(this.identity, start, bytes)).catch(() => { this.cacheFailed = true; });
            blockStart += bytes.length;
            block = new Uint8Array(Math.min(size, offset + length - blockStart));
            filled = 0;
          }
        }
      }
    } finally {
      await writes; // blocks that completed stay cached, so a download cut short resumes from them
    }
  }

  // dropBlocks removes the cached blocks that overlap ranges (tensors that
  // failed their checksum), keeping their parts outside ranges as new blocks.
  async dropBlocks(ranges) {
    for (const block of await this.cache.blocks(this.identity)) {
      if (!ranges.some((r) => r.offset < block.offset + block.length && block.offset < r.offset + r.length)) continue;
      const bytes = await this.cache.get(block);
      await this.cache.drop(block);
      if (!bytes) continue;
      for (const part of subtract([{ offset: block.offset, length: block.length }], ranges)) {
        const from = part.offset - block.offset;
        await this.cache.put(this.identity, part.offset, bytes.slice(from, from + part.length)).catch(() => {});
      }
    }
  }
}

// Progress counts the bytes of a mix the module has, by granularity.
class Progress {
  constructor(info, needed, missing, report) {
    this.report = report;
    // The bytes granularity g adds: its uniform ranges less the smaller one's.
    this.layers = info.granularities.map((name, g) => ({
      name, ranges: g === 0 ? info.ranges[0] : subtract(info.ranges[g], info.ranges[g - 1]),
    }));
    this.total = rangeBytes(needed);
    this.totals = this.layers.map((l) => overlap(needed, l.ranges));
    this.needed = needed;
    this.reset(missing);
  }

  // reset sets what is still missing: everything else counts as loaded.
  reset(missing) {
    this.missing = missing;
    this.loaded = this.total - rangeBytes(missing);
    this.per = this.layers.map((l, g) => this.totals[g] - overlap(missing, l.ranges));
    this.emit();
  }

  add(offset, length) {
    const piece = intersect([{ offset, length }], this.missing);
    this.loaded += rangeBytes(piece);
    this.layers.forEach((l, g) => { this.per[g] += overlap(piece, l.ranges); });
    this.emit();
  }

  emit() {
    this.report({
      loaded: this.loaded,
      total: this.total,
      granularities: this.layers.map((l, g) => ({ name: l.name, loaded: this.per[g], total: this.totals[g] })),
    });
  }
}

/** rangeBytes is the total length of ranges. */
export const rangeBytes = (ranges) => ranges.reduce((n, r) => n + r.length, 0);

/**
 * cover splits ranges into hits — parts a cached block holds, each read from
 * the block reaching furthest — and gaps, the parts no block holds.
 */
export function cover(ranges, blocks) {
  const hits = [];
  const gaps = [];
  for (const { offset, length } of ranges) {
    const end = offset + length;
    let at = offset;
    while (at < end) {
      let best = null;
      let next = end;
      for (const b of blocks) {
        if (b.offset <= at && at < b.offset + b.length) {
          if (!best || b.offset + b.length > best.offset + best.length) best = b;
        } else if (b.offset > at && b.offset < next) {
          next = b.offset;
        }
      }
      const to = best ? Math.min(end, best.offset + best.length) : next;
      if (best) hits.push({ block: best, offset: at, length: to - at });
      else gaps.push({ offset: at, length: to - at });
      at = to;
    }
  }
  return { hits, gaps };
}

/** mergeAdjacent sorts ranges and joins those that touch. */
export function mergeAdjacent(ranges) {
  const out = [];
  for (const r of [...ranges].sort((a, b) => a.offset - b.offset)) {
    const last = out.at(-1);
    if (last && last.offset + last.length >= r.offset) {
      last.length = Math.max(last.length, r.offset + r.length - last.offset);
    } else {
      out.push({ offset: r.offset, length: r.length });
    }
  }
  return out;
}

/** intersect is the parts of ranges a that lie in ranges b. */
export function intersect(a, b) {
  const out = [];
  for (const x of a) {
    for (const y of b) {
      const lo = Math.max(x.offset, y.offset);
      const hi = Math.min(x.offset + x.length, y.offset + y.length);
      if (lo < hi) out.push({ offset: lo, length: hi - lo });
    }
  }
  return mergeAdjacent(out);
}

/** subtract is the parts of ranges a that lie in no range of b. */
export function subtract(a, b) {
  let out = mergeAdjacent(a);
  for (const y of b) {
    const next = [];
    for (const x of out) {
      const yEnd = y.offset + y.length;
      const xEnd = x.offset + x.length;
      if (yEnd <= x.offset || y.offset >= xEnd) {
        next.push(x);
        continue;
      }
      if (y.offset > x.offset) next.push({ offset: x.offset, length: y.offset - x.offset });
      if (yEnd < xEnd) next.push({ offset: yEnd, length: xEnd - yEnd });
    }
    out = next;
  }
  return out;
}

const overlap = (a, b) => rangeBytes(intersect(a, b));

// pool runs work(item) for every item, at most `width` at a time. It rejects
// with the first failure; after one, no lane starts another item.
async function pool(items, width, work) {
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      try {
        await work(items[next++]);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}
