// caps: what this device reports about itself, in the shape of Go's
// planner.Capabilities (wasm/planner/capabilities.go: camelCase, as the
// browser APIs name things), and the micro-benchmark that goes with it.
//
// The benchmark times decode steps of the smallest submodel (S) inside the
// module, on each backend the device has — the code a plan will run, not a
// stand-in — but on synthetic weights of the model's shape (the module's
// bench_start: a step costs the same whatever the weights hold), so that the
// plan exists before a byte of weights is fetched and the download is only
// what the plan needs. A result stands for a week per device and model shape
// (benchmarkKey), whether measured on synthetic weights or real ones.
//
// One submodel gives one point, so the fixed cost of a step (calls,
// dispatches, the readback) is folded into the rates: predictions for larger
// mixes err slow, which is the safe side.

import { DONE } from './abi.js';
import { adapterInfo } from './webgpu.js';

/** BENCHMARK_MS is the most time the micro-benchmark spends timing steps, all backends together. */
export const BENCHMARK_MS = 200;

/**
 * collectCapabilities reads navigator.* and the GPU host (webgpu.js) into a
 * planner.Capabilities document without benchmarks. A number the browser
 * does not report is 0 (unknown), as the planner expects.
 */
export async function collectCapabilities(gpu, nav = globalThis.navigator ?? {}) {
  let storageQuotaBytes = 0;
  try {
    const { quota = 0, usage = 0 } = (await nav.storage?.estimate?.()) ?? {};
    storageQuotaBytes = Math.max(0, Math.floor(quota - usage));
  } catch {
    // storage estimates are unavailable in some contexts: unknown
  }
  const connection = nav.connection;
  return {
    source: 'browser',
    adapter: gpu.device ? adapterInfo(gpu.adapter) : null,
    deviceMemoryBytes: nav.deviceMemory > 0 ? Math.round(nav.deviceMemory * 2 ** 30) : 0,
    logicalCores: nav.hardwareConcurrency > 0 ? nav.hardwareConcurrency : 0,
    storageQuotaBytes,
    network: {
      effectiveType: connection?.effectiveType ?? '',
      downlink: connection?.downlink > 0 ? connection.downlink : 0,
      saveData: Boolean(connection?.saveData),
    },
    benchmarks: [],
  };
}

/**
 * decodeWork is planner.DecodeWork (wasm/planner/cost.go): the weight and KV
 * cache bytes one decode step at position pos reads, and its FLOPs, for a mix
 * given as granularity indices.
 */
export function decodeWork(config, mix, pos) {
  const d = config.dim;
  let nonEmbedding = d; // the final norm
  for (const g of mix) nonEmbedding += 2 * d + 4 * d * d + 3 * config.ffn_widths[g] * d;
  const matrices = nonEmbedding + config.vocab * d; // the blocks, the final norm, the LM head
  const cache = 2 * config.layers * (pos + 1) * d; // [layers][keys, values][pos+1][dim]
  return { bytes: 4 * (matrices + d + cache), flops: 2 * matrices + 2 * cache };
}

/** BENCHMARK_TTL_MS is how long a stored benchmark stands for its device and model shape: a week. */
export const BENCHMARK_TTL_MS = 7 * 24 * 3600 * 1000;

/**
 * benchmarkKey names what a benchmark result stands for: the device (the
 * adapter, the cores, the browser) and the model's shape (not its weights:
 * the speed of S depends on its sizes only), and the backends measured.
 */
export function benchmarkKey(capabilities, config, backends, nav = globalThis.navigator ?? {}) {
  const a = capabilities.adapter;
  return JSON.stringify({
    adapter: a ? [a.vendor, a.architecture, a.description, a.isFallbackAdapter] : null,
    cores: capabilities.logicalCores,
    agent: nav.userAgent ?? '',
    shape: [config.vocab, config.dim, config.layers, config.heads, config.ffn_widths[0], config.context],
    ...(config.image ? { image: [config.image.size, config.image.patch, config.image.channels] } : {}),
    backends,
  });
}

/**
 * benchmark times decode steps of mixName (S) on synthetic weights of the
 * loaded model's shape (bench_start, bench_step: no weights are needed) on
 * each backend in `backends`, after one untimed warm-up step each, within
 * limitMs for all: each backend gets an equal share of what the ones before
 * it left. A step that would end past the share is not started, except the
 * first (one step is the least a measurement can be). Rates come from the
 * median step time, so a few steps slowed by other work on a busy machine do
 * not move them. It returns planner.Benchmark documents.
 */
