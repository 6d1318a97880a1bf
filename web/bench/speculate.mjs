// speculate.mjs: self-speculative decoding in headless Chromium — the
// Chromium rows of weights/SPECULATIVE.md. On the default model (verifier
// XL), greedy, it runs the verifier alone and S, M and L drafting k = 2, 4
// and auto (0: chosen round by round) tokens with the one shared cache, on
// the module's CPU backend with kernels.wasm linked, and (unless --no-gpu)
// on the GPU backend on the browser's WebGPU adapter (SwiftShader in headless
// Chromium). Every speculative run must give the verifier's tokens. Run after
// ./build.sh:
//
//   node web/bench/speculate.mjs [OUT] [--tokens N] [--repeats N] [--gpu-tokens N] [--gpu-repeats N] [--no-gpu]
//
// It writes OUT.json and OUT.md (default web/test-results/speculate: never a
// committed file unless asked). Times are wall time (performance.now) in the
// page from reset to the last token, the prompt's pass included; each
// configuration is timed interleaved with the verifier alone, prompt by
// prompt, the fastest of --repeats runs of each counted, and its speed-up is
// the ratio within that stretch. `matedge speculate` is the same natively and
// under wazero.

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { missingBuild, startServer } from '../harness/server.mjs';

const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');

/** PROMPTS are the fixed prompts: openings of four of Austen's novels (training text of the default model). */
export const PROMPTS = [
  'It is a truth universally acknowledged, that a single man in possession of a good fortune',
  'Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition,',
  'Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who, for his own amusement,',
  'The family of Dashwood had long been settled in Sussex. Their estate was large, and their',
];

/** CONFIGS are the speculative configurations: each draft with k 2, 4 and auto (0). */
export const CONFIGS = ['S', 'M', 'L'].flatMap((draft) => [2, 4, 0].map((k) => ({ draft, k })));

/**
 * runSpeculation runs in the page (served by matedge serve): it loads the
 * default model's XL into a fresh module (kernels.wasm linked when kernels
 * is 'simd') and, for each config, each prompt and each repeat, generates
 * `tokens` greedy tokens with the verifier alone and then with the config.
 * It returns, per config and prompt, the tokens of both, the fastest time of
 * each (with timing false: no times) and the module's speculation counts.
 */
export async function runSpeculation({ model = '/models/default.matw', backend = 'cpu', kernels = 'simd', prompts, tokens, repeats = 1, configs, timing = true }) {
  const { DONE, ModuleInstance } = await import('/abi.js');
  const { fetchKernels } = await import('/kernels.js');
  const { ModelFile } = await import('/loader.js');
  const { noGPU, requestGPU } = await import('/webgpu.js');
  const compiled = await WebAssembly.compileStreaming(fetch('/matedge.wasm'));
  const simd = kernels === 'simd' ? await fetchKernels('/kernels.wasm') : null;
  if (kernels === 'simd' && !(simd instanceof WebAssembly.Module)) throw new Error('kernels.wasm did not compile: this browser has no SIMD128');
  const gpu = backend === 'gpu' ? await requestGPU() : noGPU('the CPU rows');
  if (backend === 'gpu' && !gpu.info) throw new Error(`no GPU: ${gpu.reason}`);
  const mod = await ModuleInstance.instantiate(compiled, { gpu, kernels: simd });
  const file = new ModelFile(model);
  const info = await file.loadHeader(mod);
  await file.loadMix(mod, 'XL');
  mod.setMix('XL');

  const run = async (prompt, { draft = '', k = 0 }) => {
    const start = performance.now();
    const ran = mod.reset({ seed: 1, temperature: 0, top_k: 0, top_p: 1, backend, draft, draft_tokens: k });
    mod.prompt(prompt);
    const ids = [];
    while (ids.length < tokens) {
      const t = await mod.next();
      if (t === DONE) break;
      ids.push(t);
    }
    const ms = performance.now() - start;
    if (ran !== backend) throw new Error(`asked for the ${backend} backend, the module ran ${ran}`);
    return { ids, ms, speculation: draft ? mod.speculation() : null };
  };

  const results = [];
  for (const config of configs) {
    // One untimed run of each first: the first call of a path, and k auto's one-off cost measurement.
    if (timing) {
      await run(prompts[0], {});
      await run(prompts[0], config);
    }
    for (const prompt of prompts) {
      let verifier = null;
      let speculative = null;
      for (let r = 0; r < repeats; r++) {
        const v = await run(prompt, {});
        const s = await run(prompt, config);
        if (!verifier || v.ms < verifier.ms) verifier = v;
        if (!speculative || s.ms < speculative.ms) speculative = s;
      }
      results.push({
        config, prompt,
        verifier: { tokens: verifier.ids, ms: timing ? verifier.ms : null },
        speculative: { tokens: speculative.ids, ms: timing ? speculative.ms : null, speculation: speculative.speculation },
      });
    }
  }
  return {
    userAgent: navigator.userAgent,
    gpu: gpu.info ? gpu.info.name || gpu.info.vendor || 'unnamed adapter' : null,
    kernels: mod.kernels.name,
    config: info.header.config,
    results,
  };
}

