// abi: the JavaScript side of the matedge module ABI (wasm/ABI.md) — the
// version, the status codes, and ModuleInstance, which calls the exports the
// way host/module.go does for the Go host. It runs anywhere WebAssembly does
// (a worker, a page, Node), and fetches nothing.

import * as msgpack from './msgpack.js';
import { KernelHost } from './kernels.js';
import { WASI } from './wasi.js';
import { noGPU } from './webgpu.js';

/** ABI_VERSION is the version of wasm/ABI.md this runtime speaks; the module's abi_version must equal it. */
export const ABI_VERSION = 1;

/** Status codes returned by the exports (ABI.md, "Status"). */
export const DONE = -1;
export const PENDING = -2;
export const CODES = {
  [-3]: 'ERR_ARG',
  [-4]: 'ERR_STATE',
  [-5]: 'ERR_FORMAT',
  [-6]: 'ERR_CHECKSUM',
  [-7]: 'ERR_MISSING',
  [-8]: 'ERR_BACKEND',
  [-9]: 'ERR_INTERNAL',
};

/** PREAMBLE is how many bytes of a weights file header_len needs: magic, version, header length. */
export const PREAMBLE = 12;

/**
 * EXPORTS are the module's exports this runtime needs: those of wasm/ABI.md
 * (web/test/contract.test.mjs checks the list against it and the built
 * module), plus WASI's _initialize and the memory.
 */
export const EXPORTS = ['_initialize', 'memory', 'abi_version', 'alloc', 'free', 'output_ptr', 'output_len',
  'header_len', 'load_header', 'feed', 'set_mix', 'reset', 'prompt', 'step', 'plan', 'bench_kernel', 'widths',
  'speculation', 'classify', 'load_index', 'index_image', 'bench_start', 'bench_step', 'bench_end'];

// MAX_PENDING is how many PENDING steps in a row, with nothing in flight to
// wait for, mean the module is stuck (as host/module.go's maxPending).
const MAX_PENDING = 1000;

// SCRATCH is the smallest input buffer borrowed from the module (as in host/module.go).
const SCRATCH = 64 << 10;

/**
 * MatEdgeError is an error from the module or the runtime. `code` is the
 * ABI status name (ERR_ARG, …) for errors the module reported, or one of
 * ERR_ABI, ERR_FETCH, ERR_PENDING for the runtime's own.
 */
export class MatEdgeError extends Error {
  constructor(message, { code = 'ERR_RUNTIME', call } = {}) {
    super(message);
    this.name = 'MatEdgeError';
    this.code = code;
    if (call) this.call = call;
  }
}

const utf8 = new TextEncoder();

/** ModuleInstance is one instance of matedge.wasm: one engine, one sequence. */
export class ModuleInstance {
  /**
   * instantiate starts an instance of a compiled module: WASI, _initialize,
   * then the ABI version and the exports ABI.md lists are checked.
   */
  static async instantiate(module, { stdout, stderr, gpu = noGPU(), kernels = null } = {}) {
    const wasi = new WASI({ stdout, stderr });
    // The `webgpu` import module (webgpu/ABI.md): `gpu` is a WebGPUHost
    // (webgpu.js), from requestGPU() or noGPU(), in which case the engine's
    // `auto` backend runs on the CPU.
    // The `kernels` import module (wasm/ABI.md): `kernels` is kernels.wasm
    // compiled (fetchKernels in kernels.js), or null for the Go kernels.
    const kernelHost = new KernelHost(kernels);
    let instance;
    const imports = {
      wasi_snapshot_preview1: wasi.importsFor(module),
      webgpu: gpu.imports(() => instance.exports.memory),
      kernels: kernelHost.imports(),
    };
    for (const imp of WebAssembly.Module.imports(module)) {
      if (!(imp.module in imports)) throw new MatEdgeError(`matedge: the module imports ${imp.module}.${imp.name}, which this runtime does not provide; is matedge.js older than matedge.wasm? Rebuild both with ./build.sh`, { code: 'ERR_ABI' });
    }
    instance = await WebAssembly.instantiate(module, imports);
    const exports = instance.exports;
    if (exports.memory instanceof WebAssembly.Memory) kernelHost.link(exports.memory);
    if (typeof exports.abi_version !== 'function') {
      throw new MatEdgeError('matedge: the module has no abi_version export; is it matedge.wasm?', { code: 'ERR_ABI' });
    }
    wasi.initialize(instance);
    const version = exports.abi_version();
    if (version !== ABI_VERSION) {
      throw new MatEdgeError(`matedge: module ABI version ${version}, this runtime speaks ${ABI_VERSION}; rebuild both with ./build.sh`, { code: 'ERR_ABI' });
    }
    const missing = EXPORTS.filter((name) => !(name in exports));
    if (missing.length) {
      throw new MatEdgeError(`matedge: the module lacks the exports ${missing.join(', ')} of ABI version ${ABI_VERSION}`, { code: 'ERR_ABI' });
    }
    return new ModuleInstance(exports, wasi, gpu, kernelHost);
  }

