// cpu.mjs: the module's CPU path in headless Chromium, with kernels.wasm
// linked (simd) and without it (go), side by side: its products at the
// default model's and onnxruntime-web's MatMul shapes (bench_kernel), and
// prefill and decode tokens/s of the default model. Run after ./build.sh:
//
//   node web/bench/cpu.mjs [--peer results.json] [--json]
//
// --peer reads the results.json of onnxruntime-web's MatMul harness and
// prints its GFLOP/s beside ours at the same shapes. Times are wall time
// (performance.now) in the page; each figure is the best of three rounds,
// the two kernel sets alternating. `matedge bench` is the same under wazero.


import { launch, missingBrowser } from '../harness/browser.mjs';
import { missingBuild, startServer } from '../harness/server.mjs';
import { readPeer } from './peer.mjs';

const args = process.argv.slice(2);
const peerPath = args.find((a, i) => args[i - 1] === '--peer');
const asJSON = args.includes('--json');

// SHAPES are bench_kernel's (kernel, rows, cols, tokens): kernel 0 matvec,
// 1 matvec_t (W [rows][cols] used transposed), 2 matmul.
const SHAPES = [
  [0, 128, 128, 1], [0, 768, 128, 1], [0, 2048, 128, 1], [1, 768, 128, 1],
  [0, 4096, 1024, 1], [1, 1024, 4096, 1], [0, 1024, 4096, 1], [1, 4096, 1024, 1],
  [2, 512, 512, 512], [2, 1024, 1024, 1024],
];
const NAMES = ['matvec', 'matvec_t', 'matmul'];
// peerShape is the shape in the peer's M×K×N (C [M][N] = A [M][K]·B [K][N]).
const peerShape = ([kernel, rows, cols, tokens]) => (kernel === 1 ? [1, rows, cols] : [tokens, cols, rows]);

const missing = missingBuild() ?? (await missingBrowser());
if (missing) {
  console.error(`cpu.mjs ${missing}`);
  process.exit(1);
}
const peer = peerPath ? readPeer(peerPath) : [];
const [server, browser] = await Promise.all([startServer(), launch({ webgpu: false })]);
try {
  const page = await browser.context.newPage();
  await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
  await page.goto(`${server.url}blank.html`);
  const result = await page.evaluate(measure, { shapes: SHAPES });
  for (const k of result.kernels) {
    const [m, kk, n] = peerShape(k.shape);
    const p = peer.find((r) => r.M === m && r.K === kk && r.N === n && r.config === 'wasm-t1') ?? peer.find((r) => r.M === m && r.K === kk && r.N === n);
    Object.assign(k, { kernel: NAMES[k.shape[0]], mkn: `${m}×${kk}×${n}`, peer: p?.gflops ?? 0, peerConfig: p?.config ?? '' });
  }
  if (asJSON) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    console.log(`Chromium ${result.userAgent.match(/Chrome\/(\S+)/)?.[1] ?? ''}: the module's CPU products (bench_kernel), GFLOP/s, kernels.wasm linked (simd) and not (go)`);
    console.table(result.kernels.map((k) => ({
      kernel: k.kernel, 'M×K×N': k.mkn, simd: +k.simd.toFixed(2), go: +k.go.toFixed(2), 'simd/go': +(k.simd / k.go).toFixed(1),
      peer: k.peer ? `${k.peer.toFixed(2)} (${k.peerConfig})` : '–', 'simd/peer': k.peer ? +(k.simd / k.peer).toFixed(2) : '–',
    })));
    console.log('default model on the CPU backend, tokens/s');
    console.table(result.models.map((r) => ({ mix: r.mix, kernels: r.kernels, prefill: Math.round(r.prefill), decode: Math.round(r.decode) })));
  }
} finally {
  await browser.close();
  await server.stop();
}

// measure runs in the page.
async function measure({ shapes }) {
  const { ModuleInstance, DONE } = await import('/abi.js');
  const { fetchKernels } = await import('/kernels.js');
  const { ModelFile } = await import('/loader.js');
  const compiled = await WebAssembly.compileStreaming(fetch('/matedge.wasm'));
  const simd = await fetchKernels('/kernels.wasm');
  const mods = {
    simd: await ModuleInstance.instantiate(compiled, { kernels: simd }),
    go: await ModuleInstance.instantiate(compiled, { kernels: null }),
  };
  const time = (mod, [kernel, rows, cols, tokens]) => {
    const run = (reps) => {
      const start = performance.now();
      if (mod.exports.bench_kernel(kernel, rows, cols, tokens, reps) !== 0) throw new Error(`bench_kernel ${kernel} ${rows}×${cols}×${tokens} failed`);
      return performance.now() - start;
    };
    run(1);
    let reps = 1;
    for (;;) {
      const ms = run(reps);
      if (ms > 100 || reps >= 1 << 20) return ms / reps;
      reps = Math.max(2 * reps, Math.ceil(reps * 120 / Math.max(ms, 0.01)));
    }
  };
  const kernels = [];
  for (const shape of shapes) {
    const best = { simd: Infinity, go: Infinity };
    for (let round = 0; round < 3; round++) {
      for (const set of ['simd', 'go']) best[set] = Math.min(best[set], time(mods[set], shape));
    }
    const flops = 2 * shape[1] * shape[2] * shape[3];
    kernels.push({ shape, simd: flops / best.simd / 1e6, go: flops / best.go / 1e6 });
  }

  // Prefill (a 128-byte prompt) and 64 decode steps of S and XL.
  const text = 'My Design in this Book is not to explain the Properties of Light by Hypotheses, but to propose and prove them by Reason and Experiments: ';
  const models = [];
  for (const set of ['simd', 'go']) {
    const file = new ModelFile('/models/default.matw');
    await file.loadHeader(mods[set]);
    await file.loadMix(mods[set], 'XL');
  }
  for (const mix of ['S', 'XL']) {
    const best = {};
    for (let round = 0; round < 3; round++) {
      for (const set of ['simd', 'go']) {
        const mod = mods[set];
        mod.setMix(mix);
        mod.reset({ seed: 1, temperature: 0, top_k: 0, top_p: 1, backend: 'cpu' });
        const prompt = mod.prompt(text.slice(0, 128));
        const t0 = performance.now();
        mod.step();
        const t1 = performance.now();
        for (let i = 0; i < 64; i++) if (mod.step() === DONE) throw new Error('context full');
        const t2 = performance.now();
        const r = { prefill: prompt.length / ((t1 - t0) / 1e3), decode: 64 / ((t2 - t1) / 1e3) };
        best[set] = { prefill: Math.max(best[set]?.prefill ?? 0, r.prefill), decode: Math.max(best[set]?.decode ?? 0, r.decode) };
      }
    }
    for (const set of ['simd', 'go']) models.push({ mix, kernels: set, ...best[set] });
  }
  return { userAgent: navigator.userAgent, kernels, models };
}