/**
 * summarize turns runSpeculation's results into one row per config, and one
 * for the verifier alone: accepted share, tokens per verify step, tokens/s,
 * speed-up over the verifier in the same stretch, and whether every
 * prompt's tokens equal the verifier's.
 */
export function summarize(where, measured) {
  const byConfig = new Map();
  for (const r of measured.results) {
    const key = `${r.config.draft}/${r.config.k}`;
    if (!byConfig.has(key)) byConfig.set(key, []);
    byConfig.get(key).push(r);
  }
  const rows = [];
  let verifierTokens = 0;
  let verifierMs = 0;
  for (const runs of byConfig.values()) {
    const sum = (f) => runs.reduce((n, r) => n + f(r), 0);
    const tokens = sum((r) => r.speculative.tokens.length);
    const baseTokens = sum((r) => r.verifier.tokens.length);
    const ms = sum((r) => r.speculative.ms);
    const baseMs = sum((r) => r.verifier.ms);
    verifierTokens += baseTokens;
    verifierMs += baseMs;
    const proposed = sum((r) => r.speculative.speculation.proposed);
    const accepted = sum((r) => r.speculative.speculation.accepted);
    const rounds = sum((r) => r.speculative.speculation.rounds);
    const { draft, k } = runs[0].config;
    rows.push({
      where, draft, k: k || 'auto', cache: 'shared', temperature: 0,
      accepted: proposed ? accepted / proposed : null,
      tokensPerVerify: rounds ? (accepted + rounds) / rounds : null,
      tokensPerSecond: (1000 * tokens) / ms,
      verifierTokensPerSecond: (1000 * baseTokens) / baseMs,
      speedup: (tokens / ms) / (baseTokens / baseMs),
      greedyEqual: runs.every((r) => r.speculative.tokens.join() === r.verifier.tokens.join()),
    });
  }
  rows.unshift({
    where, draft: 'none', k: '–', cache: '–', temperature: 0, accepted: null, tokensPerVerify: 1,
    tokensPerSecond: (1000 * verifierTokens) / verifierMs, verifierTokensPerSecond: (1000 * verifierTokens) / verifierMs, speedup: 1, greedyEqual: null,
  });
  return rows;
}

/** markdown renders the rows as SPECULATIVE.md's table does, with a line on what was measured. */
export function markdown(report) {
  const pct = (x) => (x === null ? '–' : `${(100 * x).toFixed(1)}%`);
  const lines = [
    `Chromium ${report.chromium} (headless), the default model (${report.model}), verifier XL, greedy; ${report.prompts} prompts (openings of four Austen novels, which the default model was trained on), ${report.tokens} new tokens each on the CPU (${report.gpuTokens} on the GPU); the module's CPU backend with kernels.wasm (SIMD128) linked${report.gpu ? `, and its GPU backend on ${report.gpu}` : ''}. Times are wall time in the page from reset to the last token, the prompt's pass included; each configuration is timed interleaved with the verifier alone, prompt by prompt, the fastest of ${report.repeats} runs of each (${report.gpuRepeats} on the GPU) counted; the speed-up is the ratio within that stretch, and the verifier's row is over all stretches.`,
    '',
    '| where | draft | k | cache | temperature | accepted | tokens per verify | tokens/s | verifier tokens/s | speed-up | greedy = verifier |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...report.rows.map((r) => `| ${r.where} | ${r.draft} | ${r.k} | ${r.cache} | ${r.temperature} | ${pct(r.accepted)} | ${r.tokensPerVerify === null ? '–' : r.tokensPerVerify.toFixed(2)} | ${r.tokensPerSecond.toFixed(0)} | ${r.verifierTokensPerSecond.toFixed(0)} | ${r.speedup.toFixed(2)}× | ${r.greedyEqual === null ? '–' : r.greedyEqual ? 'yes' : 'NO'} |`),
  ];
  if (report.gpuError) lines.push('', `GPU backend: not measured (${report.gpuError}).`);
  return `${lines.join('\n')}\n`;
}

