// The bind group cache of the `webgpu` imports (webgpu.js) in headless
// Chromium, on its WebGPU adapter (SwiftShader): the module's decode steps
// after the first create no bind groups and give matedge generate's tokens;
// and, through the imports themselves, the cache's invalidation — a
// destroyed buffer's groups are dropped, growing the uniform buffer drops
// them all, the cache holds at most its cap — with every result checked.
// webgpu/bindgroups_test.go checks the same of the native device.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { generate, missingBuild, startServer } from '../harness/server.mjs';

const CI = process.env.CI === 'true';
const missing = missingBuild() ?? (await missingBrowser());
const PROMPT = 'It is a truth';
const N = 12;

/**
 * decode runs in the page: it loads the default model's mix into a fresh
 * module on the GPU, generates n greedy tokens twice (two sequences, the
 * second on groups cached by the first) and returns, per sequence, the
 * tokens and the bind groups created by the time each token came back.
 */
async function decode({ mix, prompt, n }) {
  const { DONE, ModuleInstance } = await import('/abi.js');
  const { ModelFile } = await import('/loader.js');
  const { requestGPU } = await import('/webgpu.js');
  const gpu = await requestGPU();
  if (!gpu.info) throw new Error(`no GPU: ${gpu.reason}`);
  const mod = await ModuleInstance.instantiate(await WebAssembly.compileStreaming(fetch('/matedge.wasm')), { gpu });
  const file = new ModelFile('/models/default.matw');
  await file.loadHeader(mod);
  await file.loadMix(mod, mix);
  mod.setMix(mix);
  const runs = [];
  for (let run = 0; run < 2; run++) {
    const backend = mod.reset({ seed: 1, temperature: 0, top_k: 0, top_p: 1, backend: 'gpu' });
    mod.prompt(prompt);
    const tokens = [];
    const created = [];
    while (tokens.length < n) {
      const t = await mod.next();
      if (t === DONE) break;
      tokens.push(t);
      created.push(gpu.bindGroupsCreated);
    }
    runs.push({ backend, tokens, created });
  }
  gpu.destroy();
  return runs;
}

/**
 * invalidation runs in the page: it drives a WebGPUHost's imports by hand,
 * as the module would, with a shader that doubles x into y plus its params,
 * and reports what each step created and read.
 */
async function invalidation() {
  const { BIND_GROUP_CAP, requestGPU } = await import('/webgpu.js');
  const gpu = await requestGPU();
  if (!gpu.info) throw new Error(`no GPU: ${gpu.reason}`);
  const memory = new WebAssembly.Memory({ initial: 2 }); // the "guest" memory: 128 KiB
  const bytes = new Uint8Array(memory.buffer);
  const view = new DataView(memory.buffer);
  const imports = gpu.imports(() => memory);
  const lastError = () => new TextDecoder().decode(bytes.subarray(0, imports.last_error(0, 512)));
  const ok = (status, what) => {
    if (status < 0) throw new Error(`${what}: ${status} ${lastError()}`);
    return status;
  };
  if (imports.open() !== 0) throw new Error(lastError());
  const wgsl = `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.n) { y[gid.x] = 2u * x[gid.x] + p.n; }
}`;
  const code = new TextEncoder().encode(wgsl);
  bytes.set(code, 1024);
  const pipeline = ok(imports.pipeline_create(1024, code.length, 2), 'pipeline_create');
  const PARAMS = 4096; // 16 bytes of params
  const BINDINGS = 4160; // two 24-byte binding records
  const DATA = 8192;

  let x = 0;
  let y = 0;
  let xs = [];
  let ys = [];
  // buffers replaces x and y (y destroyed first, so the new ones do not come in the old order), x holding values.
  const buffers = (values) => {
    if (y) ok(imports.buffer_destroy(y), 'destroy y');
    if (x) ok(imports.buffer_destroy(x), 'destroy x');
    y = ok(imports.buffer_create(16n), 'create y');
    x = ok(imports.buffer_create(16n), 'create x');
    values.forEach((v, i) => view.setUint32(DATA + 4 * i, v, true));
    ok(imports.buffer_write(x, 0n, DATA, 16), 'write x');
    xs = values;
    ys = [0, 0, 0, 0];
  };
  // step dispatches the shader for each n of ns, copying y out after each;
  // it reads the copies back and returns the groups created and whether
  // every copy held what the CPU says.
  const step = async (ns) => {
    const before = gpu.bindGroupsCreated;
    const out = ok(imports.buffer_create(BigInt(16 * ns.length)), 'create out');
    const want = [];
    ns.forEach((n, i) => {
      view.setUint32(PARAMS, n, true);
      for (const [j, b] of [x, y].entries()) {
        view.setUint32(BINDINGS + 24 * j, b, true);
        view.setUint32(BINDINGS + 24 * j + 4, 0, true);
        view.setBigUint64(BINDINGS + 24 * j + 8, 0n, true);
        view.setBigUint64(BINDINGS + 24 * j + 16, 0n, true);
      }
      ok(imports.dispatch(pipeline, PARAMS, 16, BINDINGS, 2, 1, 1, 1), 'dispatch');
      ok(imports.copy(y, 0n, out, BigInt(16 * i), 16n), 'copy');
      ys = ys.map((v, j) => (j < n ? 2 * xs[j] + n : v));
      want.push(...ys);
    });
    const size = 16 * ns.length;
    const ticket = ok(imports.read(out, 0n, BigInt(size)), 'read');
    const dst = 16384;
    while (ok(imports.read_result(ticket, dst, size), 'read_result') === 0) await gpu.settled();
    const got = Array.from({ length: 4 * ns.length }, (_, i) => view.getUint32(dst + 4 * i, true));
    ok(imports.buffer_destroy(out), 'destroy out');
    return { created: gpu.bindGroupsCreated - before, right: got.every((v, i) => v === want[i]), cached: gpu.groups.size };
  };

  const report = {};
  buffers([1, 2, 3, 4]);
  report.first = await step([3, 4]);
  report.again = await step([3, 4]);
  report.otherParams = await step([1, 2]);
  buffers([10, 20, 30, 40]);
  report.cachedAfterDestroy = gpu.groups.size;
  report.newBuffers = await step([3, 4]);
  const many = (count) => Array.from({ length: count }, (_, i) => 1 + (i % 4));
  report.grown = await step(many(20));
  report.grownAgain = await step(many(20));
  report.limit = BIND_GROUP_CAP;
  report.pastLimit = await step(many(report.limit + 8));
  report.afterClear = await step([3, 4]);
  gpu.destroy();
  return report;
}

