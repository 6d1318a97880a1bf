// matedge: run a nested (MatFormer) transformer in the browser.
//
//   import { MatEdge } from './matedge.js';
//   const lm = await MatEdge.load({ model: 'models/default.matw', budget: 'balanced', onProgress });
//   lm.plan;   // the submodel chosen for this device, and why
//   for await (const piece of lm.generate('It is a truth', { maxTokens: 32 })) out.textContent += piece;
//   lm.close();
//
//   const vit = await MatEdge.load({ model: 'models/matvit.matw' });   // a vision model (MatViT)
//   await vit.loadIndex('models/matvit-xl.mati');
//   const { className, probs, neighbors } = await vit.classify(canvas, { k: 8 });
//
// The module (matedge.wasm) runs in a Web Worker (worker.js), on WebGPU when
// the browser has it (webgpu.js) and on its CPU backend otherwise; with
// {inThread: true}, or where there is no Worker, in the caller's thread.
// In Node, node.js sets `runtime` up for worker_threads and local files. Only the
// bytes of the chosen mix are downloaded, with HTTP Range requests, and kept
// in the Cache API for the next visit; see loader.js, cache.js and README.md.
// Types: matedge.d.ts.

import { MatEdgeError } from './abi.js';
import { BlockCache } from './cache.js';
import { toPixels } from './image.js';

export { ABI_VERSION, MatEdgeError } from './abi.js';
export { toImageData, toPixels } from './image.js';

/** DEFAULTS are the generation options, the same as `matedge generate`'s flags. */
export const DEFAULTS = Object.freeze({
  maxTokens: 64, temperature: 0.8, topK: 40, topP: 0.95, seed: 1, backend: 'auto', stop: Object.freeze([]), context: 'refuse',
});

/** CONTEXT_POLICIES: what generate does with a prompt or a generation longer than the model's context. */
export const CONTEXT_POLICIES = Object.freeze(['refuse', 'truncate-left', 'slide']);

const abortError = (signal) => new MatEdgeError(`matedge: aborted${signal?.reason?.message ? `: ${signal.reason.message}` : ''}`, { code: 'ERR_ABORTED' });

// withRate adds bytesPerSecond and etaSeconds to progress events, measured
// from the first event of the same phase and mix, and `overall`: the bytes of
// every phase of one load (the module, then the weights) together, with
// their rate over the time spent in the phases (not in planning between
// them) and the time left. The overall total is the module's bytes and the
// weights' bytes: null until the weights' are known — from the plan (rate.plan)
// or the first weights event.
function withRate() {
  let key = null;
  let first = null;
  const phases = new Map(); // key → {first: {at, loaded}, last: {at, loaded}, total}
  let planned = null; // the plan's download_bytes: the weights' total before their first event
  const rate = (p) => {
    const now = performance.now();
    const k = `${p.phase}:${p.mix ?? ''}`;
    if (k !== key) {
      key = k;
      first = { at: now, loaded: p.loaded };
    }
    const seconds = (now - first.at) / 1000;
    const bytesPerSecond = seconds > 0.05 ? (p.loaded - first.loaded) / seconds : 0;
    const etaSeconds = p.total > 0 && bytesPerSecond > 0 ? Math.max(0, (p.total - p.loaded) / bytesPerSecond) : null;
    const phase = phases.get(k) ?? { first: { at: now, loaded: p.loaded } };
    phase.last = { at: now, loaded: p.loaded };
    phase.total = p.total > 0 ? p.total : -1;
    phases.set(k, phase);
    return { ...p, bytesPerSecond, etaSeconds, overall: overall() };
  };
  rate.plan = (plan) => { planned = plan?.download_bytes ?? null; };
  const overall = () => {
    let loaded = 0;
    let total = 0;
    let moved = 0;
    let ms = 0;
    let weights = false;
    for (const [k, ph] of phases) {
      loaded += ph.last.loaded;
      // A module of unknown size (a compressed response) counts what arrived.
      total += ph.total >= 0 ? ph.total : ph.last.loaded;
      moved += ph.last.loaded - ph.first.loaded;
      ms += ph.last.at - ph.first.at;
      if (k.startsWith('weights:')) weights = true;
    }
    if (!weights) total = planned === null ? null : total + planned;
    const bytesPerSecond = ms > 50 ? (moved * 1000) / ms : 0;
    const etaSeconds = total !== null && bytesPerSecond > 0 ? Math.max(0, (total - loaded) / bytesPerSecond) : null;
    return { loaded, total, bytesPerSecond, etaSeconds };
  };
  return rate;
}

