// worker: runs one matedge module instance off the page's thread. matedge.js
// talks to it with messages:
//
//   page → worker  {id, op: 'load', wasm, kernels, model, mix, budget, gpu, cache, stallTimeout}   (kernels: kernels.wasm's URL, or null for the Go kernels)
//                      → {modelInfo, mixInfo, fileSize, downloaded, gpu, kernels: 'simd' | 'go', kernelsReason, capabilities, plan}
//                  {id, op: 'setMix', mix}                    → {mixInfo, downloaded, modelInfo, fileSize}
//                  {id, op: 'generate', prompt, options}      → {reason, tokens, seconds, backend}   (reason: length, stop, eot, context, cancelled)
//                  {id, op: 'classify', pixels, backend, k}   → ImageResult (a vision model: pixels a Float32Array [C][S][S])
//                  {id, op: 'loadIndex', url | bytes}         → IndexInfo and {bytes: the index file's size}
//                  {id, op: 'indexImage', index}              → {pixels: Uint8Array [C][S][S]}
//                  {op: 'cancel', target: id}                 (no reply; the generation ends with reason 'cancelled')
//                  {op: 'abort', target: id}                  (no reply; a setMix in flight or queued fails with ERR_ABORTED)
//                  {id, op: 'loseDevice'}                     → {} (tests: destroys the GPUDevice, as a driver reset would)
//                  {id, op: 'trap'}                           → error ERR_TRAP (tests: the module traps for real)
//   worker → page  {id, event: 'progress', phase, loaded, total, …}
//                  {id, event: 'plan', capabilities, plan, error, constraint}
//                  {id, event: 'started', backend, promptTokens, droppedChars}
//                  {id, event: 'token', token, piece, widths, speculation} (piece: the bytes now safe to show, maybe part of a UTF-8
//                                                              character; fewer than the token's with stop strings;
//                                                              widths: with a route, the granularity per layer;
//                                                              speculation: with a draft, the module's SpeculationInfo)
//                  {id, event: 'text', piece}                 (bytes held back for stop strings, released at the end)
//                  {id, event: 'slid', promptTokens, droppedChars} (context 'slide': the window moved)
//                  {id, event: 'device-lost', message}        (the generation goes on on the CPU)
//                  {id, result} or {id, error: {message, code}}
//
// Operations run one after another in arrival order; 'cancel' and 'loseDevice' jump the queue.
//
// Device loss: the module keeps its weights in its own memory, so when the
// GPU goes away mid-generation the worker starts the sequence again on the
// module's CPU backend, replays the tokens already sent (checking that the
// CPU gives the same ones) and goes on from there; every later generation
// runs on the CPU. If the replay disagrees — possible only when sampling,
// where GPU and CPU may round differently — the generation fails with
// ERR_DEVICE_LOST rather than emit text that does not follow.

import { DONE, MatEdgeError, ModuleInstance } from './abi.js';
import { BlockCache } from './cache.js';
import { BENCHMARK_TTL_MS, benchmark, benchmarkImages, benchmarkKey, collectCapabilities } from './caps.js';
import { fetchKernels } from './kernels.js';
import { ModelFile, RangeSource, fetchModule, mergeAdjacent } from './loader.js';
import { StopScanner } from './stop.js';
import { ProcExit } from './wasi.js';
import { noGPU, requestGPU } from './webgpu.js';

// PRESET_NAMES are the budgets wasm/planner/budget.go defines. Their limits
// live only there: a budget that is only a name is expanded by the module's
// plan export.
const PRESET_NAMES = ['fast', 'balanced', 'best'];

/**
 * serve answers one page's operations on port (postMessage, onmessage):
 * one module instance, one model. `fetch` reads the module and the weights
 * (Node's worker passes one that also reads file: URLs). It returns close(),
 * which drops the instance.
 */
