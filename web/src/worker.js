// worker: runs one matedge module instance off the page's thread. matedge.js
// talks to it with messages:
//
//   page → worker  {id, op: 'load', wasm, model, mix}       → {modelInfo, mixInfo, fileSize, downloaded}
//                  {id, op: 'setMix', mix}                    → {mixInfo, downloaded}
//                  {id, op: 'generate', prompt, options}      → {reason, tokens, seconds}
//                  {op: 'cancel', target: id}                 (no reply; the generation ends with reason 'cancelled')
//   worker → page  {id, event: 'progress', phase, loaded, total}
//                  {id, event: 'started', backend, promptTokens}
//                  {id, event: 'token', token, piece}         (piece: the token's bytes, maybe part of a UTF-8 character)
//                  {id, result} or {id, error: {message, code}}
//
// Operations run one after another in arrival order; only 'cancel' jumps the queue.

import { DONE, MatEdgeError, ModuleInstance, PENDING } from './abi.js';
import { RangeSource, fetchModule, loadHeader, loadMix } from './loader.js';
import { ProcExit } from './wasi.js';

// MAX_PENDING is how many PENDING steps in a row, with no readback left to
// wait for, mean the module is stuck (as host/module.go's maxPending).
const MAX_PENDING = 1000;

let mod = null; // ModuleInstance
let source = null; // RangeSource of the weights file
let modelInfo = null;
let queue = Promise.resolve();
const cancelled = new Set();

const ops = {
  async load({ id, wasm, model, mix }) {
    const progress = (phase) => (p) => self.postMessage({ id, event: 'progress', phase, ...p });
    const compiled = await fetchModule(wasm, { onProgress: progress('wasm') });
    mod = await ModuleInstance.instantiate(compiled);
    source = new RangeSource(model);
    modelInfo = await loadHeader(mod, source);
    const mixInfo = await loadMix(mod, source, modelInfo, mix, { onProgress: progress('weights') });
    return { modelInfo, mixInfo, fileSize: source.size, downloaded: { ...source.stats } };
  },

  async setMix({ id, mix }) {
    loaded();
    const onProgress = (p) => self.postMessage({ id, event: 'progress', phase: 'weights', ...p });
    const mixInfo = await loadMix(mod, source, modelInfo, mix, { onProgress });
    return { mixInfo, downloaded: { ...source.stats } };
  },

  async generate({ id, prompt, options }) {
    loaded();
    const backend = mod.reset(options);
    const promptTokens = mod.prompt(prompt);
    self.postMessage({ id, event: 'started', backend, promptTokens });
    const start = performance.now();
    let tokens = 0;
    let pending = 0;
    let reason = 'length';
    while (tokens < options.max_tokens) {
      // Let a 'cancel' message in between steps.
      await nextTask();
      if (cancelled.delete(id)) {
        reason = 'cancelled';
        break;
      }
      const status = mod.step();
      if (status === PENDING) {
        // The GPU backend completes its readbacks here before stepping again.
        if (++pending >= MAX_PENDING) {
          throw new MatEdgeError(`matedge: step still pending after ${MAX_PENDING} calls with nothing to wait for`, { code: 'ERR_PENDING' });
        }
        continue;
      }
      pending = 0;
      if (status === DONE) {
        reason = 'context';
        break;
      }
      const piece = mod.output();
      self.postMessage({ id, event: 'token', token: status, piece }, [piece.buffer]);
      tokens++;
    }
    cancelled.delete(id);
    return { reason, tokens, seconds: (performance.now() - start) / 1000 };
  },
};

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