export async function benchmark(mod, modelInfo, backends, { limitMs = BENCHMARK_MS, mixName = modelInfo.granularities[0], now = () => performance.now() } = {}) {
  const config = modelInfo.header.config;
  const g = modelInfo.granularities.indexOf(mixName);
  const mix = Array(config.layers).fill(g);
  const out = [];
  let spent = 0;
  try {
    for (const [i, backend] of backends.entries()) {
      try {
        mod.benchStart({ mix: mixName, backend });
      } catch (err) {
        if (err.code === 'ERR_BACKEND') continue; // e.g. the model does not fit this GPU: the planner assumes
        throw err;
      }
      let pos = 1; // the synthetic sequence's prompt is one token
      if ((await mod.benchNext()) === DONE) break; // the warm-up: compiles pipelines, uploads weights
      let bytes = 0;
      let flops = 0;
      let steps = 0;
      const times = []; // ms per step
      const began = now();
      const share = (limitMs - spent) / (backends.length - i);
      // Stop before a step that would end past this backend's share.
      while (pos < config.context - 1 && (steps === 0 || (now() - began) * (1 + 1 / steps) < share)) {
        const stepBegan = now();
        if ((await mod.benchNext()) === DONE) break;
        times.push(now() - stepBegan);
        const w = decodeWork(config, mix, pos);
        bytes += w.bytes;
        flops += w.flops;
        steps++;
        pos++;
      }
      const seconds = (now() - began) / 1000;
      spent += seconds * 1000;
      if (steps === 0) continue;
      const median = [...times].sort((x, y) => x - y)[Math.floor(times.length / 2)] / 1000 || seconds / steps;
      out.push({
        backend,
        method: `${steps} decode steps of ${mixName} on synthetic weights of this model's shape inside the wasm module, median step time (step overhead folded into the rates)`,
        gbps: bytes / steps / median / 1e9,
        gflops: flops / steps / median / 1e9,
        stepOverheadMicros: 0,
        durationMillis: seconds * 1000,
        tokensPerSecond: 1 / median,
      });
    }
  } finally {
    mod.benchEnd(); // the synthetic model's memory and GPU buffers
  }
  return out;
}

/**
 * imageWork is planner.ImageWork (wasm/planner/vision.go): the bytes one
 * image's pass through a MatViT reads (every weight of the mix once, and
 * the keys and values of all T patches) and its FLOPs, for a mix given as
 * granularity indices.
 */
export function imageWork(config, mix) {
  const d = config.dim;
  const t = config.context; // patches
  const im = config.image;
  const patch = im.patch * im.patch * im.channels * d;
  let blocks = d; // NonEmbeddingParams: the final norm and the blocks
  for (const g of mix) blocks += 2 * d + 4 * d * d + 3 * config.ffn_widths[g] * d;
  const keys = 2 * config.layers * t * d;
  return {
    bytes: 4 * (blocks + patch + t * d + config.vocab * d + keys),
    flops: 2 * t * (blocks + patch) + 2 * t * keys + 2 * config.vocab * d,
  };
}

/**
 * benchmarkImages is benchmark for a vision model: it times the
 * classification of a black image by mixName (S) on synthetic weights of the
 * model's shape (bench_step) on each backend, after one untimed warm-up each,
 * within limitMs for all, and returns planner.Benchmark documents whose rates
 * come from imageWork and the median time per image (imagesPerSecond is this
 * runtime's addition, as tokensPerSecond is for text).
 */
export async function benchmarkImages(mod, modelInfo, backends, { limitMs = BENCHMARK_MS, mixName = modelInfo.granularities[0], now = () => performance.now() } = {}) {
  const config = modelInfo.header.config;
  const g = modelInfo.granularities.indexOf(mixName);
  const work = imageWork(config, Array(config.layers).fill(g));
  const out = [];
  let spent = 0;
  try {
    for (const [i, backend] of backends.entries()) {
      try {
        mod.benchStart({ mix: mixName, backend });
        await mod.benchNext(); // the warm-up: compiles pipelines, uploads weights
      } catch (err) {
        if (err.code === 'ERR_BACKEND') continue; // e.g. no GPU path for this model: the planner assumes
        throw err;
      }
      const times = []; // ms per image
      const began = now();
      const share = (limitMs - spent) / (backends.length - i);
      while (times.length === 0 || (now() - began) * (1 + 1 / times.length) < share) {
        const t0 = now();
        await mod.benchNext();
        times.push(now() - t0);
      }
      const seconds = (now() - began) / 1000;
      spent += seconds * 1000;
      const median = [...times].sort((x, y) => x - y)[Math.floor(times.length / 2)] / 1000 || seconds / times.length;
      out.push({
        backend,
        method: `${times.length} images classified by ${mixName} on synthetic weights of this model's shape inside the wasm module, median time per image`,
        gbps: work.bytes / median / 1e9,
        gflops: work.flops / median / 1e9,
        stepOverheadMicros: 0,
        durationMillis: seconds * 1000,
        imagesPerSecond: 1 / median,
      });
    }
  } finally {
    mod.benchEnd();
  }
  return out;
}