if (missing && CI) {
  it('bind group cache in headless Chromium', () => assert.fail(`${missing} (CI=true: a missing dependency is a failure)`));
} else {
  describe('bind group cache in headless Chromium', { skip: missing ?? false, timeout: 180_000 }, () => {
    let server;
    let browser;
    let page;
    const errors = [];

    before(async () => {
      [server, browser] = await Promise.all([startServer(), launch()]);
      page = await browser.context.newPage();
      page.on('pageerror', (err) => errors.push(err.message));
      await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
      await page.goto(`${server.url}blank.html`);
    }, { timeout: 45_000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
    }, { timeout: 20_000 });

    it('decode steps after the first create no bind groups, and the tokens are matedge generate\'s', async () => {
      for (const mix of ['S', 'XL']) {
        const [runs, want] = await Promise.all([
          page.evaluate(decode, { mix, prompt: PROMPT, n: N }),
          generate({ prompt: PROMPT, n: N, mix }),
        ]);
        for (const [i, run] of runs.entries()) {
          assert.equal(run.backend, 'gpu');
          assert.deepEqual(run.tokens, want.tokens, `${mix}, sequence ${i + 1}`);
          // created[0]: after the prompt's pass; created[1]: after the first decode step.
          assert.ok(run.created.slice(2).every((n) => n === run.created[1]),
            `${mix}, sequence ${i + 1}: bind groups created by each token ${run.created}; want none after the second`);
        }
        assert.ok(runs[0].created[1] > 0, `${mix}: the first sequence created bind groups`);
        assert.equal(runs[1].created.at(-1), runs[0].created.at(-1), `${mix}: the second sequence, on cached groups, created none`);
      }
    });

    it('drops the groups of destroyed buffers and of a replaced uniform buffer, and caps the cache', async () => {
      const r = await page.evaluate(invalidation);
      for (const [name, s] of Object.entries(r)) if (typeof s === 'object') assert.ok(s.right, `${name}: wrong results ${JSON.stringify(s)}`);
      assert.equal(r.first.created, 2, 'two dispatches create two groups');
      assert.equal(r.again.created, 0, 'the same submit again creates none');
      assert.equal(r.otherParams.created, 0, 'other params in the same slots create none');
      assert.equal(r.cachedAfterDestroy, 0, 'destroying their buffers drops the groups');
      assert.equal(r.newBuffers.created, 2, 'new buffers get groups of their own');
      assert.equal(r.grown.created, 20, 'growing the uniform buffer drops every group');
      assert.equal(r.grownAgain.created, 0);
      assert.equal(r.pastLimit.created, r.limit + 8);
      assert.equal(r.pastLimit.cached, r.limit, 'the cache holds at most its cap');
      assert.equal(r.afterClear.created, 2, 'a submit that finds the cache full clears it');
      assert.equal(r.afterClear.cached, 2);
    });

    it('raised no uncaught errors in the page', () => assert.deepEqual(errors, []));
  });
}
