// gpu.mjs: the GPU backend's matrix kernels in headless Chromium's WebGPU
// (SwiftShader on a machine without a GPU, with the flags the browser tests
// use to get an adapter), at onnxruntime-web's MatMul shapes, beside that
// peer's WebGPU EP at the same shapes. Run after ./build.sh (the page comes
// from matedge serve):
//
//   node web/bench/gpu.mjs [--peer results.json] [--json] [--min-ms 1000]
//
// The programs, uniforms and grids come from `go run ./host/bench/gpukernels`:
// the WGSL the module compiles and the dispatches its gpu backend records
// (matvec4 and matvec_t for decode, matmul for prefill), not a copy of them.
// Each case is timed two ways, by performance.now in the page, median of at
// least 10 runs and --min-ms:
//   run       write x, dispatch, copy the output out and map it: what the
//             peer's session.run with CPU-located outputs does;
//   dispatch  one dispatch submitted and awaited (onSubmittedWorkDone).
// --peer reads the results.json of onnxruntime-web's MatMul harness; its
// webgpu-jsep and webgpu-native medians are printed beside ours, and
// ×peer is the peer's median over our run median.

import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { missingBuild, startServer } from '../harness/server.mjs';
import { readPeer } from './peer.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.find((a, i) => args[i - 1] === name);
const peerPath = flag('--peer');
const minMs = Number(flag('--min-ms') ?? 1000);
const asJSON = args.includes('--json');

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const missing = missingBuild() ?? (await missingBrowser());
if (missing) {
  console.error(`gpu.mjs ${missing}`);
  process.exit(1);
}
let cases;
try {
  cases = JSON.parse(execFileSync('go', ['run', './host/bench/gpukernels'], { cwd: repo, encoding: 'utf8', maxBuffer: 64 << 20 }));
} catch (err) {
  console.error(`gpu.mjs: go run ./host/bench/gpukernels: ${err.message.split('\n')[0]}`);
  process.exit(1);
}
const peer = peerPath ? readPeer(peerPath) : [];
// WebGPU needs a secure context: a page from the local server, not about:blank.
const [server, browser] = await Promise.all([startServer(), launch({ timeoutMs: 600_000 })]);
try {
  const page = await browser.context.newPage();
  await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
  await page.goto(`${server.url}blank.html`);
  const result = await page.evaluate(measure, { cases, minMs });
  if (result.error) throw new Error(result.error);
  for (const r of result.cases) {
    const [m, k, n] = r.mkn;
    const at = (config) => peer.find((p) => p.config === config && p.M === m && p.K === k && p.N === n);
    r.peer = { jsep: at('webgpu-jsep')?.medianMs ?? 0, native: at('webgpu-native')?.medianMs ?? 0 };
  }
  if (asJSON) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    const a = result.adapter;
    console.log(`Chromium ${result.userAgent.match(/Chrome\/(\S+)/)?.[1] ?? ''}, adapter ${a.vendor} ${a.architecture}${a.isFallbackAdapter ? ' (fallback)' : ''}: the GPU backend's kernels, median ms`);
    console.table(result.cases.map((r) => {
      const best = Math.min(...[r.peer.jsep, r.peer.native].filter((x) => x > 0));
      return {
        kernel: r.name, 'M×K×N': r.mkn.join('×'), 'run ms': +r.runMs.toFixed(3), 'dispatch ms': +r.dispatchMs.toFixed(3),
        'GFLOP/s': +(r.flops / r.runMs / 1e6).toFixed(2), 'weights GB/s': r.mkn[0] === 1 ? +(4 * r.mkn[1] * r.mkn[2] / r.runMs / 1e6).toFixed(2) : '–',
        'peer jsep ms': r.peer.jsep ? +r.peer.jsep.toFixed(1) : '–', 'peer native ms': r.peer.native ? +r.peer.native.toFixed(1) : '–',
        '×peer': Number.isFinite(best) ? +(best / r.runMs).toFixed(1) : '–',
      };
    }));
  }
} finally {
  await browser.close();
  await server.stop();
}

// measure runs in the page.
async function measure({ cases, minMs }) {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) return { error: 'no WebGPU adapter (is --enable-unsafe-webgpu set?)' };
  const biggest = Math.max(...cases.flatMap((c) => c.buffers)) * 4;
  const device = await adapter.requestDevice({
    requiredLimits: { maxStorageBufferBindingSize: biggest, maxBufferSize: biggest },
  });
  const errors = [];
  device.addEventListener('uncapturederror', (e) => errors.push(e.error.message));
  const info = adapter.info ?? {};
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
  // Seeded values in [-1, 1): the times do not depend on them.
  const fill = (n, seed) => {
    const x = new Float32Array(n);
    let a = seed >>> 0;
    for (let i = 0; i < n; i++) {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      x[i] = ((t ^ (t >>> 14)) >>> 0) / 2147483648 - 1;
    }
    return x;
  };
  const timeLoop = async (once) => {
    for (let i = 0; i < 3; i++) await once(); // warm-up: compiles, first-touches the buffers
    const times = [];
    const began = performance.now();
    while (times.length < 10 || performance.now() - began < minMs) {
      const t0 = performance.now();
      await once();
      times.push(performance.now() - t0);
      if (times.length >= 2000) break;
    }
    return median(times);
  };
  const out = [];
  for (const c of cases) {
    const params = Uint8Array.from(atob(c.params), (ch) => ch.charCodeAt(0));
    const uniform = device.createBuffer({ size: params.length, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(uniform, 0, params);
    const buffers = c.buffers.map((n, i) => {
      const b = device.createBuffer({ size: 4 * n, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
      if (i < c.buffers.length - 1) device.queue.writeBuffer(b, 0, fill(n, i + 1));
      return b;
    });
    const module = device.createShaderModule({ code: c.source });
    const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: uniform } }, ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } }))],
    });
    const output = buffers[buffers.length - 1];
    const input = buffers[c.buffers.length - 2]; // x: the input after the weights
    const x = fill(c.buffers[c.buffers.length - 2], 99);
    const staging = device.createBuffer({ size: output.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const encode = (copyOut) => {
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(...c.groups);
      pass.end();
      if (copyOut) enc.copyBufferToBuffer(output, 0, staging, 0, output.size);
      return enc.finish();
    };
    const dispatchMs = await timeLoop(async () => {
      device.queue.submit([encode(false)]);
      await device.queue.onSubmittedWorkDone();
    });
    const runMs = await timeLoop(async () => {
      device.queue.writeBuffer(input, 0, x);
      device.queue.submit([encode(true)]);
      await staging.mapAsync(GPUMapMode.READ);
      new Float32Array(staging.getMappedRange()).slice();
      staging.unmap();
    });
    for (const b of [uniform, staging, ...buffers]) b.destroy();
    if (errors.length) return { error: `${c.key}: ${errors.join('; ')}` };
    out.push({ name: c.name, key: c.key, mkn: c.mkn, flops: c.flops, explains: c.explains, runMs, dispatchMs, groups: c.groups });
  }
  return {
    userAgent: navigator.userAgent,
    adapter: { vendor: info.vendor ?? '', architecture: info.architecture ?? '', isFallbackAdapter: adapter.isFallbackAdapter ?? info.isFallbackAdapter ?? false },
    cases: out,
  };
}
