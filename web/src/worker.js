// worker: runs one matedge module instance off the page's thread. matedge.js
// talks to it with messages:
//
//   page → worker  {id, op: 'load', wasm, kernels, model, mix, budget, gpu, cache, stallTimeout}   (kernels: kernels.wasm's URL, or null for the Go kernels)
//                      → {modelInfo, mixInfo, fileSize, downloaded, gpu, kernels: 'simd' | 'go', kernelsReason, capabilities, plan}
//                  {id, op: 'setMix', mix}                    → {mixInfo, downloaded, modelInfo, fileSize}
//                  {id, op: 'generate', prompt, options}      → {reason, tokens, seconds, backend}
//                  {op: 'cancel', target: id}                 (no reply; the generation ends with reason 'cancelled')
//                  {id, op: 'loseDevice'}                     → {} (tests: destroys the GPUDevice, as a driver reset would)
//                  {id, op: 'trap'}                           → error ERR_TRAP (tests: the module traps for real)
//   worker → page  {id, event: 'progress', phase, loaded, total, …}
//                  {id, event: 'plan', capabilities, plan, error, constraint}
//                  {id, event: 'started', backend, promptTokens}
//                  {id, event: 'token', token, piece}         (piece: the token's bytes, maybe part of a UTF-8 character)
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
import { benchmark, collectCapabilities } from './caps.js';
import { fetchKernels } from './kernels.js';
import { ModelFile, fetchModule } from './loader.js';
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
export function serve(port, { fetch = globalThis.fetch?.bind(globalThis) } = {}) {
  let mod = null; // ModuleInstance
  let file = null; // ModelFile of the weights
  let modelInfo = null;
  let gpuLost = null; // why the GPU was lost, once it was
  let trapped = null; // the error that ended the last instance, once one trapped
  let queue = Promise.resolve();
  const cancelled = new Set();
  const post = (message, transfer) => port.postMessage(message, transfer);

  const ops = {
    async load({ id, wasm, kernels, model, mix, budget, gpu, cache, stallTimeout }) {
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
          Object.assign(result, await plan(id, budget, host, progress));
          chosen = result.plan.spec;
        }
        result.mixInfo = await file.loadMix(mod, chosen, { onProgress: progress('weights', { mix: chosen }) });
        result.downloaded = file.stats;
        return result;
      });
    },

    async setMix({ id, mix }) {
      loaded();
      let reloaded = false;
      return startOver(async () => {
        if (reloaded) modelInfo = await file.loadHeader(mod);
        reloaded = true;
        const mixInfo = await file.loadMix(mod, mix, { onProgress: (p) => post({ id, event: 'progress', phase: 'weights', mix, ...p }) });
        return { mixInfo, downloaded: file.stats, modelInfo, fileSize: file.size };
      });
    },

    // trap makes the module trap for real, as a host bug would (a second
    // _initialize), to see recovery at work (tests).
    async trap() {
      loaded();
      mod.exports._initialize();
    },

    async generate({ id, prompt, options }) {
      loaded();
      if (gpuLost && options.backend === 'gpu') {
        throw new MatEdgeError(`matedge: the GPU backend is gone: ${gpuLost}`, { code: 'ERR_BACKEND' });
      }
      const start = performance.now();
      let backend = begin(options);
      const promptTokens = mod.prompt(prompt);
      post({ id, event: 'started', backend, promptTokens });
      const tokens = [];
      let reason = 'length';
      while (tokens.length < options.max_tokens) {
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
          mod.prompt(prompt);
          await replay(tokens);
          continue;
        }
        if (status === DONE) {
          reason = 'context';
          break;
        }
        const piece = mod.output();
        tokens.push(status);
        post({ id, event: 'token', token: status, piece }, [piece.buffer]);
      }
      cancelled.delete(id);
      return { reason, tokens: tokens.length, seconds: (performance.now() - start) / 1000, backend };
    },
  };

  // plan measures the device and asks the module's planner which mix to run:
  // capabilities, then S (which every plan needs) and the micro-benchmark on
  // it, then the plan. It posts a 'plan' event and returns its parts.
  async function plan(id, budget, host, progress) {
    const capabilities = await collectCapabilities(host);
    const smallest = modelInfo.granularities[0];
    await file.loadMix(mod, smallest, { onProgress: progress('weights', { mix: smallest, benchmark: true }) });
    const backends = host.device && !gpuLost ? ['gpu', 'cpu'] : ['cpu'];
    const measured = await benchmark(mod, modelInfo, backends);
    capabilities.benchmarks = measured.map(({ tokensPerSecond, ...b }) => b);
    const answer = mod.plan({ capabilities, budget: budgetDocument(budget) });
    const chosen = { capabilities: { ...capabilities, benchmarks: measured }, plan: { ...answer.plan, error: answer.error || '', constraint: answer.constraint || '' } };
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
    if (data.op === 'loseDevice') {
      mod?.gpu.device?.destroy();
      post({ id: data.id, result: { lost: Boolean(mod?.gpu.device) } });
      return;
    }
    queue = queue.then(async () => {
      try {
        const op = ops[data.op];
        if (!op) throw new MatEdgeError(`matedge: unknown worker operation ${data.op}`);
        post({ id: data.id, result: await op(data) });
      } catch (err) {
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