// blankPage opens a blank document on the server's origin (the demo page would start its own download).
async function blankPage(browser, server) {
  const page = await browser.context.newPage();
  await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
  await page.goto(`${server.url}blank.html`);
  return page;
}

async function main(argv) {
  const numbers = { '--tokens': 64, '--repeats': 3, '--gpu-tokens': 32, '--gpu-repeats': 1 };
  let withGPU = true;
  let out = join(WEB, 'test-results', 'speculate');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a in numbers) {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${a} ${argv[i]}: want an integer ≥ 1`);
      numbers[a] = v;
    } else if (a === '--no-gpu') {
      withGPU = false;
    } else if (a.startsWith('-')) {
      throw new Error(`unknown flag ${a} (want OUT, --tokens, --repeats, --gpu-tokens, --gpu-repeats, --no-gpu)`);
    } else {
      out = resolve(a);
    }
  }
  const { '--tokens': tokens, '--repeats': repeats, '--gpu-tokens': gpuTokens, '--gpu-repeats': gpuRepeats } = numbers;

  const missing = missingBuild() ?? (await missingBrowser());
  if (missing) throw new Error(missing);
  const [server, browser] = await Promise.all([startServer(), launch({ timeoutMs: 600_000 })]);
  const report = { command: `node web/bench/speculate.mjs ${argv.join(' ')}`.trim(), tokens, repeats, gpuTokens, gpuRepeats, prompts: PROMPTS.length, rows: [], runs: {} };
  try {
    const page = await blankPage(browser, server);
    console.error(`speculate: CPU backend, ${CONFIGS.length} configs × ${PROMPTS.length} prompts × ${repeats} repeats`);
    const cpu = await page.evaluate(runSpeculation, { backend: 'cpu', kernels: 'simd', prompts: PROMPTS, tokens, repeats, configs: CONFIGS });
    report.chromium = cpu.userAgent.match(/Chrome\/(\S+)/)?.[1] ?? cpu.userAgent;
    const c = cpu.config;
    report.model = `${c.layers} layers of width ${c.dim}, FFN widths ${c.ffn_widths.join('/')}, vocabulary ${c.vocab}`;
    report.runs.cpu = cpu;
    report.rows.push(...summarize('Chromium CPU (simd)', cpu));
    if (withGPU) {
      console.error(`speculate: GPU backend, ${CONFIGS.length} configs × ${PROMPTS.length} prompts × ${gpuRepeats} repeats`);
      try {
        const gpu = await page.evaluate(runSpeculation, { backend: 'gpu', kernels: 'simd', prompts: PROMPTS, tokens: gpuTokens, repeats: gpuRepeats, configs: CONFIGS });
        report.gpu = gpu.gpu;
        report.runs.gpu = gpu;
        report.rows.push(...summarize(`Chromium GPU (${gpu.gpu})`, gpu));
      } catch (err) {
        report.gpuError = String(err.message ?? err).split('\n')[0];
      }
    }
  } finally {
    await browser.close();
    await server.stop();
  }
  await mkdir(dirname(out), { recursive: true });
  await writeFile(`${out}.json`, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(`${out}.md`, markdown(report));
  console.log(markdown(report));
  console.error(`speculate: wrote ${out}.json and ${out}.md`);
  if (report.rows.some((r) => r.greedyEqual === false)) throw new Error('a speculative run did not give the verifier\'s greedy tokens');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`speculate.mjs: ${err.message}`);
    process.exit(1);
  });
}
