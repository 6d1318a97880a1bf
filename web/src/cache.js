// cache: weights bytes kept across visits, in the Cache API.
//
// A model is known by its identity: the SHA-256 of its header bytes. The
// header lists every tensor's offset, length and CRC-32C, so two files with
// the same header hold the same bytes where it matters, whatever their URL.
// Under it the cache keeps *blocks*: runs of the file as they were
// downloaded, each one entry keyed by its byte range:
//
//   <origin>/.matedge/header?url=<model URL>      the preamble + header bytes (x-file-size: the file's size)
//   <origin>/.matedge/<identity>/<offset>-<length>  one block of the weights file
//
// The cache never decides what is valid: the module checks each tensor's
// CRC-32C when it is fed, and the loader drops the blocks of a tensor that
// fails (loader.js). The header entry is found by URL and keeps the file's
// size and ETag: a later response with another size or ETag means the file
// was replaced on the server, and the loader drops the entry and the
// model's blocks and starts over (loader.js, ERR_CHANGED).
//
// Keys are URLs because the Cache API only takes http(s) requests; they are
// never fetched.

/** CACHE_NAME is the Cache API cache that holds every model's blocks. */
export const CACHE_NAME = 'matedge-weights-v1';

const PREFIX = '/.matedge/';

/** BlockCache is the persistent store of one origin's weights blocks. */
export class BlockCache {
  /**
   * open returns the cache, or null where the Cache API or crypto.subtle is
   * missing (outside a secure context, or in Node): then nothing persists.
   */
  static async open({ origin = globalThis.location?.origin } = {}) {
    if (!globalThis.caches || !globalThis.crypto?.subtle || !origin || origin === 'null') return null;
    try {
      return new BlockCache(await caches.open(CACHE_NAME), origin);
    } catch {
      return null; // e.g. storage disabled for this origin
    }
  }

  /** clear deletes every cached model of this origin. */
  static async clear() {
    if (globalThis.caches) await caches.delete(CACHE_NAME);
  }

  constructor(cache, origin) {
    this.cache = cache;
    this.origin = origin;
  }

  /** identity is the hex SHA-256 of a model's header bytes. */
  static async identity(header) {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', header));
    return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  headerKey(url) { return `${this.origin}${PREFIX}header?url=${encodeURIComponent(url)}`; }

  /** header returns the cached header of the file at url: {bytes, fileSize, etag}, or null. */
  async header(url) {
    const response = await this.cache.match(this.headerKey(url));
    if (!response) return null;
    return {
      bytes: new Uint8Array(await response.arrayBuffer()),
      fileSize: Number(response.headers.get('x-file-size') ?? -1),
      etag: response.headers.get('x-etag'),
    };
  }

  async putHeader(url, bytes, fileSize, etag = null) {
    const headers = { 'x-file-size': String(fileSize) };
    if (etag) headers['x-etag'] = etag;
    await this.cache.put(this.headerKey(url), new Response(bytes, { headers }));
  }

  async dropHeader(url) { await this.cache.delete(this.headerKey(url)); }

  /** blocks lists the cached blocks of a model, by offset: [{offset, length, key}]. */
  async blocks(identity) {
    const prefix = `${this.origin}${PREFIX}${identity}/`;
    const out = [];
    for (const request of await this.cache.keys()) {
      if (!request.url.startsWith(prefix)) continue;
      const m = /^(\d+)-(\d+)$/.exec(request.url.slice(prefix.length));
      if (m) out.push({ offset: Number(m[1]), length: Number(m[2]), key: request.url });
    }
    return out.sort((a, b) => a.offset - b.offset || b.length - a.length);
  }

  /** get returns a block's bytes, or null if it is gone (evicted, or dropped meanwhile). */
  async get(block) {
    const response = await this.cache.match(block.key);
    if (!response) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    return bytes.length === block.length ? bytes : null;
  }

  /** put stores bytes as the block at offset and returns it. */
  async put(identity, offset, bytes) {
    const block = { offset, length: bytes.length, key: `${this.origin}${PREFIX}${identity}/${offset}-${bytes.length}` };
    await this.cache.put(block.key, new Response(bytes));
    return block;
  }

  async drop(block) { await this.cache.delete(block.key); }

  /** dropModel deletes every cached block of a model. */
  async dropModel(identity) {
    for (const block of await this.blocks(identity)) await this.drop(block);
  }

  benchmarkKey(key) { return `${this.origin}${PREFIX}benchmark?key=${encodeURIComponent(key)}`; }

  /** benchmark returns the stored micro-benchmark for key, {benchmarks, measuredAt}, or null if none or older than maxAgeMs. */
  async benchmark(key, maxAgeMs, now = Date.now()) {
    const response = await this.cache.match(this.benchmarkKey(key));
    if (!response) return null;
    const stored = await response.json().catch(() => null);
    if (!stored || !Array.isArray(stored.benchmarks) || !(now - stored.measuredAt < maxAgeMs)) return null;
    return stored;
  }

  async putBenchmark(key, benchmarks, measuredAt = Date.now()) {
    await this.cache.put(this.benchmarkKey(key), new Response(JSON.stringify({ benchmarks, measuredAt })));
  }

  /**
   * models lists the cached models: [{url, identity, bytes, blocks}], one per
   * cached header (a model under two URLs is listed twice, with the same
   * identity and blocks). bytes counts the header and the blocks.
   */
  async models() {
    const prefix = `${this.origin}${PREFIX}header?url=`;
    const requests = await this.cache.keys();
    const sizes = new Map(); // identity → {bytes, blocks}
    for (const request of requests) {
      const m = /^([0-9a-f]{64})\/(\d+)-(\d+)$/.exec(request.url.slice(`${this.origin}${PREFIX}`.length));
      if (!m) continue;
      const size = sizes.get(m[1]) ?? { bytes: 0, blocks: 0 };
      size.bytes += Number(m[3]);
      size.blocks++;
      sizes.set(m[1], size);
    }
    const out = [];
    for (const request of requests) {
      if (!request.url.startsWith(prefix)) continue;
      const url = decodeURIComponent(request.url.slice(prefix.length));
      const header = await this.header(url);
      if (!header) continue;
      const identity = await BlockCache.identity(header.bytes);
      const size = sizes.get(identity) ?? { bytes: 0, blocks: 0 };
      out.push({ url, identity, bytes: header.bytes.length + size.bytes, blocks: size.blocks });
    }
    return out.sort((a, b) => a.url.localeCompare(b.url));
  }

  /**
   * deleteModel deletes the cached header of url and the blocks of its
   * identity (unless another cached URL has the same header), and returns the
   * bytes freed.
   */
  async deleteModel(url) {
    const models = await this.models();
    const model = models.find((m) => m.url === url);
    if (!model) return 0;
    const header = await this.header(url);
    await this.dropHeader(url);
    if (models.some((m) => m.url !== url && m.identity === model.identity)) return header?.bytes.length ?? 0;
    for (const block of await this.blocks(model.identity)) await this.drop(block);
    return model.bytes;
  }
}
