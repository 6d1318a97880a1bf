// matedge: run a nested (MatFormer) transformer in the browser.
//
//   import { MatEdge } from './matedge.js';
//   const lm = await MatEdge.load({ model: 'models/default.matw', mix: 'S', onProgress });
//   for await (const piece of lm.generate('It is a truth', { maxTokens: 32 })) out.textContent += piece;
//   lm.close();
//
// The module (matedge.wasm) runs in a Web Worker (worker.js), so the page
// never waits on it. Only the bytes of the chosen mix are downloaded, with
// HTTP Range requests; see loader.js and README.md.

import { MatEdgeError } from './abi.js';

export { ABI_VERSION, MatEdgeError } from './abi.js';

/** DEFAULTS are the generation options, the same as `matedge generate`'s flags. */
export const DEFAULTS = Object.freeze({ maxTokens: 64, temperature: 0.8, topK: 40, topP: 0.95, seed: 1, backend: 'auto' });

const base = () => globalThis.document?.baseURI ?? globalThis.location?.href;
const mixSpec = (mix) => (Array.isArray(mix) ? mix.join(',') : mix);

/** MatEdge is a loaded model in its worker. */
export class MatEdge {
  /**
   * load starts a worker, downloads and checks matedge.wasm, reads the
   * weights header and fetches the bytes of `mix`.
   *
   * @param {object} o
   * @param {string|URL} o.model      the .matw file (relative URLs resolve against the page)
   * @param {string|URL} [o.wasm]     matedge.wasm; defaults to the one next to this file
   * @param {string|string[]} [o.mix] 'S', 'M', 'L', 'XL', 'auto' or one granularity per layer ('S,M,L,XL' or an array); default 'S'
   * @param {(p: {phase: 'wasm'|'weights', loaded: number, total: number}) => void} [o.onProgress]
   *        bytes of matedge.wasm, then of the mix's weights (total -1 if unknown)
   */
  static async load({ model, wasm = new URL('./matedge.wasm', import.meta.url), mix = 'S', onProgress } = {}) {
    if (!model) throw new MatEdgeError('matedge: load needs a model URL', { code: 'ERR_ARG' });
    const lm = new MatEdge(new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'matedge' }));
    try {
      const r = await lm.call({ op: 'load', wasm: String(new URL(wasm, base())), model: String(new URL(model, base())), mix: mixSpec(mix) }, onProgress);
      lm.info = r.modelInfo;
      lm.mix = r.mixInfo;
      lm.fileSize = r.fileSize;
      lm.downloaded = r.downloaded;
      return lm;
    } catch (err) {
      lm.close();
      throw err;
    }
  }

  constructor(worker) {
    /** ModelInfo (ABI.md): {header: {config, tokenizer, entries, data_size, …}, granularities, ranges}. */
    this.info = null;
    /** MixInfo of the current mix: {mix: [name per layer], missing: [], needed: [{offset, length}]}. */
    this.mix = null;
    /** The weights file's size in bytes, -1 if the server did not say. */
    this.fileSize = -1;
    /** What was fetched of the weights file so far: {requests, bytes}. */
    this.downloaded = { requests: 0, bytes: 0 };
    this.worker = worker;
    this.nextId = 1;
    this.calls = new Map(); // id → {resolve, reject, onEvent}
    this.closed = null; // the error that ended the worker
    worker.onmessage = ({ data }) => {
      const call = this.calls.get(data.id);
      if (!call) return;
      if (data.event) return call.onEvent?.(data);
      this.calls.delete(data.id);
      if (data.error) call.reject(new MatEdgeError(data.error.message, { code: data.error.code }));
      else call.resolve(data.result);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      this.end(new MatEdgeError(`matedge: the worker failed: ${e.message || 'could not start worker.js'}`, { code: 'ERR_WORKER' }));
    };
    worker.onmessageerror = () => this.end(new MatEdgeError('matedge: a worker message could not be read', { code: 'ERR_WORKER' }));
  }

  // call posts an operation and resolves with its result; onEvent gets its events.
  call(message, onEvent, id = this.nextId++) {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject, onEvent });
      this.worker.postMessage({ ...message, id });
    });
  }

  /**
   * setMix switches to another mix, fetching only the bytes it adds.
   * @param {string|string[]} mix  a mix spec, or one granularity name per layer
   */
  async setMix(mix, { onProgress } = {}) {
    const r = await this.call({ op: 'setMix', mix: mixSpec(mix) }, onProgress);
    this.mix = r.mixInfo;
    this.downloaded = r.downloaded;
    return this.mix;
  }

  /**
   * generate continues prompt. Iterate the result for text pieces as they
   * are sampled; it also carries the token ids (see Generation). Generations
   * run one at a time, in call order.
   *
   * @param {string} prompt
   * @param {object} [options]  maxTokens, temperature (0: greedy), topK (0: all), topP (0 or 1: all), seed, backend ('auto'|'cpu'|'gpu'); DEFAULTS fills the rest
   */
  generate(prompt, options = {}) {
    const o = { ...DEFAULTS, ...options };
    if (!Number.isSafeInteger(o.maxTokens) || o.maxTokens < 0) throw new RangeError(`matedge: maxTokens ${o.maxTokens}: want an integer ≥ 0`);
    if (!(Number.isSafeInteger(o.seed) || typeof o.seed === 'bigint') || o.seed < 0) throw new RangeError(`matedge: seed ${o.seed}: want an integer ≥ 0`);
    return new Generation(this, prompt, {
      max_tokens: o.maxTokens, temperature: o.temperature, top_k: o.topK, top_p: o.topP, seed: o.seed, backend: o.backend,
    });
  }

  /** close stops the worker; calls in flight reject. */
  close() {
    this.end(new MatEdgeError('matedge: closed', { code: 'ERR_CLOSED' }));
  }

  end(err) {
    if (this.closed) return;
    this.closed = err;
    this.worker.terminate();
    for (const call of this.calls.values()) call.reject(err);
    this.calls.clear();
  }
}