export function serve(port, { fetch: fetchBase = globalThis.fetch?.bind(globalThis) } = {}) {
  let mod = null; // ModuleInstance
  let file = null; // ModelFile of the weights
  let modelInfo = null;
  let gpuLost = null; // why the GPU was lost, once it was
  let trapped = null; // the error that ended the last instance, once one trapped
  let currentMix = null; // the last mix loaded whole
  let queue = Promise.resolve();
  const cancelled = new Set();
  const aborted = new Set(); // ids of operations the page aborted
  let running = null; // {id, controller} of the operation in flight
  const post = (message, transfer) => port.postMessage(message, transfer);
  // Every fetch of an operation carries its abort signal, beside any the
  // caller set (the loader's stall watchdog).
  const fetch = (url, init = {}) => {
    const signals = [init.signal, running?.controller.signal].filter(Boolean);
    return fetchBase(url, { ...init, signal: signals.length > 1 ? AbortSignal.any(signals) : signals[0] });
  };

  const ops = {
    async load({ id, wasm, kernels, model, mix, budget, bestEffort, remeasure, gpu, cache, stallTimeout }) {
      const progress = (phase, extra) => (p) => post({ id, event: 'progress', phase, ...extra, ...p });
      const [compiled, simd, host, store] = await Promise.all([
        fetchModule(wasm, { fetch, onProgress: progress('wasm') }),
        // Without kernels.wasm the module runs its Go kernels: the same tokens, slower.
        kernels ? fetchKernels(kernels, { fetch }).catch((err) => err) : null,
        gpu ? requestGPU() : noGPU('the page asked for no GPU'),
        cache ? BlockCache.open() : null,
      ]);
      host.onLost = (message) => { gpuLost = message; };
      const kernelsReason = !kernels ? 'the page asked for the Go kernels'
        : simd instanceof Error ? `kernels.wasm: ${simd.message}` : simd === null ? 'this engine cannot compile SIMD128' : '';
      mod = await ModuleInstance.instantiate(compiled, { gpu: host, kernels: simd instanceof WebAssembly.Module ? simd : null });
      trapped = null;
      file = new ModelFile(model, { fetch, cache: store, stallTimeout });
      return startOver(async () => {
        modelInfo = await file.loadHeader(mod);
        const result = { modelInfo, fileSize: file.size, gpu: host.info, gpuReason: host.reason, kernels: mod.kernels.name, kernelsReason, capabilities: null, plan: null };
        let chosen = mix;
        if (mix === 'auto') {
          Object.assign(result, await plan(id, budget, host, remeasure));
          if (result.plan.error && !bestEffort) {
            throw new MatEdgeError(`matedge: nothing fits the budget (${result.plan.constraint}): ${result.plan.error}; relax the budget, or load with bestEffort: true to run the smallest plan`, { code: 'ERR_BUDGET' });
          }
          chosen = result.plan.spec;
        }
        result.mixInfo = await file.loadMix(mod, chosen, { onProgress: progress('weights', { mix: chosen }) });
        result.downloaded = file.stats;
        currentMix = chosen;
        return result;
      });
    },

    async setMix({ id, mix }) {
      loaded();
      let reloaded = false;
      return startOver(async () => {
        if (reloaded) modelInfo = await file.loadHeader(mod);
        reloaded = true;
        let mixInfo;
        try {
          mixInfo = await file.loadMix(mod, mix, { onProgress: (p) => post({ id, event: 'progress', phase: 'weights', mix, ...p }) });
          if (running?.controller.signal.aborted) throw abortError(); // aborted after the last byte: keep the mix as it was
        } catch (err) {
          if (currentMix && err?.code !== 'ERR_CHANGED') mod.setMix(currentMix); // whole: feeding more bytes never removes any
          throw err;
        }
        currentMix = mix;
        return { mixInfo, downloaded: file.stats, modelInfo, fileSize: file.size };
      });
    },

    // trap makes the module trap for real, as a host bug would (a second
    // _initialize), to see recovery at work (tests).
    async trap() {
      loaded();
      mod.exports._initialize();
    },

    // classify runs the current mix on one image; on the CPU once the GPU is gone.
    async classify({ pixels, backend, k }) {
      loaded();
      if (gpuLost && backend === 'gpu') {
        throw new MatEdgeError(`matedge: the GPU backend is gone: ${gpuLost}`, { code: 'ERR_BACKEND' });
      }
      const start = performance.now();
      let result;
      try {
        result = await mod.classify({ pixels, backend: gpuLost ? 'cpu' : backend, k });
      } catch (err) {
        // A device lost mid-image: classify it again on the CPU, as a generation goes on there.
        if (gpuLost || backend === 'cpu' || !(err instanceof MatEdgeError)) throw err;
        await Promise.race([mod.gpu.device?.lost, delay(100)]);
        if (!gpuLost) throw err;
        result = { ...await mod.classify({ pixels, backend: 'cpu', k }), deviceLost: gpuLost };
      }
      return { ...result, seconds: (performance.now() - start) / 1000 };
    },

    // loadIndex reads a .mati index (fetched whole: it is read whole) and hands it to the module.
    async loadIndex({ url, bytes }) {
      loaded();
      if (url) {
        const source = new RangeSource(url, { fetch });
        const response = await source.request();
        if (!response.ok) throw source.httpError(response);
        bytes = await source.body(response);
      }
      return { ...mod.loadIndex(bytes), bytes: bytes.length };
    },

    async indexImage({ index }) {
      loaded();
      const pixels = mod.indexImage(index);
      return { pixels };
    },

    async generate({ id, prompt, options }) {
      loaded();
      if (gpuLost && options.backend === 'gpu') {
        throw new MatEdgeError(`matedge: the GPU backend is gone: ${gpuLost}`, { code: 'ERR_BACKEND' });
      }
      const start = performance.now();
      const contextTokens = modelInfo.header.config.context;
      // The sequence the module holds: its text and the tokens generated since.
      const window = { text: prompt, tokens: [] };
      let backend;
      let promptTokens;
      ({ backend, promptTokens, text: window.text, dropped: window.dropped } = fit(prompt, options, options.context_policy === 'refuse'
        ? 0 : contextTokens - 1 - Math.min(options.max_tokens, Math.floor(contextTokens / 2))));
      post({ id, event: 'started', backend, promptTokens, droppedChars: window.dropped });
      const stops = options.stop?.length ? new StopScanner(options.stop) : null;
      const decoder = new TextDecoder();
      let generated = ''; // the text of every token so far, for sliding
      let count = 0;
      let reason = 'length';
      while (count < options.max_tokens) {
        // Let a 'cancel' message in between steps.
        await nextTask();
        if (cancelled.delete(id)) {
          reason = 'cancelled';
          break;
        }
        let status;
        try {
          status = await mod.next();
        } catch (err) {
          // A lost device fails the step; its 'lost' promise may settle a moment later.
          if (backend === 'gpu' && !gpuLost) await Promise.race([mod.gpu.device?.lost, delay(100)]);
          if (!gpuLost || backend !== 'gpu' || !(err instanceof MatEdgeError)) throw err;
          post({ id, event: 'device-lost', message: gpuLost });
          backend = begin(options);
          mod.prompt(window.text);
          await replay(window.tokens);
          continue;
        }
        if (status === DONE) {
          if (options.context_policy !== 'slide') {
            reason = 'context';
            break;
          }
          // Start again on the last half of the context: the prompt and text so far, cut from the left.
          const slid = fit(prompt + generated, options, Math.floor(contextTokens / 2));
          backend = slid.backend;
          window.text = slid.text;
          window.tokens = [];
          post({ id, event: 'slid', promptTokens: slid.promptTokens, droppedChars: slid.dropped });
          continue;
        }
        if (status === modelInfo.header.eot) {
          reason = 'eot'; // the model's end of text: not emitted
          break;
        }
        const bytes = mod.output();
        count++;
        window.tokens.push(status);
        generated += decoder.decode(bytes, { stream: true });
        const { out, stopped } = stops ? stops.push(bytes) : { out: bytes, stopped: false };
        const widths = options.route ? mod.widths() : undefined;
        const speculation = options.draft ? mod.speculation() : undefined;
        post({ id, event: 'token', token: status, piece: out, widths, speculation }, [out.buffer]);
        if (stopped) {
          reason = 'stop';
          break;
        }
      }
      if (stops && reason !== 'stop') {
        const rest = stops.flush();
        if (rest.length) post({ id, event: 'text', piece: rest }, [rest.buffer]);
      }
      cancelled.delete(id);
      return { reason, tokens: count, seconds: (performance.now() - start) / 1000, backend };
    },
  };

  // fit resets the module and queues the end of text that tokenizes to at
  // most limit tokens (0: all of it, or the module's error), cutting whole
  // characters from the left. It returns the backend, the prompt's tokens,
  // the text kept and how many characters were dropped.
  function fit(text, options, limit) {
    let keep = text;
    for (;;) {
      const backend = begin(options);
      let n;
      try {
        const promptTokens = mod.prompt(keep);
        if (!limit || promptTokens.length <= limit) return { backend, promptTokens, text: keep, dropped: text.length - keep.length };
        n = promptTokens.length;
      } catch (err) {
        const m = /prompt is (\d+) tokens/.exec(err.message);
        if (!limit || err.code !== 'ERR_ARG' || !m) throw err;
        n = Number(m[1]);
      }
      // Drop the share of characters the excess tokens are, and a little more.
      const chars = [...keep];
      const drop = Math.min(chars.length - 1, Math.ceil((chars.length * (n - limit)) / n) + 1);
      if (drop <= 0) throw new MatEdgeError(`matedge: cannot cut the prompt to ${limit} tokens`, { code: 'ERR_ARG' });
      keep = chars.slice(drop).join('');
    }
  }

  // plan measures the device and asks the module's planner which mix to run:
  // capabilities, the micro-benchmark (on synthetic weights of the model's
  // shape: nothing is fetched for it), then the plan — all before a byte of
  // weights is downloaded. It posts a 'plan' event and returns its parts.
  async function plan(id, budget, host, remeasure) {
    const capabilities = await collectCapabilities(host);
    const backends = host.device && !gpuLost ? ['gpu', 'cpu'] : ['cpu'];
    // A benchmark measured on this device for a model of this shape stands
    // for a week (remeasure: measure again).
    const key = benchmarkKey(capabilities, modelInfo.header.config, backends);
    const stored = file.cache && !remeasure ? await file.cache.benchmark(key, BENCHMARK_TTL_MS) : null;
    let measured = stored?.benchmarks;
    let measuredAt = stored?.measuredAt;
    if (!measured) {
      measured = modelInfo.architecture === 'matvit' ? await benchmarkImages(mod, modelInfo, backends) : await benchmark(mod, modelInfo, backends);
      measuredAt = Date.now();
      await file.cache?.putBenchmark(key, measured, measuredAt).catch(() => {});
    }
    capabilities.benchmarks = measured.map(({ tokensPerSecond, imagesPerSecond, ...b }) => b);
    // Cached bytes of this model cost nothing to download.
    capabilities.cachedRanges = file.cache && file.identity
      ? mergeAdjacent((await file.cache.blocks(file.identity)).map(({ offset, length }) => ({ offset, length }))) : [];
    const answer = mod.plan({ capabilities, budget: budgetDocument(budget) });
    const chosen = { capabilities: { ...capabilities, benchmarks: measured, benchmarkMeasuredAt: measuredAt }, plan: { ...answer.plan, error: answer.error || '', constraint: answer.constraint || '' } };
    post({ id, event: 'plan', ...chosen });
    return chosen;
  }

  // begin resets the module for a generation, on the CPU once the GPU is gone.
  function begin(options) {
    return mod.reset(gpuLost ? { ...options, backend: 'cpu' } : options);
  }

  // replay steps through tokens on a freshly reset sequence, checking that it
  // gives the same ones.
  async function replay(tokens) {
    for (const [i, want] of tokens.entries()) {
      const got = await mod.next();
      if (got !== want) {
        throw new MatEdgeError(`matedge: ${gpuLost}; replaying on the CPU gave token ${got} where the GPU gave ${want} (token ${i + 1}): generate again`, { code: 'ERR_DEVICE_LOST' });
      }
    }
  }

  function loaded() {
    if (trapped) throw new MatEdgeError(`${trapped}; load the model again`, { code: 'ERR_TRAP' });
    if (!mod) throw new MatEdgeError('matedge: no model loaded', { code: 'ERR_STATE' });
  }

  // startOver runs load once more, from the header on, when the weights file
  // changed on the server while it was being read (ERR_CHANGED): the module's
  // load_header then replaces what was fed from the old file.
  async function startOver(load) {
    try {
      return await load();
    } catch (err) {
      if (err?.code !== 'ERR_CHANGED') throw err;
      await file.restart();
      return load();
    }
  }

  port.onmessage = ({ data }) => {
    if (data.op === 'cancel') {
      cancelled.add(data.target);
      return;
    }
    if (data.op === 'abort') {
      if (running?.id === data.target) running.controller.abort();
      else aborted.add(data.target);
      return;
    }
    if (data.op === 'loseDevice') {
      mod?.gpu.device?.destroy();
      post({ id: data.id, result: { lost: Boolean(mod?.gpu.device) } });
      return;
    }
    queue = queue.then(async () => {
      running = { id: data.id, controller: new AbortController() };
      try {
        const op = ops[data.op];
        if (!op) throw new MatEdgeError(`matedge: unknown worker operation ${data.op}`);
        if (aborted.delete(data.id)) running.controller.abort();
        if (running.controller.signal.aborted) throw abortError();
        post({ id: data.id, result: await op(data) });
      } catch (caught) {
        const err = running.controller.signal.aborted ? abortError() : caught;
        const error = { message: err?.message ?? String(err), code: err?.code ?? 'ERR_RUNTIME' };
        if (err instanceof WebAssembly.RuntimeError || err instanceof ProcExit) {
          // A trapped instance is in no state to go on: drop it.
          mod = null;
          trapped = `matedge: the module trapped (${error.message})`;
          error.message = `${trapped}; load the model again`;
          error.code = 'ERR_TRAP';
        }
        if (!(err instanceof MatEdgeError)) console.error(err);
        post({ id: data.id, error });
      } finally {
        running = null;
      }
    });
  };
  return () => {
    port.onmessage = null;
    mod = null;
    file = null;
  };
}

