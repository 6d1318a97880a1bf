// The runtime and the demo in headless Chromium (Debian's, through
// playwright-core), against `matedge serve` and against nginx: the page
// plans for the device it finds, downloads only the planned bytes and keeps
// them in the Cache API, and its greedy tokens — on WebGPU (SwiftShader) and,
// without WebGPU, on the CPU — equal `matedge generate`'s. Switching width
// fetches only the delta, a reload fetches nothing, a corrupted cached block
// is refetched, a cut download resumes, a lost GPU is survived, and the demo
// streams text (screenshots in test-results/).

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { startFileServer } from '../harness/fileserver.mjs';
import { wrongABIModule } from '../harness/fixtures.mjs';
import { missingNginx, startNginx } from '../harness/nginx.mjs';
import { generate, missingBuild, startServer } from '../harness/server.mjs';
import { rangeBytes, subtract } from '../src/loader.js';

const CI = process.env.CI === 'true';
const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(WEB, 'test-results');
const MODEL_FILE = join(WEB, '..', 'weights', 'defaultmodel', 'default.matw');
const MODEL = '/models/default.matw';
const PROMPT = 'It is a truth';
const N = 16;

const missing = missingBuild() ?? (await missingBrowser());
const sum = rangeBytes;

// session drives matedge.js in a blank page on a server's origin. `log()`
// returns the server's request log for the model.
async function session(browser, server, log) {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  // A blank document on the server's origin: the demo page would start its own download.
  await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
  const open = () => page.goto(`${server.url}blank.html`);
  await open();
  const s = {
    page,
    errors,
    reload: open,
    clearCache: () => page.evaluate(async () => (await import('/matedge.js')).MatEdge.clearCache()),
    load: (opts = {}) => page.evaluate(async (o) => {
      const { MatEdge } = await import('/matedge.js');
      window.lm?.close();
      window.lm = await MatEdge.load(o);
      const { info, mix, fileSize, downloaded, gpu, gpuReason, capabilities, plan } = window.lm;
      return { info, mix, fileSize, downloaded, gpu, gpuReason, capabilities, plan };
    }, { model: MODEL, ...opts }),
    setMix: (mix) => page.evaluate(async (spec) => {
      await window.lm.setMix(spec);
      return { mix: window.lm.mix, downloaded: window.lm.downloaded };
    }, mix),
    run: (options = {}) => page.evaluate(async ({ prompt, options }) => {
      const gen = window.lm.generate(prompt, options);
      // Generation.speculation after each token event, with the tokens so far.
      const speculation = [];
      const event = gen.event.bind(gen);
      gen.event = (e) => {
        event(e);
        if (e.event === 'token' && gen.speculation) speculation.push({ tokens: gen.tokens.length, ...gen.speculation });
      };
      let text = '';
      for await (const piece of gen) text += piece;
      return { text, tokens: gen.tokens, widths: gen.widths, speculation, promptTokens: gen.promptTokens, backend: gen.backend, reason: gen.reason, deviceLost: gen.deviceLost };
    }, { prompt: PROMPT, options: { maxTokens: N, temperature: 0, seed: 1, ...options } }),
    // modelRequests returns the model requests logged since mark, waiting
    // (up to 5 s) until there are at least count of them.
    async modelRequests(mark, count = 0) {
      const deadline = Date.now() + 5_000;
      for (;;) {
        const got = (await log()).slice(mark).filter((r) => r.path === MODEL);
        if (got.length >= count || Date.now() > deadline) return got;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    mark: async () => (await log()).length,
  };
  return s;
}

const bytesOf = (requests) => requests.reduce((n, r) => n + r.bytes, 0);

// checkSpeculation checks a run's Generation.speculation after each token
// against wasm/ABI.md's identity (as host's TestSpeculationCounts does): each
// round emits its accepted proposals and one token of the mix, so the token
// that starts a round comes right after the earlier rounds' accepted + rounds.
function checkSpeculation(run, draft, k) {
  assert.equal(run.speculation.length, run.tokens.length, 'a SpeculationInfo with every token');
  let prev = { proposed: 0, accepted: 0, rounds: 0, k: 0 };
  for (const info of run.speculation) {
    assert.deepEqual(info.draft, draft);
    if (info.rounds === prev.rounds + 1) {
      assert.equal(prev.accepted + prev.rounds, info.tokens - 1, `token ${info.tokens} started a round: ${JSON.stringify([prev, info])}`);
      const proposed = info.proposed - prev.proposed;
      const accepted = info.accepted - prev.accepted;
      assert.ok(proposed === info.k && accepted >= 0 && accepted <= proposed && (!k || info.k === k), JSON.stringify([prev, info]));
    } else {
      assert.equal(info.rounds, prev.rounds, `one round at most per token: ${JSON.stringify([prev, info])}`);
      assert.deepEqual([info.proposed, info.accepted, info.k], [prev.proposed, prev.accepted, prev.k]);
    }
    assert.ok(info.tokens <= info.accepted + info.rounds, JSON.stringify(info));
    prev = info;
  }
  assert.ok(prev.rounds > 0);
}

// core is what must hold whichever server serves dist/: planning and
// downloading only the plan, greedy tokens on WebGPU, a live switch that
// fetches only the delta, and a reload that fetches nothing.
function core(get) {
  it('plans for this device, downloads only the planned bytes, and gives matedge generate\'s greedy tokens', async () => {
    const s = get().s;
    await s.clearCache();
    const mark = await s.mark();
    const loaded = await s.load({ budget: 'balanced' });
    const { capabilities, plan } = loaded;
    assert.equal(capabilities.source, 'browser');
    assert.equal(capabilities.adapter?.isFallbackAdapter, true, `SwiftShader's adapter: ${JSON.stringify(capabilities.adapter)}`);
    assert.ok(capabilities.logicalCores > 0);
    assert.deepEqual(capabilities.benchmarks.map((b) => b.backend).sort(), ['cpu', 'gpu']);
    for (const b of capabilities.benchmarks) assert.ok(b.gbps > 0 && b.gflops > 0 && b.durationMillis > 0, JSON.stringify(b));
    assert.ok(plan.spec && plan.reasons.length > 0, JSON.stringify(plan));
    assert.equal(plan.error, '');
    assert.deepEqual(loaded.mix.mix, plan.mix_names);

    const requests = await s.modelRequests(mark, loaded.downloaded.requests);
    assert.ok(requests.every((r) => r.status === 206), `every model request is a 206: ${JSON.stringify(requests)}`);
    const dataStart = loaded.info.data_start;
    const data = requests.filter((r) => Number(/^bytes=(\d+)/.exec(r.range)[1]) >= dataStart);
    assert.equal(bytesOf(data), plan.download_bytes, 'weights bytes fetched = the plan\'s');
    const header = requests.filter((r) => !data.includes(r)).map((r) => r.range);
    assert.equal(header.length, 2, `the rest is the preamble and the header: ${header}`);
    assert.equal(header[0], 'bytes=0-11');
    assert.ok(Number(/^bytes=0-(\d+)$/.exec(header[1])[1]) < dataStart, `the header ends before the data: ${header[1]}`);
    for (const r of data) {
      const [, first, last] = /^bytes=(\d+)-(\d+)$/.exec(r.range).map(Number);
      assert.ok(plan.ranges.some((p) => p.offset <= first && last < p.offset + p.length), `request ${r.range} is outside the plan's ranges`);
    }
    const [got, want] = await Promise.all([s.run(), generate({ prompt: PROMPT, n: N, mix: plan.spec })]);
    assert.equal(got.backend, plan.backend);
    assert.deepEqual(got.promptTokens, want.prompt_tokens);
    assert.deepEqual(got.tokens, want.tokens);
  }, { timeout: 60_000 });

  it('S → XL on WebGPU fetches only the rows XL adds and gives XL\'s tokens; S,M,L,XL and back to S fetch nothing', async () => {
    const s = get().s;
    await s.clearCache();
    const loaded = await s.load({ mix: 'S' });
    const [sTokens, sWant] = await Promise.all([s.run({ backend: 'gpu' }), generate({ prompt: PROMPT, n: N, mix: 'S' })]);
    assert.equal(sTokens.backend, 'gpu');
    assert.deepEqual(sTokens.tokens, sWant.tokens);

    const mark = await s.mark();
    const [switched, want] = await Promise.all([s.setMix('XL'), generate({ prompt: PROMPT, n: N, mix: 'XL' })]);
    const delta = sum(loaded.info.ranges.at(-1)) - sum(loaded.info.ranges[0]);
    const requests = await s.modelRequests(mark, switched.downloaded.requests - loaded.downloaded.requests);
    assert.equal(bytesOf(requests), delta, 'the server sent the delta');
    assert.equal(switched.downloaded.bytes - loaded.downloaded.bytes, delta);
    const xl = await s.run({ backend: 'gpu' });
    assert.deepEqual(xl.tokens, want.tokens);
    assert.notDeepEqual(xl.tokens, sTokens.tokens, 'XL says something else than S');

    for (const mix of ['S,M,L,XL', 'S']) {
      const mark = await s.mark();
      const [again, want] = await Promise.all([s.setMix(mix), generate({ prompt: PROMPT, n: N, mix })]);
      assert.deepEqual(again.downloaded, switched.downloaded, `switching to ${mix} fetches nothing`);
      assert.deepEqual(await s.modelRequests(mark), []);
      assert.deepEqual((await s.run({ backend: 'gpu' })).tokens, want.tokens, `tokens of ${mix}`);
    }
  }, { timeout: 90_000 });

  it('f16 weights on WebGPU give the Go host\'s f16 GPU tokens', async () => {
    const s = get().s;
    const mix = await s.page.evaluate(() => window.lm.mix.mix.join(','));
    const [got, want] = await Promise.all([s.run({ backend: 'gpu', precision: 'f16' }), generate({ prompt: PROMPT, n: N, mix, backend: 'gpu', precision: 'f16' })]);
    assert.equal(got.backend, 'gpu');
    assert.deepEqual(got.tokens, want.tokens);
    // The option reaches the module: one it does not know is refused there.
    await assert.rejects(s.run({ backend: 'gpu', precision: 'f8' }), /precision "f8"/);
  }, { timeout: 60_000 });

  it('speculative decoding with an S draft gives the same greedy tokens on the CPU', async () => {
    const s = get().s;
    const plain = await s.run({ backend: 'cpu' });
    const spec = await s.run({ draft: 'S', draftTokens: 3 });
    assert.equal(spec.backend, 'cpu');
    assert.deepEqual(spec.tokens, plain.tokens);
    const layers = await s.page.evaluate(() => window.lm.info.header.config.layers);
    checkSpeculation(spec, Array(layers).fill('S'), 3);
    assert.deepEqual(plain.speculation, [], 'no speculation without a draft');
    // The draft chosen by the module (one narrower than the mix, so XL here:
    // its bytes are already cached), k chosen round by round.
    const before = await s.page.evaluate(() => window.lm.mix.mix.join(','));
    await s.setMix('XL');
    try {
      const plainXL = await s.run({ backend: 'cpu' });
      const auto = await s.run({ draft: 'auto' });
      assert.equal(auto.backend, 'cpu');
      assert.deepEqual(auto.tokens, plainXL.tokens);
      assert.ok(auto.speculation[0]?.draft.length > 0, 'auto names the draft it chose');
      checkSpeculation(auto, auto.speculation[0].draft, 0);
    } finally {
      await s.setMix(before);
    }
  }, { timeout: 60_000 });

  it('routed decoding gives the CLI\'s tokens and per-token widths on the CPU and on WebGPU', async () => {
    const s = get().s;
    await s.setMix('XL');
    const want = await generate({ prompt: PROMPT, n: N, mix: 'XL', route: 0.6, backend: 'cpu' });
    assert.ok(new Set(want.widths.flat()).size > 1, `the routers picked one width only: ${JSON.stringify(want.widths)}`);
    for (const backend of ['cpu', 'gpu']) {
      const routed = await s.run({ route: 0.6, backend });
      assert.equal(routed.backend, backend);
      assert.deepEqual(routed.tokens, want.tokens, backend);
      assert.deepEqual(routed.widths, want.widths, backend);
    }
  }, { timeout: 60_000 });

  it('speculative decoding with an S draft gives the same greedy tokens on WebGPU', async () => {
    const s = get().s;
    const plain = await s.run({ backend: 'gpu' });
    const spec = await s.run({ backend: 'gpu', draft: 'S', draftTokens: 3 });
    assert.equal(spec.backend, 'gpu');
    assert.deepEqual(spec.tokens, plain.tokens);
    const layers = await s.page.evaluate(() => window.lm.info.header.config.layers);
    checkSpeculation(spec, Array(layers).fill('S'), 3);
  }, { timeout: 90_000 });

  it('speculative sampling with an S draft on WebGPU gives the CPU backend\'s and matedge generate\'s tokens for the same seed', async () => {
    const s = get().s;
    const mix = await s.page.evaluate(() => window.lm.mix.mix.join(','));
    // Draft tokens fixed (k auto would let each backend choose its own k from
    // its own timings, and so its own rounds); a draft draws from the whole
    // distribution, so top_k and top_p are off.
    const options = { draft: 'S', draftTokens: 2, temperature: 0.8, seed: 5, topK: 0, topP: 1 };
    const want = await generate({ prompt: PROMPT, n: N, mix, seed: 5, temperature: 0.8, topK: 0, topP: 1, backend: 'cpu', extra: ['-draft', 'S', '-k', '2'] });
    const gpu = await s.run({ backend: 'gpu', ...options });
    const cpu = await s.run({ backend: 'cpu', ...options });
    assert.equal(gpu.backend, 'gpu');
    assert.equal(cpu.backend, 'cpu');
    assert.deepEqual(cpu.tokens, want.tokens, 'the CPU backend in Chromium draws what the Go host draws');
    assert.deepEqual(gpu.tokens, cpu.tokens, 'WebGPU draws what the CPU backend draws');
    const layers = await s.page.evaluate(() => window.lm.info.header.config.layers);
    checkSpeculation(gpu, Array(layers).fill('S'), 2);
  }, { timeout: 90_000 });

  it('a reload uses the cache: zero model bytes over the network', async () => {
    const s = get().s;
    await s.reload();
    const mark = await s.mark();
    const [loaded, want] = await Promise.all([s.load({ mix: 'XL' }), generate({ prompt: PROMPT, n: N, mix: 'XL' })]);
    assert.deepEqual(await s.modelRequests(mark), [], 'no model request reached the server');
    assert.equal(loaded.downloaded.bytes, 0);
    const cached = loaded.downloaded.cachedBytes - sum(loaded.mix.needed);
    assert.ok(cached > 0 && cached <= loaded.info.data_start, `header (${cached} bytes) and XL came from the cache`);
    assert.deepEqual((await s.run({ backend: 'cpu' })).tokens, want.tokens);
  }, { timeout: 40_000 });

  it('plans from a stored benchmark, with cached bytes free, before fetching any weights', async () => {
    const s = get().s;
    // XL is cached (above): under a 1000-byte download limit only cached bytes fit.
    const budget = { name: 'cached only', maxDownloadBytes: 1000 };
    const before = Date.now();
    const measured = await s.load({ budget, remeasure: true });
    assert.ok(measured.capabilities.benchmarkMeasuredAt >= before, 'remeasure measures');
    await s.reload();
    const mark = await s.mark();
    const stored = await s.load({ budget });
    assert.equal(stored.capabilities.benchmarkMeasuredAt, measured.capabilities.benchmarkMeasuredAt, 'the stored benchmark was used');
    assert.deepEqual(await s.modelRequests(mark), [], 'no model request reached the server');
    assert.equal(stored.plan.error, '');
    assert.equal(stored.plan.spec, 'XL');
    assert.equal(stored.plan.fetch_bytes, 0);
    assert.equal(stored.plan.download_bytes, sum(stored.plan.ranges));
    assert.ok(stored.plan.reasons.some((r) => /is cached already/.test(r)), stored.plan.reasons.join(' '));
  }, { timeout: 60_000 });
}

// demo drives the demo page: it plans, shows the device and the plan,
// switches size live, streams text, and fits a phone.
async function demo(browser, server, log, { screenshots }) {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
  try {
    const settled = (states) => page.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout: 30_000 });
    const status = () => page.textContent('#status');
    await page.goto(server.url);
    await settled(['ready', 'error']);
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready', await status());
    assert.match(await page.textContent('#device'), /SwiftShader|swiftshader/i);
    assert.match(await page.textContent('#device'), /GB\/s/);
    assert.match(await page.textContent('#plan'), /tokens\/s/);
    assert.ok(await page.locator('#chart svg .current').count() === 1, 'the chart marks the current mix');
    assert.match(await page.textContent('#chart svg'), /bits per byte/);
    assert.match(await page.textContent('#model-card'), /Jane Austen's six novels: 4 layers of width 128/);
    assert.match(await page.textContent('#model-card'), /no end-of-text token/);
    assert.match(await page.textContent('#plan'), /the planner's choice/);

    await page.click('.sizes label:has(input[value="M"])');
    await settled(['ready', 'error']);
    assert.match(await status(), /^Ready: M — /);
    assert.match(await page.textContent('#plan'), /^M on the (CPU|GPU) — chosen by hand; the planner chose /, 'the plan card follows a manual switch');
    // An empty prompt is refused beside the button, in plain words; the next success clears it.
    await page.fill('#prompt', '  ');
    await page.click('#generate');
    assert.equal(await page.textContent('#prompt-error'), 'Type a prompt first: the model continues your text.');
    await page.fill('#prompt', 'It is a truth universally acknowledged');
    await page.click('summary:has-text("Sampling")');
    await page.fill('#max-tokens', '32');
    // Speculative decoding (greedy): the acceptance rate shown live, and no
    // speed-up yet, as M has not run without it.
    await page.fill('#temperature', '0');
    await page.check('#speculate');
    await page.click('#generate');
    await settled(['done', 'error']);
    assert.equal(await page.getAttribute('body', 'data-state'), 'done', await status());
    const speculated = await page.textContent('#out-text');
    assert.match(await page.textContent('#spec-stats'), /^acceptance (\d+ %|—) · k \d+ · [\d.]+ tokens\/s · \d+ of \d+ draft tokens kept in \d+ rounds · run once without it to compare on M$/);
    await page.uncheck('#speculate');
    await page.click('#generate');
    await settled(['done', 'error']);
    assert.equal(await page.getAttribute('body', 'data-state'), 'done', await status());
    assert.ok((await page.textContent('#out-text')).length > 0, 'some text was generated');
    assert.equal(await page.textContent('#out-text'), speculated, 'speculative decoding gives the greedy text');
    assert.match(await page.textContent('#stats'), /^32 tokens · [\d.]+ tokens\/s · (cpu|gpu) backend · mix M$/);
    assert.equal(await page.textContent('#prompt-error'), '', 'the error is cleared by a success');
    // Again with it: now the speed-up against that plain run.
    await page.check('#speculate');
    await page.click('#generate');
    await settled(['done', 'error']);
    assert.equal(await page.textContent('#out-text'), speculated);
    assert.match(await page.textContent('#spec-stats'), /^acceptance (\d+ %|—) · k \d+ · [\d.]+ tokens\/s · \d+ of \d+ draft tokens kept in \d+ rounds · [\d.]+× the last run without it \([\d.]+ tokens\/s\)$/);
    assert.equal(await page.textContent('#spec-error'), '');
    // A repetition penalty does not combine with a draft: said beside the toggle.
    await page.fill('#repetition', '1.2');
    await page.click('#generate');
    assert.match(await page.textContent('#spec-error'), /repetition penalty/);
    await page.fill('#repetition', '1');
    await page.uncheck('#speculate');
    assert.equal(await page.textContent('#spec-error'), '', 'turning it off clears the error');

    // Token routing off (so far): no token is shaded, no legend.
    assert.equal(await page.locator('#out-text span.routed').count(), 0, 'routing off shades no token');
    assert.equal(await page.isVisible('#route-legend'), false);
    // On, at 60 % of XL's FFN cost: every token shaded by the widths it used,
    // which are Generation.widths and the CLI's; the tokens are the CLI's.
    // At XL, so that the routers may pick every width.
    await page.click('.sizes label:has(input[value="XL"])');
    await settled(['ready', 'error']);
    assert.match(await status(), /^Ready: XL — /);
    const prompt = 'It is a truth universally acknowledged';
    await page.selectOption('#route', '0.6');
    assert.match(await page.textContent('#route-legend'), /^Each token is shaded by how wide its feed-forward layers ran, on average over the layers: S 13 % of XL's cost, M 25 %, L 50 %, XL 100 %\. Hover a token for its width in each layer\.$/);
    const routedRun = async () => {
      await page.click('#generate');
      await settled(['done', 'error']);
      assert.equal(await page.getAttribute('body', 'data-state'), 'done', await status());
      return page.evaluate(() => ({
        spans: [...document.querySelectorAll('#out-text span.routed')].map((s) => ({
          tokens: JSON.parse(s.dataset.tokens), widths: JSON.parse(s.dataset.widths), background: s.style.background, title: s.title,
        })),
        text: document.getElementById('out-text').textContent,
        generation: { tokens: window.demo.generation.tokens, widths: window.demo.generation.widths, backend: window.demo.generation.backend },
      }));
    };
    const [routed, routedWant] = await Promise.all([routedRun(), generate({ prompt, n: 32, mix: 'XL', route: 0.6 })]);
    assert.match(await page.textContent('#spec-stats'), /^S drafts a few tokens/, 'a run without a draft shows the toggle\'s hint, not the last speculative run\'s figures');
    assert.deepEqual(routed.spans.flatMap((s) => s.tokens), routedWant.tokens, 'the shaded tokens are the CLI\'s routed tokens');
    assert.deepEqual(routed.spans.flatMap((s) => s.widths), routed.generation.widths, 'their widths are Generation.widths');
    assert.deepEqual(routed.generation.widths, routedWant.widths);
    assert.deepEqual(routed.generation.tokens, routedWant.tokens);
    assert.equal(routed.text, routedWant.text);
    assert.ok(routed.spans.every((s) => /^(hsla?|rgba?)\(/.test(s.background) && /^widths by layer: [SMLX ]+/.test(s.title)), JSON.stringify(routed.spans[0]));
    // The colour follows the mean width: tokens of equal mean share it, and different means differ.
    const meanOf = (s) => s.widths.flat().reduce((a, b) => a + b, 0) / s.widths.flat().length;
    assert.ok(new Set(routed.spans.map(meanOf)).size > 1, 'the routers gave the tokens more than one mean width');
    for (const a of routed.spans) for (const b of routed.spans) assert.equal(a.background === b.background, meanOf(a) === meanOf(b), JSON.stringify([a, b]));
    const widths = await page.evaluate(() => window.demo.lm.info.header.config.ffn_widths);
    const cost = routedWant.widths.reduce((n, w) => n + w.reduce((m, g) => m + widths[g] / widths.at(-1), 0) / w.length, 0) / routedWant.widths.length;
    const stats = (backend) => `mean feed-forward cost ${Math.round(100 * cost)} % of XL's per token · budget 60 % · 32 tokens · routed on the ${backend.toUpperCase()}`;
    assert.equal(await page.textContent('#route-stats'), stats(routed.generation.backend));
    assert.ok(await page.isVisible('#route-legend'));
    // Forced onto each backend, routing gives the same tokens and widths (the GPU's router kernel picks as the CPU does).
    for (const backend of ['cpu', 'gpu']) {
      await page.selectOption('#backend', backend);
      const forced = await routedRun();
      assert.equal(forced.generation.backend, backend);
      assert.deepEqual(forced.generation.tokens, routedWant.tokens, backend);
      assert.deepEqual(forced.generation.widths, routedWant.widths, backend);
      assert.equal(await page.textContent('#route-stats'), stats(backend));
    }
    await page.selectOption('#backend', '');
    // Routing does not combine with speculation: said beside the routing control.
    await page.check('#speculate');
    await page.click('#generate');
    assert.match(await page.textContent('#route-error'), /does not combine with speculative decoding/);
    await page.uncheck('#speculate');
    assert.equal(await page.textContent('#route-error'), '', 'changing a control it names clears the error');
    if (screenshots) {
      await mkdir(RESULTS, { recursive: true });
      await page.click('#diagnostics > summary'); // the desktop shot shows the device, the plan and the chart too
      await page.screenshot({ path: join(RESULTS, 'demo.png'), fullPage: true });
      await page.click('#diagnostics > summary');
    }
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 390 px screen`);
    await page.evaluate(() => window.scrollTo(0, 0));
    for (const id of ['#prompt', '#generate', '#output']) {
      const box = await page.locator(id).boundingBox();
      assert.ok(box && box.y + Math.min(box.height, 40) <= 844, `${id} is below the fold on a phone (y ${box?.y})`);
    }
    if (screenshots) await page.screenshot({ path: join(RESULTS, 'demo-phone.png'), fullPage: true });
    // Routing off again: plain text, no shaded token, no legend.
    await page.selectOption('#route', '0');
    await page.click('#generate');
    await settled(['done', 'error']);
    assert.equal(await page.getAttribute('body', 'data-state'), 'done', await status());
    assert.ok((await page.textContent('#out-text')).length > 0);
    assert.equal(await page.locator('#out-text span').count(), 0, 'routing off shades no token');
    assert.equal(await page.isVisible('#route-legend'), false);
    assert.match(await page.textContent('#route-stats'), /^Routing: each token picks/, 'no routed figures under unrouted text');

    // A reload finds everything in the cache.
    const mark = (await log()).length;
    await page.reload();
    await settled(['ready', 'error']);
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready', await status());
    assert.deepEqual((await log()).slice(mark).filter((r) => r.path === MODEL), [], 'the reloaded demo fetched no model bytes');
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
}

function failUnderCI(what, reason) {
  it(what, () => assert.fail(`${reason} (CI=true: a missing dependency is a failure)`));
}

if (missing && CI) {
  failUnderCI('matedge in headless Chromium', missing);
} else {
  describe('matedge in headless Chromium with WebGPU, served by matedge serve', { skip: missing ?? false, timeout: 240_000 }, () => {
    const ctx = {};
    let server;
    let browser;
    const log = async () => server.requests;

    before(async () => {
      [server, browser] = await Promise.all([startServer(), launch()]);
      ctx.s = await session(browser, server, log);
    }, { timeout: 45_000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
    }, { timeout: 20_000 });

    core(() => ctx);

    it('a corrupted cached block is detected by its checksum and fetched again', async () => {
      const s = ctx.s;
      // Damage one byte of the cached block that holds layers.1.query.
      const info = (await s.load({ mix: 'XL' })).info;
      const entry = info.header.entries.find((e) => e.tensor === 'layers.1.query');
      const at = info.data_start + entry.offset + 100;
      const damaged = await s.page.evaluate(async (at) => {
        const cache = await caches.open('matedge-weights-v1');
        for (const request of await cache.keys()) {
          const m = /\/(\d+)-(\d+)$/.exec(request.url);
          if (!m || at < Number(m[1]) || at >= Number(m[1]) + Number(m[2])) continue;
          const bytes = new Uint8Array(await (await cache.match(request)).arrayBuffer());
          bytes[at - Number(m[1])] ^= 0xff;
          await cache.put(request, new Response(bytes));
          return request.url;
        }
        return null;
      }, at);
      assert.ok(damaged, `a cached block holds byte ${at}`);

      await s.reload();
      const mark = await s.mark();
      const [loaded, want] = await Promise.all([s.load({ mix: 'XL' }), generate({ prompt: PROMPT, n: N, mix: 'XL' })]);
      const requests = await s.modelRequests(mark, 1);
      assert.deepEqual(requests.map((r) => r.range), [`bytes=${info.data_start + entry.offset}-${info.data_start + entry.offset + entry.length - 1}`],
        'only the damaged tensor is fetched again');
      assert.equal(loaded.downloaded.bytes, entry.length);
      assert.deepEqual((await s.run({ backend: 'cpu' })).tokens, want.tokens);

      await s.reload();
      const again = await s.mark();
      await s.load({ mix: 'XL' });
      assert.deepEqual(await s.modelRequests(again), [], 'the repaired cache serves everything');
    }, { timeout: 40_000 });

    it('a download cut short resumes from the cached blocks', async () => {
      const s = ctx.s;
      const bytes = new Uint8Array(await (await fetch(new URL(MODEL, server.url))).arrayBuffer());
      const files = await startFileServer({ name: 'cut.matw', bytes });
      try {
        await s.clearCache();
        const model = `${files.url}cut.matw`;
        // The preamble, the header, then a block and a half of XL's data (the
        // loader caches blocks of a sixteenth of a range, 64 KiB to 4 MiB).
        const headerLen = new DataView(bytes.buffer).getUint32(8, true);
        const dataStart = Math.ceil((12 + headerLen) / 256) * 256;
        const block = Math.min(4 << 20, Math.max(64 << 10, Math.ceil((bytes.length - dataStart) / 16 / 4096) * 4096));
        files.cutAfter = dataStart + Math.floor(1.5 * block);
        const err = await s.load({ model, mix: 'XL' }).then(() => null, (e) => e.message);
        assert.match(err ?? 'loaded', /ERR_FETCH|fetching|reading|network|Failed/i);
        const cached = await s.page.evaluate(async () => {
          const cache = await caches.open('matedge-weights-v1');
          return (await cache.keys()).flatMap((r) => {
            const m = /\/(\d+)-(\d+)$/.exec(r.url);
            return m ? [{ offset: Number(m[1]), length: Number(m[2]) }] : [];
          });
        });
        assert.ok(sum(cached) > 0, 'some blocks were cached before the cut');

        files.cutAfter = Infinity;
        const mark = files.requests.length;
        const [loaded, want] = await Promise.all([s.load({ model, mix: 'XL' }), generate({ prompt: PROMPT, n: N, mix: 'XL' })]);
        const fetched = bytesOf(files.requests.slice(mark));
        assert.equal(fetched, sum(subtract(loaded.mix.needed, cached)), 'the second load fetched exactly what the cache lacked');
        assert.ok(fetched < sum(loaded.mix.needed));
        assert.deepEqual((await s.run({ backend: 'cpu' })).tokens, want.tokens);
      } finally {
        await files.stop();
      }
    }, { timeout: 40_000 });

    it('a server that ignores Range still works: one 200, same tokens', async () => {
      const s = ctx.s;
      const bytes = new Uint8Array(await (await fetch(new URL(MODEL, server.url))).arrayBuffer());
      const files = await startFileServer({ name: 'plain.matw', bytes, ranges: false });
      try {
        const [loaded, want] = await Promise.all([
          s.load({ model: `${files.url}plain.matw`, mix: 'S', cache: false }),
          generate({ prompt: PROMPT, n: N, mix: 'S' }),
        ]);
        assert.deepEqual(files.requests.map((r) => `${r.method} ${r.range} ${r.status}`), ['GET bytes=0-11 200'], 'one GET: the rest is cut from its body');
        assert.equal(loaded.fileSize, bytes.length);
        assert.deepEqual((await s.run({ backend: 'cpu' })).tokens, want.tokens);
      } finally {
        await files.stop();
      }
    }, { timeout: 40_000 });

    it('a first visit plans before fetching any weights, then fetches only the plan\'s bytes, with overall progress', async () => {
      const s = ctx.s;
      const bytes = new Uint8Array(await (await fetch(new URL(MODEL, server.url))).arrayBuffer());
      const files = await startFileServer({ name: 'first.matw', bytes });
      // Every request past the header's bytes waits until the page has the
      // plan: a runtime that needed weights to plan would never get one.
      const isData = (r) => Number(/^bytes=(\d+)-/.exec(r.range)?.[1] ?? 0) > 0;
      let dataBeforePlan = -1;
      files.hold = isData;
      await s.page.exposeFunction('matedgeTestPlanned', () => {
        dataBeforePlan = files.held.length;
        files.release();
      });
      try {
        await s.clearCache();
        const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`no plan after 30 s: the runtime waits for weights before planning (requests: ${JSON.stringify(files.requests)})`)), 30_000));
        const loaded = await Promise.race([timeout, s.page.evaluate(async (model) => {
          const { MatEdge } = await import('/matedge.js');
          window.lm?.close();
          const events = [];
          window.lm = await MatEdge.load({
            model, budget: 'balanced', remeasure: true,
            onPlan: () => { events.push({ event: 'plan' }); window.matedgeTestPlanned(); },
            onProgress: (p) => events.push({ event: 'progress', phase: p.phase, loaded: p.loaded, total: p.total, overall: p.overall }),
          });
          const { info, mix, downloaded, capabilities, plan } = window.lm;
          return { info, mix, downloaded, capabilities, plan, events };
        }, `${files.url}first.matw`)]);
        const { plan, events, info } = loaded;
        assert.equal(plan.error, '');
        assert.ok(dataBeforePlan >= 0, 'the page saw the plan');
        const planAt = events.findIndex((e) => e.event === 'plan');
        assert.ok(planAt > 0 && events.slice(0, planAt).every((e) => e.phase === 'wasm'), `before the plan only the module downloads: ${JSON.stringify(events.slice(0, planAt + 1).map((e) => e.phase ?? e.event))}`);
        for (const b of loaded.capabilities.benchmarks) assert.match(b.method, /synthetic weights/);
        // Requests: the preamble, the header, then only the plan's ranges, each byte once.
        const header = files.requests.filter((r) => !isData(r));
        assert.deepEqual(header.map((r) => r.range), ['bytes=0-11', `bytes=0-${/^bytes=0-(\d+)$/.exec(header[1].range)[1]}`]);
        const data = files.requests.filter(isData);
        assert.ok(data.length > 0 && data.every((r) => r.status === 206), JSON.stringify(data));
        assert.equal(bytesOf(data), plan.download_bytes, 'weights bytes fetched = the plan\'s');
        assert.equal(plan.fetch_bytes, plan.download_bytes, 'nothing was cached');
        for (const r of data) {
          const [, first, last] = /^bytes=(\d+)-(\d+)$/.exec(r.range).map(Number);
          assert.ok(first >= info.data_start && plan.ranges.some((p) => p.offset <= first && last < p.offset + p.length), `request ${r.range} is outside the plan's ranges`);
        }
        // Overall progress: unknown until the plan, then the module's bytes and the plan's; it ends complete.
        const progress = events.filter((e) => e.event === 'progress');
        const wasm = progress.filter((e) => e.phase === 'wasm').at(-1);
        assert.ok(progress.slice(0, planAt).every((e) => e.overall.total === null), 'no overall total before the plan');
        const total = wasm.loaded + plan.download_bytes;
        for (const e of progress.slice(planAt)) {
          assert.equal(e.overall.total, total, JSON.stringify(e));
          assert.ok(e.overall.loaded <= total && (e.overall.etaSeconds === null || e.overall.etaSeconds >= 0), JSON.stringify(e));
        }
        assert.equal(progress.at(-1).overall.loaded, total, 'the last event is complete');
        assert.ok(progress.some((e) => e.overall.bytesPerSecond > 0), 'an overall rate');
        const want = await generate({ prompt: PROMPT, n: N, mix: plan.spec });
        assert.deepEqual((await s.run({ backend: 'cpu' })).tokens, want.tokens);
      } finally {
        files.release();
        await files.stop();
      }
    }, { timeout: 60_000 });

    it('a GPU lost mid-generation: the generation goes on on the CPU with the same tokens', async () => {
      const s = ctx.s;
      await s.load({ mix: 'S' });
      const want = await generate({ prompt: PROMPT, n: N, mix: 'S' });
      const got = await s.page.evaluate(async ({ prompt, n }) => {
        const gen = window.lm.generate(prompt, { maxTokens: n, temperature: 0, backend: 'gpu' });
        let lost = null;
        for await (const _ of gen) {
          if (gen.tokens.length === 3 && !lost) lost = window.lm.simulateDeviceLoss();
        }
        await lost;
        const next = window.lm.generate(prompt, { maxTokens: 2, temperature: 0 });
        for await (const _ of next);
        return { tokens: gen.tokens, backend: gen.backend, deviceLost: gen.deviceLost, nextBackend: next.backend, gpuLost: window.lm.gpuLost };
      }, { prompt: PROMPT, n: N });
      assert.deepEqual(got.tokens, want.tokens);
      assert.equal(got.backend, 'cpu');
      assert.match(got.deviceLost ?? '', /lost \(destroyed\)/);
      assert.equal(got.nextBackend, 'cpu', 'later generations run on the CPU');
    }, { timeout: 40_000 });

    it('breaking out of the loop cancels the generation', async () => {
      const got = await ctx.s.page.evaluate(async () => {
        const gen = window.lm.generate('It is', { maxTokens: 200, temperature: 0 });
        for await (const piece of gen) if (piece) break;
        await gen.finished;
        return { reason: gen.reason, tokens: gen.tokens.length };
      });
      assert.equal(got.reason, 'cancelled');
      assert.ok(got.tokens < 200, `${got.tokens} tokens generated`);
    }, { timeout: 20_000 });

    it('a module with another ABI version fails with a clear error', async () => {
      const err = await ctx.s.page.evaluate(async (bytes) => {
        const { MatEdge } = await import('/matedge.js');
        const wasm = URL.createObjectURL(new Blob([new Uint8Array(bytes)], { type: 'application/wasm' }));
        try {
          await MatEdge.load({ model: '/models/default.matw', wasm });
          return null;
        } catch (e) {
          return { name: e.name, code: e.code, message: e.message };
        } finally {
          URL.revokeObjectURL(wasm);
        }
      }, [...wrongABIModule(2)]);
      assert.deepEqual(err && { name: err.name, code: err.code }, { name: 'MatEdgeError', code: 'ERR_ABI' });
      assert.match(err.message, /module ABI version 2, this runtime speaks 1/);
    }, { timeout: 20_000 });

    it('a missing model or module file fails with the HTTP status', async () => {
      const errs = await ctx.s.page.evaluate(async () => {
        const { MatEdge } = await import('/matedge.js');
        const attempt = (o) => MatEdge.load(o).then(() => null, (e) => ({ code: e.code, message: e.message }));
        return [await attempt({ model: '/models/nope.matw' }), await attempt({ model: '/models/default.matw', wasm: '/nope.wasm' })];
      });
      for (const [err, file] of [[errs[0], '/models/nope.matw'], [errs[1], '/nope.wasm']]) {
        assert.equal(err?.code, 'ERR_FETCH', `loading with ${file}`);
        assert.match(err.message, new RegExp(`${file.replace('.', '\\.')}.*HTTP 404`));
      }
    }, { timeout: 20_000 });

    it('the demo page plans, switches size, streams text, fits a phone, and reloads from the cache', async () => {
      await demo(browser, server, log, { screenshots: true });
    }, { timeout: 90_000 });

    it('raised no uncaught errors in the page', () => assert.deepEqual(ctx.s.errors, []));
  });

  describe('matedge in headless Chromium without WebGPU', { skip: missing ?? false, timeout: 60_000 }, () => {
    let server;
    let browser;
    let s;

    before(async () => {
      [server, browser] = await Promise.all([startServer(), launch({ webgpu: false })]);
      s = await session(browser, server, async () => server.requests);
    }, { timeout: 45_000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
    }, { timeout: 20_000 });

    it('plans for the CPU and gives matedge generate\'s greedy tokens', async () => {
      const loaded = await s.load({});
      assert.equal(loaded.gpu, null);
      assert.match(loaded.gpuReason, /requestAdapter\(\) returned null|navigator\.gpu is undefined/);
      assert.equal(loaded.capabilities.adapter, null);
      assert.deepEqual(loaded.capabilities.benchmarks.map((b) => b.backend), ['cpu']);
      assert.equal(loaded.plan.backend, 'cpu');
      const [got, want] = await Promise.all([s.run(), generate({ prompt: PROMPT, n: N, mix: loaded.plan.spec })]);
      assert.equal(got.backend, 'cpu');
      assert.deepEqual(got.tokens, want.tokens);
    }, { timeout: 30_000 });

    it('backend auto runs on the CPU with the same tokens as on WebGPU', async () => {
      await s.load({ mix: 'S,M,L,XL' });
      const [got, want] = await Promise.all([s.run({ backend: 'auto' }), generate({ prompt: PROMPT, n: N, mix: 'S,M,L,XL' })]);
      assert.equal(got.backend, 'cpu');
      assert.deepEqual(got.tokens, want.tokens);
    }, { timeout: 30_000 });
  });
}

const noNginx = missing ?? missingNginx();
if (noNginx && CI) {
  failUnderCI('matedge served by nginx', noNginx);
} else {
  describe('matedge in headless Chromium with WebGPU, served by nginx', { skip: noNginx ?? false, timeout: 180_000 }, () => {
    const ctx = {};
    let server;
    let browser;
    const log = () => server.requests();

    before(async () => {
      [server, browser] = await Promise.all([startNginx({ models: { 'default.matw': MODEL_FILE } }), launch()]);
      ctx.s = await session(browser, server, log);
    }, { timeout: 45_000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
    }, { timeout: 20_000 });

    core(() => ctx);

    it('the demo page works', async () => {
      await demo(browser, server, log, { screenshots: false });
    }, { timeout: 90_000 });

    it('raised no uncaught errors in the page', () => assert.deepEqual(ctx.s.errors, []));
  });
}