  constructor(exports, wasi, gpu, kernels) {
    this.exports = exports;
    this.wasi = wasi;
    /** The KernelHost behind the module's `kernels` imports (kernels.js). */
    this.kernels = kernels;
    /** The WebGPUHost behind the module's `webgpu` imports. */
    this.gpu = gpu;
    this.scratch = 0; // a buffer from alloc that inputs are copied into
    this.scratchSize = 0;
  }

  /** memory is a fresh view: the module's memory may grow during any call. */
  get memory() { return new Uint8Array(this.exports.memory.buffer); }

  /** output copies the module's output buffer. */
  output() {
    const ptr = this.exports.output_ptr() >>> 0;
    const len = this.exports.output_len() >>> 0;
    return this.memory.slice(ptr, ptr + len);
  }

  // check turns an error status into a MatEdgeError with the module's message.
  check(call, status) {
    const n = Number(status);
    if (n < 0 && n !== DONE && n !== PENDING) {
      const message = new TextDecoder().decode(this.output());
      throw new MatEdgeError(`matedge: ${call}: ${message}`, { code: CODES[n] ?? `status ${n}`, call });
    }
    return n;
  }

  // put copies bytes into the scratch buffer and returns its address.
  put(bytes) {
    if (bytes.length > this.scratchSize) {
      if (this.scratch) this.exports.free(this.scratch);
      const size = Math.max(bytes.length, SCRATCH);
      const ptr = this.exports.alloc(size) >>> 0;
      if (ptr === 0) throw new MatEdgeError(`matedge: the module could not allocate ${size} bytes`, { code: 'ERR_RUNTIME' });
      this.scratch = ptr;
      this.scratchSize = size;
    }
    this.memory.set(bytes, this.scratch);
    return this.scratch;
  }

  // callBytes copies bytes in and calls name(ptr, len, ...extra).
  callBytes(name, bytes, ...extra) {
    const ptr = this.put(bytes);
    return this.check(name, this.exports[name](ptr, bytes.length, ...extra));
  }

  decodeOutput() { return msgpack.decode(this.output()); }

  /** headerLen: given the first PREAMBLE bytes of a weights file, how many bytes load_header needs. */
  headerLen(preamble) { return this.callBytes('header_len', preamble); }

  /** loadHeader hands over the header bytes and returns ModelInfo; fileSize is -1 if unknown. */
  loadHeader(header, fileSize) {
    this.callBytes('load_header', header, BigInt(fileSize));
    return this.decodeOutput();
  }

  /** feed hands over weights bytes that start at file offset. */
  feed(offset, bytes) {
    const ptr = this.put(bytes);
    this.check('feed', this.exports.feed(BigInt(offset), ptr, bytes.length));
  }

  /** setMix selects a mix ("S", "S,M,L,XL", "auto") and returns MixInfo. */
  setMix(spec) {
    this.callBytes('set_mix', utf8.encode(spec));
    const info = this.decodeOutput();
    // Go encodes an empty list as nil.
    return { ...info, missing: info.missing ?? [], needed: info.needed ?? [] };
  }

  /**
   * reset starts a sequence with Options {seed, temperature, top_k, top_p, backend, precision, draft, draft_tokens,
   * repetition_penalty, presence_penalty, penalty_window, min_p, route}; it returns the backend name.
   */
  reset({
    seed, temperature, top_k, top_p, backend, precision = '', draft = '', draft_tokens = 0,
    repetition_penalty = 0, presence_penalty = 0, penalty_window = 0, min_p = 0, route = 0,
  }) {
    const options = msgpack.encode({
      seed: BigInt(seed),
      temperature: msgpack.float32(temperature),
      top_k,
      top_p: msgpack.float32(top_p),
      backend,
      precision,
      draft,
      draft_tokens,
      repetition_penalty: msgpack.float32(repetition_penalty),
      presence_penalty: msgpack.float32(presence_penalty),
      penalty_window,
      min_p: msgpack.float32(min_p),
      route: msgpack.float32(route),
    });
    this.callBytes('reset', options);
    return new TextDecoder().decode(this.output());
  }

  /** prompt queues text and returns its token ids. */
  prompt(text) {
    this.callBytes('prompt', utf8.encode(text));
    return this.decodeOutput();
  }