// budgetDocument turns MatEdge.load's budget (a preset name or an object of
// camelCase limits) into planner.Budget's msgpack document.
function budgetDocument(budget = 'balanced') {
  if (typeof budget === 'string') {
    const name = budget.toLowerCase();
    if (!PRESET_NAMES.includes(name)) throw new MatEdgeError(`matedge: budget "${budget}": want fast, balanced, best or an object`, { code: 'ERR_ARG' });
    return { name };
  }
  const number = (x) => (x === undefined ? 0 : Number(x));
  return {
    name: budget.name ?? '',
    target_tokens_per_second: number(budget.targetTokensPerSecond),
    max_download_bytes: number(budget.maxDownloadBytes),
    max_download_seconds: number(budget.maxDownloadSeconds),
    max_memory_bytes: number(budget.maxMemoryBytes),
    backend: budget.backend ?? '',
  };
}

const abortError = () => new MatEdgeError('matedge: aborted', { code: 'ERR_ABORTED' });

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// nextTask resolves after pending messages have been handled: setImmediate
// where there is one (Node), else a MessageChannel round trip, which unlike
// setTimeout(0) is not clamped to 4 ms. (In Node a MessagePort with a
// listener would keep the process alive.)
let nextTask;
if (typeof globalThis.setImmediate === 'function') {
  nextTask = () => new Promise((resolve) => setImmediate(resolve));
} else {
  const channel = new MessageChannel();
  const waiting = [];
  channel.port1.onmessage = () => waiting.shift()();
  nextTask = () => new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

// As a Web Worker's script, serve the page that started it.
if (typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope) serve(globalThis);