/**
 * Generation is one running generation: an async iterable of text pieces
 * (a token that ends inside a UTF-8 character yields nothing until the
 * character is complete). Breaking out of the loop cancels it.
 */
export class Generation {
  constructor(lm, prompt, options) {
    this.lm = lm;
    /** Token ids of the prompt, once started. */
    this.promptTokens = null;
    /** Generated token ids so far. */
    this.tokens = [];
    /** Generated text so far. */
    this.text = '';
    /** The backend that runs it ('cpu', later 'gpu'), once started. */
    this.backend = null;
    /** Why it ended: 'length' (maxTokens), 'context' (context full) or 'cancelled'; null while running. */
    this.reason = null;
    /** Seconds spent stepping (the prompt's forward pass included), once ended. */
    this.seconds = 0;
    this.startedAt = performance.now();
    this.decoder = new TextDecoder();
    this.queue = []; // pieces not yet taken by the iterator
    this.wake = null;
    this.ended = false;
    this.error = null;
    this.id = lm.nextId++;
    /** finished resolves with this generation when it ends, or rejects with its error. */
    this.finished = lm.call({ op: 'generate', prompt, options }, (e) => this.event(e), this.id).then(
      (r) => {
        this.push(this.decoder.decode());
        this.reason = r.reason;
        this.seconds = r.seconds;
        return this.finish(null);
      },
      (err) => this.finish(err),
    );
    this.finished.catch(() => {}); // the iterator reports it; an unobserved rejection is not an error here
  }

  /** tokensPerSecond is the generated tokens over the time so far, prompt included. */
  get tokensPerSecond() {
    const seconds = this.reason ? this.seconds : (performance.now() - this.startedAt) / 1000;
    return seconds > 0 ? this.tokens.length / seconds : 0;
  }

  event(e) {
    if (e.event === 'started') {
      this.backend = e.backend;
      this.promptTokens = e.promptTokens;
      this.startedAt = performance.now();
    } else if (e.event === 'token') {
      this.tokens.push(e.token);
      this.push(this.decoder.decode(e.piece, { stream: true }));
    }
  }

  push(text) {
    if (!text) return;
    this.text += text;
    this.queue.push(text);
    this.wake?.();
  }

  finish(err) {
    this.ended = true;
    this.error = err;
    this.wake?.();
    if (err) throw err;
    return this;
  }

  /** cancel ends the generation after the current step. */
  cancel() {
    if (!this.ended && !this.lm.closed) this.lm.worker.postMessage({ op: 'cancel', target: this.id });
  }

  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        if (this.queue.length) {
          yield this.queue.shift();
          continue;
        }
        if (this.ended) {
          if (this.error) throw this.error;
          return;
        }
        await new Promise((resolve) => { this.wake = resolve; });
        this.wake = null;
      }
    } finally {
      this.cancel();
    }
  }
}