  /** widths returns the granularity each layer ran for the token the last step fed: the routers' picks with a route, else the mix. */
  widths() {
    this.check('widths', this.exports.widths());
    return this.decodeOutput();
  }

  /** speculation returns what self-speculative decoding did since the last reset: {draft, proposed, accepted, rounds, k}. */
  speculation() {
    this.check('speculation', this.exports.speculation());
    return this.decodeOutput();
  }

  /** step returns the next token id (its bytes are in output()), DONE or PENDING; it throws on an error status. */
  step() { return this.check('step', this.exports.step()); }

  /**
   * next steps until a token id or DONE: on PENDING it awaits the GPU work in
   * flight (the readback of the sampled token) and steps again.
   */
  async next() {
    for (let idle = 0; ;) {
      const status = this.step();
      if (status !== PENDING) return status;
      const inFlight = this.gpu.settled();
      if (inFlight) {
        await inFlight;
      } else if (++idle >= MAX_PENDING) {
        throw new MatEdgeError(`matedge: step still pending after ${MAX_PENDING} calls with nothing to wait for`, { code: 'ERR_PENDING' });
      }
    }
  }


  /**
   * classify runs the current mix on one image: request is {pixels: a
   * Float32Array of [C][S][S] values in [0, 1], backend: 'cpu'|'gpu'|'auto',
   * k}; it returns ImageResult {class, probs, logits, embedding (unit length),
   * backend, neighbors: [{index, label, score}]} — the k nearest entries of
   * the loaded index, empty without one. Like step, it may return PENDING
   * while a GPU readback is in flight: it then awaits it and calls again.
   */
  async classify({ pixels, backend = 'cpu', k = 0 }) {
    // A Float32Array's bytes are little-endian on every engine that runs wasm in practice, as the module reads them.
    const input = msgpack.encode({ pixels: new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength), backend, k });
    for (let idle = 0; ;) {
      const status = this.callBytes('classify', input);
      if (status !== PENDING) break;
      const inFlight = this.gpu.settled();
      if (inFlight) await inFlight;
      else if (++idle >= MAX_PENDING) throw new MatEdgeError(`matedge: classify still pending after ${MAX_PENDING} calls with nothing to wait for`, { code: 'ERR_PENDING' });
    }
    const r = this.decodeOutput();
    // Go encodes an empty list as nil.
    return { ...r, neighbors: r.neighbors ?? [] };
  }

  /** loadIndex hands over a .mati index file's bytes and returns IndexInfo {count, dim, mix, classes, model_id, has_images}. */
  loadIndex(bytes) {
    this.callBytes('load_index', bytes);
    return this.decodeOutput();
  }

  /** indexImage returns the stored u8 pixels [C][S][S] of index entry i. */
  indexImage(i) {
    this.check('index_image', this.exports.index_image(i));
    return this.output();
  }

  /**
   * benchStart builds, inside the module, a synthetic model of the loaded
   * header's shape holding mix ('' or 'S': the smallest granularity) and
   * starts a sequence on it on backend ('cpu', 'gpu'): bench_start in
   * wasm/ABI.md. It fetches nothing; it returns the backend that will run.
   */
  benchStart({ mix = '', backend = 'cpu' } = {}) {
    this.callBytes('bench_start', msgpack.encode({ mix, backend }));
    return new TextDecoder().decode(this.output());
  }

  /**
   * benchNext runs one decode step of the synthetic model (a vision model's:
   * one image), awaiting the GPU readback on PENDING; it returns DONE once
   * the synthetic sequence's context is full, else a token id (or 0).
   */
  async benchNext() {
    for (let idle = 0; ;) {
      const status = this.check('bench_step', this.exports.bench_step());
      if (status !== PENDING) return status;
      const inFlight = this.gpu.settled();
      if (inFlight) await inFlight;
      else if (++idle >= MAX_PENDING) throw new MatEdgeError(`matedge: bench_step still pending after ${MAX_PENDING} calls with nothing to wait for`, { code: 'ERR_PENDING' });
    }
  }

  /** benchEnd drops the synthetic model and its GPU buffers. */
  benchEnd() { this.check('bench_end', this.exports.bench_end()); }

  /**
   * plan runs the module's planner on the loaded header: request is
   * {capabilities, budget, mix?} (planner.Capabilities and planner.Budget);
   * it returns {plan, error, constraint} — when nothing fits, plan is the
   * smallest plan and error says which limit it breaks.
   */
  plan(request) {
    this.callBytes('plan', msgpack.encode(request));
    return this.decodeOutput();
  }
}