/**
 * runtime is how load finds its way in this environment: the URL relative
 * model and wasm URLs resolve against, how a worker starts, and the fetch an
 * in-thread session uses. node.js replaces them for Node.
 */
export const runtime = {
  base: () => globalThis.document?.baseURI ?? globalThis.location?.href,
  worker: typeof Worker === 'function'
    ? () => new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'matedge' })
    : null,
  fetch: undefined,
};

const base = () => runtime.base();
const mixSpec = (mix) => (Array.isArray(mix) ? mix.join(',') : mix);

/** MatEdge is a loaded model in its worker. */
export class MatEdge {
  /**
   * load starts a worker, opens the GPU, downloads and checks matedge.wasm,
   * reads the weights header and fetches the bytes of `mix`. With mix
   * 'auto' (the default) it first measures the device and plans: see
   * matedge.d.ts for the options and the events.
   */
  static async load({
    model, wasm = new URL('./matedge.wasm', import.meta.url), mix = 'auto', budget = 'balanced', bestEffort = false, remeasure = false,
    gpu = true, cache = true, kernels = 'simd', inThread = !runtime.worker, signal, stallTimeout, onProgress, onPlan,
  } = {}) {
    if (!model) throw new MatEdgeError('matedge: load needs a model URL', { code: 'ERR_ARG' });
    if (kernels === 'simd') kernels = new URL('./kernels.wasm', import.meta.url);
    else if (kernels === 'go') kernels = null;
    else if (!(kernels instanceof URL) && typeof kernels !== 'string') throw new MatEdgeError(`matedge: kernels ${kernels} (want 'simd', 'go' or the URL of kernels.wasm)`, { code: 'ERR_ARG' });
    if (signal?.aborted) throw abortError(signal);
    const lm = new MatEdge(inThread ? await localWorker() : runtime.worker());
    // Aborting a load ends its worker, and with it every request in flight:
    // nothing of it is kept but the cache.
    const abort = () => lm.end(abortError(signal));
    signal?.addEventListener('abort', abort, { once: true });
    const rate = withRate();
    const onEvent = (e) => {
      if (e.event === 'plan') {
        lm.capabilities = e.capabilities;
        lm.plan = e.plan;
        rate.plan(e.plan);
        onPlan?.({ capabilities: e.capabilities, plan: e.plan });
      } else if (e.event === 'progress') {
        const { id, event, ...progress } = e;
        onProgress?.(rate(progress));
      }
    };
    try {
      const r = await lm.call({
        op: 'load', wasm: String(new URL(wasm, base())),
        kernels: kernels && String(new URL(kernels, base())),
        model: String(new URL(model, base())), mix: mixSpec(mix), budget, bestEffort, remeasure, gpu, cache, stallTimeout,
      }, onEvent);
      lm.info = r.modelInfo;
      lm.describe();
      lm.mix = r.mixInfo;
      lm.fileSize = r.fileSize;
      lm.downloaded = r.downloaded;
      lm.gpu = r.gpu;
      lm.gpuReason = r.gpuReason;
      lm.kernels = r.kernels;
      lm.kernelsReason = r.kernelsReason;
      return lm;
    } catch (err) {
      lm.close();
      throw err;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  constructor(worker) {
    /** ModelInfo (ABI.md): {header: {config, tokenizer, entries, data_size, …}, granularities, ranges}. */
    this.info = null;
    /** MixInfo of the current mix: {mix: [name per layer], missing: [], needed: [{offset, length}]}. */
    this.mix = null;
    /** The weights file's size in bytes, -1 if the server did not say. */
    this.fileSize = -1;
    /** What the weights file took so far: {requests, bytes} over the network, cachedBytes from the cache. */
    this.downloaded = { requests: 0, bytes: 0, cachedBytes: 0 };
    /** The WebGPU device the module may use (webgpu.Info: name, limits, features), or null; gpuReason says why not. */
    this.gpu = null;
    this.gpuReason = '';
    /** The kernel set of the CPU path: 'simd' (kernels.wasm linked) or 'go'. */
    this.kernels = 'go';
    /** Why the CPU path runs the Go kernels, when it does ('' with kernels.wasm). */
    this.kernelsReason = '';
    /** Why the GPU was lost, once it was; generations then run on the CPU. */
    this.gpuLost = null;
    /** With mix 'auto': the planner.Capabilities measured here (benchmarks included), and the chosen planner.Plan. */
    this.capabilities = null;
    this.plan = null;
    /** 'matvit' for a vision model, 'matformer-lm' for a language model. */
    this.architecture = 'matformer-lm';
    /** A vision model's input, {size, patch, channels}; null for a language model. */
    this.image = null;
    /** A vision model's class names, from its header (class i is "class i" when it has none). */
    this.classes = [];
    /** The loaded index (IndexInfo and its size in bytes), or null. */
    this.index = null;
    this.worker = worker;
    this.nextId = 1;
    this.calls = new Map(); // id → {resolve, reject, onEvent}
    this.closed = null; // the error that ended the worker
    worker.unref?.();
    worker.onmessage = ({ data }) => {
      const call = this.calls.get(data.id);
      if (!call) return;
      if (data.event) return call.onEvent?.(data);
      this.calls.delete(data.id);
      if (!this.calls.size) worker.unref?.();
      if (data.error) call.reject(new MatEdgeError(data.error.message, { code: data.error.code }));
      else call.resolve(data.result);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      this.end(new MatEdgeError(`matedge: the worker failed: ${e.message || 'could not start worker.js'}`, { code: 'ERR_WORKER' }));
    };
    worker.onmessageerror = () => this.end(new MatEdgeError('matedge: a worker message could not be read', { code: 'ERR_WORKER' }));
  }

  // describe reads what kind of model info is: its architecture, input and classes.
  describe() {
    const { header } = this.info;
    this.architecture = this.info.architecture || header.architecture || 'matformer-lm';
    this.image = header.config.image ?? null;
    const names = header.meta?.classes ? header.meta.classes.split(',') : [];
    this.classes = this.image ? Array.from({ length: header.config.vocab }, (_, i) => names[i] || `class ${i}`) : [];
  }

  /** isVision reports whether the model is a vision model (MatViT): classify, not generate. */
  get isVision() { return this.architecture === 'matvit'; }

  // call posts an operation and resolves with its result; onEvent gets its events.
  call(message, onEvent, id = this.nextId++) {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject, onEvent });
      this.worker.ref?.();
      this.worker.postMessage({ ...message, id });
    });
  }

  /**
   * setMix switches to another mix, fetching only the bytes it adds.
   * @param {string|string[]} mix  a mix spec, or one granularity name per layer
   */
  async setMix(mix, { onProgress, signal } = {}) {
    if (signal?.aborted) throw abortError(signal);
    const id = this.nextId++;
    const abort = () => { if (!this.closed) this.worker.postMessage({ op: 'abort', target: id }); };
    signal?.addEventListener('abort', abort, { once: true });
    const rate = withRate();
    try {
      const r = await this.call({ op: 'setMix', mix: mixSpec(mix) }, ({ id: _, event, ...p }) => onProgress?.(rate(p)), id);
      this.mix = r.mixInfo;
      this.downloaded = r.downloaded;
      this.info = r.modelInfo; // new if the file changed on the server meanwhile
      this.describe();
      this.fileSize = r.fileSize;
      return this.mix;
    } catch (err) {
      throw err.code === 'ERR_ABORTED' ? abortError(signal) : err;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /**
   * generate continues prompt. Iterate the result for text pieces as they
   * are sampled; it also carries the token ids (see Generation). Generations
   * run one at a time, in call order.
   *
   * @param {string} prompt
   * @param {object} [options]  maxTokens, temperature (0: greedy), topK (0: all), topP (0 or 1: all), seed,
   *   backend ('auto'|'cpu'|'gpu'; default: the plan's, else 'auto'; 'cpu' with a draft unless 'gpu' is asked for),
   *   draft (a mix such as 'S', or 'auto': self-speculative decoding, greedy or at a temperature, on the CPU, or
   *   on the GPU with backend 'gpu', with the same tokens for a seed), draftTokens (default 0: chosen round by round),
   *   route (0 < route ≤ 1: token routing on the CPU for about that fraction of XL's FFN FLOPs; see
   *   Generation.widths); DEFAULTS fills the rest. With a draft, Generation.speculation counts the
   *   proposals and how many were accepted
   */
  generate(prompt, options = {}) {
    // A draft runs on the CPU backend unless backend 'gpu' is asked for (a route, the penalties and min-p run on both).
    const planned = options.draft ? 'cpu' : this.plan?.backend ?? DEFAULTS.backend;
    const { signal, ...rest } = options;
    const o = { ...DEFAULTS, backend: planned, ...rest };
    if (!Number.isSafeInteger(o.maxTokens) || o.maxTokens < 0) throw new RangeError(`matedge: maxTokens ${o.maxTokens}: want an integer ≥ 0`);
    if (!(Number.isSafeInteger(o.seed) || typeof o.seed === 'bigint') || o.seed < 0) throw new RangeError(`matedge: seed ${o.seed}: want an integer ≥ 0`);
    if (!CONTEXT_POLICIES.includes(o.context)) throw new RangeError(`matedge: context "${o.context}": want ${CONTEXT_POLICIES.join(', ')}`);
    const stop = typeof o.stop === 'string' ? [o.stop] : [...(o.stop ?? [])];
    if (stop.some((s) => typeof s !== 'string')) throw new TypeError('matedge: stop: want a string or an array of strings');
    return new Generation(this, prompt, {
      max_tokens: o.maxTokens, temperature: o.temperature, top_k: o.topK, top_p: o.topP, seed: o.seed, backend: o.backend,
      precision: o.precision ?? '', draft: o.draft ?? '', draft_tokens: o.draftTokens ?? 0, stop: stop.filter((s) => s !== ''), context_policy: o.context,
      repetition_penalty: o.repetitionPenalty ?? 0, presence_penalty: o.presencePenalty ?? 0, penalty_window: o.penaltyWindow ?? 0, min_p: o.minP ?? 0, route: o.route ?? 0,
    }, signal);
  }

  /**
   * classify runs the current mix on one image and resolves with its class,
   * the probabilities of every class, its embedding (unit length) and, with
   * an index loaded and k > 0, the k nearest index entries by cosine.
   *
   * @param image  an ImageData, ImageBitmap, canvas or loaded <img> (scaled to the model's size, luminance for one
   *   channel; see image.js), or a Float32Array [C][S][S] of values in [0, 1], taken as it is
   * @param {object} [options]  backend ('auto'|'cpu'|'gpu'; default: the plan's, else 'auto'), k (neighbours; default 0)
   */
  async classify(image, { backend = this.plan?.backend ?? DEFAULTS.backend, k = 0 } = {}) {
    if (this.closed) throw this.closed;
    if (!this.isVision) throw new MatEdgeError(`matedge: classify: this is a language model (${this.architecture}); classify needs a vision model (matvit)`, { code: 'ERR_STATE' });
    if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`matedge: k ${k}: want an integer ≥ 0`);
    const pixels = toPixels(image, this.image);
    const r = await this.call({ op: 'classify', pixels, backend, k });
    if (r.deviceLost) this.gpuLost = r.deviceLost;
    const name = (c) => this.classes[c] ?? this.index?.classes?.[c] ?? `class ${c}`;
    return { ...r, className: name(r.class), neighbors: r.neighbors.map((n) => ({ ...n, className: name(n.label) })) };
  }

  /**
   * loadIndex loads a retrieval index (.mati) built with this model's
   * weights: a URL (fetched whole; relative ones resolve against the page)
   * or its bytes. It resolves with IndexInfo and replaces any index loaded
   * before; an index of other weights is refused (ERR_FORMAT).
   */
  async loadIndex(source) {
    const bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : ArrayBuffer.isView(source) ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength) : null;
    const message = bytes ? { op: 'loadIndex', bytes } : { op: 'loadIndex', url: String(new URL(source, base())) };
    this.index = await this.call(message);
    return this.index;
  }

  /** indexImage resolves with index entry i's stored pixels, u8 [C][S][S] (toImageData draws them). */
  async indexImage(i) {
    if (!Number.isSafeInteger(i)) throw new RangeError(`matedge: index image ${i}: want an integer`);
    return (await this.call({ op: 'indexImage', index: i })).pixels;
  }

  /**
   * simulateDeviceLoss destroys the worker's GPUDevice, as a driver reset or
   * a GPU process crash would, to see recovery at work: a generation in
   * flight goes on on the CPU ('device-lost'), and so do later ones.
   */
  simulateDeviceLoss() {
    return this.call({ op: 'loseDevice' });
  }

  /**
   * simulateTrap makes the module trap for real (a second _initialize, as a
   * buggy host might call), to see recovery at work: the call rejects with
   * ERR_TRAP, later calls say the module trapped, and a new load starts
   * over.
   */
  simulateTrap() {
    return this.call({ op: 'trap' });
  }

  /** clearCache deletes the weights every model of this origin has cached. */
  static clearCache() {
    return BlockCache.clear();
  }

  /**
   * cachedModels lists the models this origin has cached: [{url, identity,
   * bytes, blocks}] — bytes is what the model's cached blocks and header hold.
   * Empty where there is no Cache API (Node, insecure origins).
   */
  static async cachedModels() {
    const cache = await BlockCache.open();
    return cache ? cache.models() : [];
  }

  /**
   * deleteCachedModel deletes one model's cached header and blocks; url is its
   * model URL (relative ones resolve against the page). It resolves with the
   * bytes freed.
   */
  static async deleteCachedModel(url) {
    const cache = await BlockCache.open();
    return cache ? cache.deleteModel(String(new URL(url, base()))) : 0;
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

// localWorker runs worker.js's session in this thread, behind an object with
// a Worker's surface; messages are delivered as microtasks, not cloned.
async function localWorker() {
  const { serve } = await import('./worker.js');
  const inner = {
    onmessage: null,
    postMessage(message) { if (close) queueMicrotask(() => page.onmessage?.({ data: message })); },
  };
  const page = {
    onmessage: null,
    onerror: null,
    postMessage(message) { queueMicrotask(() => inner.onmessage?.({ data: message })); },
    terminate() {
      close?.();
      close = null;
    },
  };
  let close = serve(inner, { fetch: runtime.fetch });
  return page;
}

/**
 * Generation is one running generation: an async iterable of text pieces
 * (a token that ends inside a UTF-8 character yields nothing until the
 * character is complete). Breaking out of the loop cancels it.
 */
export class Generation {
  constructor(lm, prompt, options, signal) {
    this.lm = lm;
    /** Token ids of the prompt the module holds, once started (the kept part, with context 'truncate-left' or after a slide). */
    this.promptTokens = null;
    /** Characters cut from the left of the prompt to fit the context (context 'truncate-left' or 'slide'). */
    this.droppedChars = 0;
    /** How many times the window slid (context 'slide'). */
    this.slides = 0;
    this.signal = signal;
    this.aborted = false;
    /** Generated token ids so far. */
    this.tokens = [];
    /** With a route: each generated token's granularity per layer (0 is S), to colour tokens by. */
    this.widths = [];
    /**
     * With a draft: what self-speculative decoding did so far, the module's
     * SpeculationInfo {draft, proposed, accepted, rounds, k}, updated with
     * each token (null before the first). The rounds emitted accepted +
     * rounds tokens; the counts are the module's sequence's, so they start
     * again after a slide or a lost GPU.
     */
    this.speculation = null;
    /** Generated text so far. */
    this.text = '';
    /** The backend that runs it ('cpu' or 'gpu'), once started; 'cpu' after the GPU was lost. */
    this.backend = null;
    /** Why the GPU was lost during this generation (it went on on the CPU), or null. */
    this.deviceLost = null;
    /** Why it ended: 'length' (maxTokens), 'stop' (a stop string), 'context' (context full) or 'cancelled'; null while running. */
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
    const abort = () => {
      this.aborted = true;
      this.cancel();
    };
    if (signal?.aborted) this.aborted = true;
    signal?.addEventListener('abort', abort, { once: true });
    const call = this.aborted ? Promise.reject(abortError(signal)) : lm.call({ op: 'generate', prompt, options }, (e) => this.event(e), this.id);
    /** finished resolves with this generation when it ends, or rejects with its error (ERR_ABORTED when the signal fired). */
    this.finished = call.then(
      (r) => {
        signal?.removeEventListener('abort', abort);
        this.push(this.decoder.decode());
        this.reason = r.reason;
        this.seconds = r.seconds;
        return this.finish(this.aborted ? abortError(signal) : null);
      },
      (err) => {
        signal?.removeEventListener('abort', abort);
        return this.finish(err);
      },
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
      this.droppedChars = e.droppedChars;
      this.startedAt = performance.now();
    } else if (e.event === 'slid') {
      this.promptTokens = e.promptTokens;
      this.slides++;
    } else if (e.event === 'text') {
      this.push(this.decoder.decode(e.piece, { stream: true }));
    } else if (e.event === 'device-lost') {
      this.deviceLost = e.message;
      this.lm.gpuLost = e.message;
      this.backend = 'cpu';
    } else if (e.event === 'token') {
      this.tokens.push(e.token);
      if (e.widths) this.widths.push(e.widths);
      if (e.speculation) this.speculation = e.speculation;
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

