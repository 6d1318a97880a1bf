// worker: runs one matedge module instance off the page's thread. matedge.js
// talks to it with messages:
//
//   page → worker  {id, op: 'load', wasm, model, mix, budget, gpu, cache}
//                      → {modelInfo, mixInfo, fileSize, downloaded, gpu, capabilities, plan}
//                  {id, op: 'setMix', mix}                    → {mixInfo, downloaded}
//                  {id, op: 'generate', prompt, options}      → {reason, tokens, seconds, backend}
//                  {op: 'cancel', target: id}                 (no reply; the generation ends with reason 'cancelled')
//                  {id, op: 'loseDevice'}                     → {} (tests: destroys the GPUDevice, as a driver reset would)
//   worker → page  {id, event: 'progress', phase, loaded, total, …}
//                  {id, event: 'plan', capabilities, plan, error, constraint}
//                  {id, event: 'started', backend, promptTokens}
//                  {id, event: 'token', token, piece, widths} (piece: the token's bytes, maybe part of a UTF-8 character; widths: with a route, the granularity per layer)
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
import { ModelFile, fetchModule } from './loader.js';
import { ProcExit } from './wasi.js';
import { noGPU, requestGPU } from './webgpu.js';

// PRESETS are planner.Fast, Balanced and Best (wasm/planner/budget.go).
const PRESETS = {
  fast: { name: 'fast', target_tokens_per_second: 25, max_download_seconds: 20 },
  balanced: { name: 'balanced', target_tokens_per_second: 10, max_download_seconds: 120 },
  best: { name: 'best', target_tokens_per_second: 2 },
};

let mod = null; // ModuleInstance
let file = null; // ModelFile of the weights
let modelInfo = null;
let gpuLost = null; // why the GPU was lost, once it was
let queue = Promise.resolve();
const cancelled = new Set();

const ops = {
  async load({ id, wasm, model, mix, budget, gpu, cache }) {
    const progress = (phase, extra) => (p) => self.postMessage({ id, event: 'progress', phase, ...extra, ...p });
    const [compiled, host, store] = await Promise.all([
      fetchModule(wasm, { onProgress: progress('wasm') }),
      gpu ? requestGPU() : noGPU('the page asked for no GPU'),
      cache ? BlockCache.open() : null,
    ]);
    host.onLost = (message) => { gpuLost = message; };
    mod = await ModuleInstance.instantiate(compiled, { gpu: host });
    file = new ModelFile(model, { cache: store });
    modelInfo = await file.loadHeader(mod);
    const result = { modelInfo, fileSize: file.size, gpu: host.info, gpuReason: host.reason, capabilities: null, plan: null };
    if (mix === 'auto') {
      Object.assign(result, await plan(id, budget, host, progress));
      mix = result.plan.spec;
    }
    result.mixInfo = await file.loadMix(mod, mix, { onProgress: progress('weights', { mix }) });
    result.downloaded = file.stats;
    return result;
  },

  async setMix({ id, mix }) {
    loaded();
    const mixInfo = await file.loadMix(mod, mix, { onProgress: (p) => self.postMessage({ id, event: 'progress', phase: 'weights', mix, ...p }) });
    return { mixInfo, downloaded: file.stats };
  },

  async generate({ id, prompt, options }) {
    loaded();
    if (gpuLost && options.backend === 'gpu') {
      throw new MatEdgeError(`matedge: the GPU backend is gone: ${gpuLost}`, { code: 'ERR_BACKEND' });
    }
    const start = performance.now();
    let backend = begin(options);
    const promptTokens = mod.prompt(prompt);
    self.postMessage({ id, event: 'started', backend, promptTokens });
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
        self.postMessage({ id, event: 'device-lost', message: gpuLost });
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
      const widths = options.route ? mod.widths() : undefined;
      self.postMessage({ id, event: 'token', token: status, piece, widths }, [piece.buffer]);
    }
    cancelled.delete(id);
    return { reason, tokens: tokens.length, seconds: (performance.now() - start) / 1000, backend };
  },

};

// plan measures the device and asks the module's planner which mix to run:
// capabilities, then S (which every plan needs) and the micro-benchmark on
// it, then the plan. It posts a 'plan' event and returns its parts.
async function plan(id, budget, host, progress) {
  if (!mod.hasPlan) throw new MatEdgeError('matedge: this matedge.wasm has no plan export; rebuild it with ./build.sh, or load a fixed mix', { code: 'ERR_ABI' });
  const capabilities = await collectCapabilities(host);
  const smallest = modelInfo.granularities[0];
  await file.loadMix(mod, smallest, { onProgress: progress('weights', { mix: smallest, benchmark: true }) });
  const backends = host.device && !gpuLost ? ['gpu', 'cpu'] : ['cpu'];
  const measured = await benchmark(mod, modelInfo, backends);
  capabilities.benchmarks = measured.map(({ tokensPerSecond, ...b }) => b);
  const answer = mod.plan({ capabilities, budget: budgetDocument(budget) });
  const chosen = { capabilities: { ...capabilities, benchmarks: measured }, plan: { ...answer.plan, error: answer.error || '', constraint: answer.constraint || '' } };
  self.postMessage({ id, event: 'plan', ...chosen });
  return chosen;
}

// budgetDocument turns MatEdge.load's budget (a preset name or an object of
// camelCase limits) into planner.Budget's msgpack document.
function budgetDocument(budget = 'balanced') {
  if (typeof budget === 'string') {
    const preset = PRESETS[budget.toLowerCase()];
    if (!preset) throw new MatEdgeError(`matedge: budget "${budget}": want fast, balanced, best or an object`, { code: 'ERR_ARG' });
    return preset;
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

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function loaded() {
  if (!mod) throw new MatEdgeError('matedge: no model loaded', { code: 'ERR_STATE' });
}

// nextTask resolves after pending messages have been handled: a MessageChannel
// round trip, which unlike setTimeout(0) is not clamped to 4 ms.
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()();
function nextTask() {
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

self.onmessage = ({ data }) => {
  if (data.op === 'cancel') {
    cancelled.add(data.target);
    return;
  }
  if (data.op === 'loseDevice') {
    mod?.gpu.device?.destroy();
    self.postMessage({ id: data.id, result: { lost: Boolean(mod?.gpu.device) } });
    return;
  }
  queue = queue.then(async () => {
    try {
      const op = ops[data.op];
      if (!op) throw new MatEdgeError(`matedge: unknown worker operation ${data.op}`);
      self.postMessage({ id: data.id, result: await op(data) });
    } catch (err) {
      const error = { message: err?.message ?? String(err), code: err?.code ?? 'ERR_RUNTIME' };
      if (err instanceof WebAssembly.RuntimeError || err instanceof ProcExit) {
        // A trapped instance is in no state to go on: drop it.
        mod = null;
        error.message = `matedge: the module trapped: ${error.message}; load the model again`;
        error.code = 'ERR_TRAP';
      }
      if (!(err instanceof MatEdgeError)) console.error(err);
      self.postMessage({ id: data.id, error });
    }
  });
};
