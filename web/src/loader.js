// loader: brings a weights file into a ModuleInstance over HTTP, fetching only
// the bytes a mix needs — the preamble, the header, then MixInfo.missing with
// Range requests — as host/generate.go's Load does from a local file.

import { MatEdgeError, PREAMBLE } from './abi.js';

/** FEED_CHUNK is the most bytes handed to one feed call. */
export const FEED_CHUNK = 1 << 20;

/** PARALLEL_RANGES is how many Range requests run at once. */
export const PARALLEL_RANGES = 4;

/**
 * RangeSource reads byte ranges of one URL. A server that answers a Range
 * request with 200 (the whole file) is read once, and every later range is
 * cut from that copy. `stats` counts requests and body bytes received.
 */
export class RangeSource {
  constructor(url, { fetch = globalThis.fetch.bind(globalThis), onBytes = () => {} } = {}) {
    this.url = String(url);
    this.fetch = fetch;
    this.onBytes = onBytes; // called with each body chunk's length
    this.size = -1; // the file's size once a response told it
    this.whole = null; // the file, when the server ignored Range
    this.stats = { requests: 0, bytes: 0 };
  }

  /** read yields the bytes [offset, offset+length) as they arrive, in order. */
  async *read(offset, length) {
    if (this.whole) {
      yield this.slice(offset, length);
      return;
    }
    const last = offset + length - 1;
    const response = await this.request({ headers: { Range: `bytes=${offset}-${last}` } });
    if (response.status === 200) {
      this.whole = await this.body(response);
      this.size = this.whole.length;
      yield this.slice(offset, length);
      return;
    }
    if (response.status !== 206) {
      await response.body?.cancel();
      throw this.httpError(response, `bytes ${offset}-${last}`);
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers.get('Content-Range') ?? '');
    if (!range || Number(range[1]) !== offset || Number(range[2]) !== last) {
      await response.body.cancel();
      throw new MatEdgeError(`matedge: ${this.url}: asked for bytes ${offset}-${last}, got Content-Range "${response.headers.get('Content-Range')}"`, { code: 'ERR_FETCH' });
    }
    if (range[3] !== '*') this.size = Number(range[3]);
    let got = 0;
    for await (const chunk of this.chunks(response)) {
      got += chunk.length;
      if (got > length) throw new MatEdgeError(`matedge: ${this.url}: bytes ${offset}-${last}: the server sent more than ${length} bytes`, { code: 'ERR_FETCH' });
      yield chunk;
    }
    if (got !== length) {
      throw new MatEdgeError(`matedge: ${this.url}: bytes ${offset}-${last}: the response ended after ${got} of ${length} bytes`, { code: 'ERR_FETCH' });
    }
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

  async request(init) {
    this.stats.requests++;
    try {
      return await this.fetch(this.url, init);
    } catch (err) {
      throw new MatEdgeError(`matedge: fetching ${this.url}: ${err.message}`, { code: 'ERR_FETCH' });
    }
  }

  httpError(response, what) {
    return new MatEdgeError(`matedge: fetching ${this.url}${what ? ` (${what})` : ''}: HTTP ${response.status} ${response.statusText}`.trimEnd(), { code: 'ERR_FETCH' });
  }

  async *chunks(response) {
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        this.stats.bytes += value.length;
        this.onBytes(value.length);
        yield value;
      }
    } catch (err) {
      if (err instanceof MatEdgeError) throw err;
      throw new MatEdgeError(`matedge: reading ${this.url}: ${err.message}`, { code: 'ERR_FETCH' });
    } finally {
      reader.releaseLock();
    }
  }

  async body(response) {
    const parts = [];
    let n = 0;
    for await (const chunk of this.chunks(response)) {
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

/** fetchModule downloads and compiles matedge.wasm, reporting progress as onProgress({loaded, total}). */
export async function fetchModule(url, { fetch, onProgress = () => {} } = {}) {
  const source = new RangeSource(url, { fetch });
  const response = await source.request();
  if (!response.ok) throw source.httpError(response);
  const total = Number(response.headers.get('Content-Length') ?? -1);
  let loaded = 0;
  source.onBytes = (n) => onProgress({ loaded: (loaded += n), total });
  const bytes = await source.body(response);
  try {
    return await WebAssembly.compile(bytes);
  } catch (err) {
    throw new MatEdgeError(`matedge: ${url} is not a WebAssembly module: ${err.message}`, { code: 'ERR_ABI' });
  }
}

/** loadHeader reads the preamble and the header from source into mod; it returns ModelInfo. */
export async function loadHeader(mod, source) {
  const preamble = await source.bytes(0, PREAMBLE);
  const headerLength = mod.headerLen(preamble);
  const header = await source.bytes(0, headerLength);
  return mod.loadHeader(header, source.size);
}

/**
 * loadMix selects mix in mod and feeds it the byte ranges it still misses,
 * fetched from source, reporting onProgress({loaded, total}) in bytes of
 * those ranges. "auto" fetches the largest granularity (as the Go host
 * does) and then picks it. It returns the final MixInfo.
 */
export async function loadMix(mod, source, modelInfo, mix, { onProgress = () => {} } = {}) {
  let ranges = mod.setMix(mix).missing;
  if (mix === 'auto') ranges = mod.setMix(modelInfo.granularities.at(-1)).missing;
  const total = ranges.reduce((n, r) => n + r.length, 0);
  let loaded = 0;
  onProgress({ loaded, total });
  const fetchRange = async ({ offset, length }) => {
    let at = offset;
    for await (const chunk of source.read(offset, length)) {
      for (let i = 0; i < chunk.length; i += FEED_CHUNK) {
        const piece = chunk.subarray(i, i + FEED_CHUNK);
        mod.feed(at, piece);
        at += piece.length;
        loaded += piece.length;
        onProgress({ loaded, total });
      }
    }
  };
  await pool(ranges, PARALLEL_RANGES, fetchRange);
  const info = mod.setMix(mix);
  if (info.missing.length) {
    const bytes = info.missing.reduce((n, r) => n + r.length, 0);
    throw new MatEdgeError(`matedge: mix ${mix}: ${bytes} bytes still missing after the download`, { code: 'ERR_MISSING' });
  }
  return info;
}

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
