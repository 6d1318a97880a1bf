// Vision models (MatViT) in headless Chromium (Debian's, through
// playwright-core), against `matedge serve`: the page plans the query
// encoder and downloads only its bytes; its class probabilities, logits and
// nearest index entries equal `matedge classify -json` and `matedge retrieve
// -json` (the Go host running the same module) bit for bit; switching the
// encoder live fetches only the rows it adds; browser images are converted
// to the model's size and channels; bad inputs, an index of other weights
// and the wrong kind of model are refused with clear errors; and the vision
// demo classifies a drawing, a test picture and an upload, shows neighbours,
// switches encoder, and fits a phone (screenshots in test-results/).
//
// The models are tiny MatViTs trained here for a few steps (their answers
// are near chance: what is checked is that both hosts give the same ones).
// WebGPU: where the module has a GPU vision path, classify on WebGPU agrees
// with the CPU; where it has none, backend 'gpu' fails with ERR_BACKEND and
// its message, and 'auto' runs on the CPU.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { missingBuild, startServer } from '../harness/server.mjs';
import { buildIndex, classifyCLI, missingVision, retrieveCLI, testPicture, trainTiny } from '../harness/vision.mjs';
import { imageWork } from '../src/caps.js';
import { rangeBytes, subtract } from '../src/loader.js';

const CI = process.env.CI === 'true';
const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(WEB, 'test-results');
// The demo's own model and index, when the repository has them: the demo
// test then runs on them (and its screenshots show a trained model).
const DEMO_MODEL = join(WEB, '..', 'weights', 'defaultmodel', 'matvit.matw');
const DEMO_INDEX = join(WEB, '..', 'weights', 'defaultmodel', 'matvit-xl.mati');
const K = 5;

const missing = missingBuild() ?? (await missingBrowser()) ?? (await missingVision());

const f32 = (xs) => xs.map((x) => Math.fround(x));
const bytesOf = (requests) => requests.reduce((n, r) => n + r.bytes, 0);

// sameAnswer asserts that the page's ClassifyResult is the CLI's -json, bit for bit.
function sameAnswer(got, want, what) {
  assert.equal(got.class, want.class, `${what}: class`);
  assert.equal(got.className, want.name, `${what}: class name`);
  assert.deepEqual(got.logits, f32(want.logits), `${what}: logits`);
  assert.deepEqual(got.probs, f32(want.probs), `${what}: probabilities`);
}

function sameNeighbours(got, want, what) {
  assert.deepEqual(got.map((n) => [n.index, n.label, n.className, n.score]),
    want.neighbors.map((n) => [n.index, n.label, n.name, Math.fround(n.score)]), `${what}: neighbours`);
}

function failUnderCI(what, reason) {
  it(what, () => assert.fail(`${reason} (CI=true: a missing dependency is a failure)`));
}

if (missing && CI) {
  failUnderCI('vision models in headless Chromium', missing);
} else {
  describe('vision models in headless Chromium with WebGPU, served by matedge serve', { skip: missing ?? false, timeout: 600_000 }, () => {
    let dir;
    let server;
    let browser;
    let page;
    const errors = [];
    const files = {}; // paths on disk
    const MODEL = '/models/tiny-1.matw';
    const OTHER = '/models/tiny-2.matw';
    const INDEX = '/models/tiny-1-xl.mati';
    const log = () => server.requests;

    // call runs body(lm, arg) in the page, where window.lm is the loaded model and
    // MatEdge the module; an error comes back as {error: {code, message}}.
    const call = (body, arg) => page.evaluate(async ([source, a]) => {
      const { MatEdge, toPixels } = await import('/matedge.js');
      try {
        // eslint-disable-next-line no-new-func
        return await new Function('MatEdge', 'toPixels', 'a', `return (${source})(a)`)(MatEdge, toPixels, a);
      } catch (e) {
        return { error: { name: e.name, code: e.code, message: e.message } };
      }
    }, [body.toString(), arg]);
    const load = (options) => call(async (o) => {
      window.lm?.close();
      window.lm = await MatEdge.load(o);
      const { info, mix, downloaded, gpu, capabilities, plan, architecture, image, classes } = window.lm;
      return { info, mix, downloaded, gpu, capabilities, plan, architecture, image, classes };
    }, options);
    // classify classifies Fashion-MNIST test picture n, as exact pixels.
    const classify = (n, options = {}) => call(async ({ bytes, options }) => {
      const r = await window.lm.classify(Float32Array.from(bytes, (v) => v / 255), options);
      return r;
    }, { bytes: testPicture(n).bytes, options: { backend: 'cpu', ...options } });
    const setMix = (mix) => call(async (m) => {
      await window.lm.setMix(m);
      return { mix: window.lm.mix, downloaded: window.lm.downloaded };
    }, mix);
    const modelRequests = (mark, path = MODEL) => log().slice(mark).filter((r) => r.path === path);

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'matedge-vision-'));
      // One at a time: the machine is shared.
      files.model = await trainTiny(dir, { seed: 1 });
      files.other = await trainTiny(dir, { seed: 2 });
      files.index = await buildIndex(files.model, join(dir, 'tiny-1-xl.mati'), { limit: 200 });
      const demoFiles = existsSync(DEMO_MODEL) && existsSync(DEMO_INDEX) ? ['-model', DEMO_MODEL, '-model', DEMO_INDEX] : [];
      [server, browser] = await Promise.all([
        startServer({ args: ['-model', files.model, '-model', files.other, '-model', files.index, ...demoFiles] }),
        launch(),
      ]);
      page = await browser.context.newPage();
      page.on('pageerror', (err) => errors.push(err.message));
      await page.route(`${server.url}blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }));
      await page.goto(`${server.url}blank.html`);
    }, { timeout: 400_000 });

    after(async () => {
      await browser?.close();
      await server?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    }, { timeout: 20_000 });

    it('plans the query encoder, downloads only its bytes, and gives matedge classify\'s and matedge retrieve\'s answers on the CPU', async () => {
      await call(() => MatEdge.clearCache());
      const mark = log().length;
      const loaded = await load({ model: MODEL, budget: 'balanced' });
      assert.equal(loaded.error, undefined, JSON.stringify(loaded.error));
      assert.equal(loaded.architecture, 'matvit');
      assert.deepEqual(loaded.image, { size: 28, patch: 7, channels: 1 });
      assert.equal(loaded.classes[9], 'Ankle boot');
      const { plan, capabilities } = loaded;
      assert.equal(plan.error, '');
      assert.match(plan.reasons.join(' '), /vision model/);
      assert.ok(plan.predicted_tokens_per_second > 0, 'images/s predicted');
      assert.ok(capabilities.benchmarks.some((b) => b.backend === 'cpu' && b.imagesPerSecond > 0 && b.gflops > 0), JSON.stringify(capabilities.benchmarks));
      assert.deepEqual(loaded.mix.mix, plan.mix_names);
      // The benchmark's rates are per image as the planner prices an image: the same work.
      assert.deepEqual(imageWork(loaded.info.header.config, plan.mix), plan.work);
      const requests = modelRequests(mark);
      assert.ok(requests.every((r) => r.status === 206), JSON.stringify(requests));
      const data = requests.filter((r) => Number(/^bytes=(\d+)/.exec(r.range)[1]) >= loaded.info.data_start);
      assert.equal(bytesOf(data), plan.download_bytes, 'weights bytes fetched = the plan\'s');

      const index = await call((url) => window.lm.loadIndex(url), INDEX);
      assert.equal(index.error, undefined, JSON.stringify(index.error));
      assert.equal(index.count, 200);
      assert.deepEqual(index.mix, ['XL', 'XL']);
      assert.equal(index.has_images, true);
      assert.equal(index.classes.length, 10);
      for (const n of [0, 1, 2]) {
        const [got, want, near] = await Promise.all([
          classify(n, { k: K }),
          classifyCLI({ model: files.model, n, mix: plan.spec }),
          retrieveCLI({ model: files.model, index: files.index, n, mix: plan.spec, k: K }),
        ]);
        assert.equal(got.error, undefined, JSON.stringify(got.error));
        assert.equal(got.backend, 'cpu');
        sameAnswer(got, want, `test picture ${n}`);
        sameNeighbours(got.neighbors, near, `test picture ${n}`);
        assert.equal(got.embedding.length, 16);
        assert.ok(Math.abs(got.embedding.reduce((s, x) => s + x * x, 0) - 1) < 1e-5, 'the embedding has unit length');
      }
      // The index's stored pictures are the training pictures, as bytes.
      const first = await call(async () => [...await window.lm.indexImage(0)]);
      assert.equal(first.length, 784);
      assert.ok(first.some((v) => v > 0) && first.every((v) => v >= 0 && v <= 255));
    }, { timeout: 120_000 });

    it('switching the encoder live fetches only the rows it adds, and each encoder gives the CLI\'s answers against the XL index', async () => {
      await load({ model: MODEL, mix: 'S', cache: false }); // every byte over the network, none from the cache
      await call((url) => window.lm.loadIndex(url), INDEX);
      const sMix = await call(() => window.lm.mix);
      const before = await call(() => window.lm.downloaded);
      const mark = log().length;
      const xl = await setMix('XL');
      const delta = rangeBytes(subtract(xl.mix.needed, sMix.needed));
      assert.ok(delta > 0);
      assert.equal(xl.downloaded.bytes - before.bytes, delta, 'S → XL fetched the rows XL adds');
      assert.equal(bytesOf(modelRequests(mark)), delta, 'and the server sent them');
      for (const mix of ['XL', 'S', 'M,L']) {
        const mark = log().length;
        const switched = await setMix(mix);
        assert.deepEqual(switched.downloaded, xl.downloaded, `${mix} after XL fetches nothing`);
        assert.deepEqual(modelRequests(mark), []);
        const [got, want, near] = await Promise.all([
          classify(3, { k: K }),
          classifyCLI({ model: files.model, n: 3, mix }),
          retrieveCLI({ model: files.model, index: files.index, n: 3, mix, k: K }),
        ]);
        sameAnswer(got, want, `mix ${mix}`);
        sameNeighbours(got.neighbors, near, `mix ${mix}`);
      }
    }, { timeout: 120_000 });

    // backend 'gpu' and 'auto' run on WebGPU (SwiftShader) and agree with
    // the CPU within float rounding (the GPU sums in another order).
    it('on WebGPU, classify runs on the GPU with the CPU\'s answer', async () => {
      const loaded = await load({ model: MODEL, mix: 'XL' });
      assert.ok(loaded.gpu, 'SwiftShader gave the page a WebGPU device');
      await call((url) => window.lm.loadIndex(url), INDEX);
      const cpu = await classify(4, { backend: 'cpu', k: K });
      const gpu = await classify(4, { backend: 'gpu', k: K });
      const auto = await classify(4, { backend: 'auto', k: K });
      assert.ok(!gpu.error, `backend gpu: ${JSON.stringify(gpu.error)}`);
      for (const [r, what] of [[gpu, 'gpu'], [auto, 'auto']]) {
        assert.equal(r.backend, 'gpu', `backend ${what} ran on the GPU`);
        assert.equal(r.class, cpu.class);
        const far = Math.max(...r.logits.map((x, i) => Math.abs(x - cpu.logits[i])), ...r.embedding.map((x, i) => Math.abs(x - cpu.embedding[i])));
        assert.ok(far < 1e-4, `${what}: logits and embedding within 1e-4 of the CPU's (${far})`);
        assert.deepEqual(r.neighbors.map((n) => n.index), cpu.neighbors.map((n) => n.index), `${what}: the same neighbours`);
      }
      // After the GPU is lost, auto runs on the CPU with its answer, and gpu is refused saying why.
      assert.deepEqual(await call(() => window.lm.simulateDeviceLoss()), { lost: true });
      const after = await classify(4, { backend: 'auto', k: K });
      assert.equal(after.backend, 'cpu');
      assert.deepEqual(after.logits, cpu.logits);
      const refused = await classify(4, { backend: 'gpu' });
      assert.equal(refused.error?.code, 'ERR_BACKEND');
      assert.match(refused.error.message, /the GPU backend is gone/);
      // The default backend is the plan's, else auto: it runs.
      assert.equal((await call(async (bytes) => (await window.lm.classify(Float32Array.from(bytes, (v) => v / 255))).class, testPicture(4).bytes)), cpu.class);
    }, { timeout: 60_000 });

    it('converts browser images to the model\'s size and channels, and refuses inputs of the wrong size or kind', async () => {
      await load({ model: MODEL, mix: 'XL' });
      const { bytes } = testPicture(5);
      const got = await call(async (bytes) => {
        const exact = Float32Array.from(bytes, (v) => v / 255);
        const grey = new ImageData(28, 28);
        bytes.forEach((v, i) => grey.data.set([v, v, v, 255], 4 * i));
        // The same picture 10× larger, as a canvas drawn with blocky pixels.
        const big = document.createElement('canvas');
        big.width = big.height = 280;
        const ctx = big.getContext('2d');
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(await createImageBitmap(grey), 0, 0, 280, 280);
        const shape = window.lm.image;
        const bigPixels = toPixels(big, shape);
        // A red square: luminance 0.299. A white 56×28 strip: fitted, centred between black bands.
        const red = new OffscreenCanvas(10, 10);
        Object.assign(red.getContext('2d'), { fillStyle: 'rgb(255, 0, 0)' }).fillRect(0, 0, 10, 10);
        const wide = new OffscreenCanvas(56, 28);
        Object.assign(wide.getContext('2d'), { fillStyle: '#fff' }).fillRect(0, 0, 56, 28);
        const widePixels = toPixels(wide, shape);
        // The same 28×28 picture as an ImageBitmap and as a PNG in an <img>.
        const bitmap = await createImageBitmap(grey);
        const small = document.createElement('canvas');
        small.width = small.height = 28;
        small.getContext('2d').putImageData(grey, 0, 0);
        const img = new Image();
        img.src = small.toDataURL('image/png');
        await img.decode();
        const [fromArray, fromImageData, fromBitmap, fromImg, fromCanvas, fromBigPixels] = await Promise.all([
          window.lm.classify(exact), window.lm.classify(grey), window.lm.classify(bitmap), window.lm.classify(img),
          window.lm.classify(big), window.lm.classify(bigPixels)]);
        return {
          fromArray: fromArray.logits, fromImageData: fromImageData.logits, fromBitmap: fromBitmap.logits, fromImg: fromImg.logits,
          fromCanvas: fromCanvas.logits, fromBigPixels: fromBigPixels.logits,
          bigError: bigPixels.reduce((s, x, i) => s + Math.abs(x - exact[i]), 0) / 784,
          red: [...new Set(toPixels(red, shape))],
          wide: [widePixels[0], widePixels[6 * 28 + 14], widePixels[7 * 28 + 14], widePixels[14 * 28 + 14], widePixels[21 * 28 + 14]],
        };
      }, bytes);
      assert.equal(got.error, undefined, JSON.stringify(got.error));
      assert.deepEqual(got.fromImageData, got.fromArray, 'a 28×28 grey ImageData is the same pixels');
      assert.deepEqual(got.fromBitmap, got.fromArray, 'so is an ImageBitmap of it');
      assert.deepEqual(got.fromImg, got.fromArray, 'and an <img> of it as a PNG');
      assert.deepEqual(got.fromCanvas, got.fromBigPixels, 'classify converts a canvas as toPixels does');
      assert.ok(got.bigError < 0.02, `a 10× picture scales back to about the same pixels (mean error ${got.bigError})`);
      assert.deepEqual(got.red, [Math.fround(0.299)], 'one channel is luminance');
      assert.deepEqual(got.wide, [0, 0, 1, 1, 0], 'a wide picture is fitted and centred over black');

      const refusals = await call(async () => {
        const attempt = (x) => window.lm.classify(x).then(() => null, (e) => ({ code: e.code, message: e.message }));
        const img = new Image(); // not loaded
        return {
          short: await attempt(new Float32Array(10)),
          long: await attempt(new Float32Array(3 * 28 * 28)),
          outOfRange: await attempt(new Float32Array(784).fill(2)),
          unloaded: await attempt(img),
          string: await attempt('a picture'),
        };
      });
      assert.equal(refusals.short?.code, 'ERR_ARG');
      assert.match(refusals.short.message, /want C·S·S = 784 floats \(1·28·28/);
      assert.equal(refusals.long?.code, 'ERR_ARG');
      assert.equal(refusals.outOfRange?.code, 'ERR_ARG');
      assert.match(refusals.outOfRange.message, /want values in \[0, 1\]/);
      assert.equal(refusals.unloaded?.code, 'ERR_ARG');
      assert.match(refusals.unloaded.message, /has not loaded/);
      assert.equal(refusals.string?.code, 'ERR_ARG');
      assert.match(refusals.string.message, /got String/);
      // The model still answers after the refusals.
      assert.equal((await classify(5)).error, undefined);
    }, { timeout: 60_000 });

    it('refuses an index built by other weights, and the wrong export for the kind of model', async () => {
      await load({ model: OTHER, mix: 'S' });
      const other = await call((url) => window.lm.loadIndex(url), INDEX);
      assert.equal(other.error?.code, 'ERR_FORMAT', JSON.stringify(other));
      assert.match(other.error.message, /index built by another model/);
      const noIndex = await call(() => window.lm.indexImage(0));
      assert.equal(noIndex.error?.code, 'ERR_STATE');
      assert.deepEqual((await classify(0, { k: K })).neighbors, [], 'no index, no neighbours');
      const text = await call(async () => {
        const err = await window.lm.generate('It is', { maxTokens: 1 }).finished.then(() => null, (e) => e);
        return { code: err?.code, message: err?.message };
      });
      assert.equal(text.code, 'ERR_STATE');
      assert.match(text.message, /this is a vision model \(matvit/);

      await load({ model: MODEL, mix: 'S' });
      await call((url) => window.lm.loadIndex(url), INDEX);
      const outside = await call(() => window.lm.indexImage(200));
      assert.equal(outside.error?.code, 'ERR_ARG', JSON.stringify(outside));

      await load({ model: '/models/default.matw', mix: 'S' });
      const lm = await classify(0);
      assert.equal(lm.error?.code, 'ERR_STATE');
      assert.match(lm.error.message, /this is a language model/);
    }, { timeout: 60_000 });

    it('the vision demo classifies a test picture, a drawing and an upload, shows neighbours, switches encoder live, and fits a phone', async () => {
      const real = existsSync(DEMO_MODEL) && existsSync(DEMO_INDEX);
      const [model, index, modelPath] = real ? ['/models/matvit.matw', '/models/matvit-xl.mati', DEMO_MODEL] : [MODEL, INDEX, files.model];
      await call(() => MatEdge.clearCache()); // the demo's switch then fetches over the network
      const demo = await browser.context.newPage();
      const demoErrors = [];
      demo.on('pageerror', (err) => demoErrors.push(err.message));
      demo.on('console', (msg) => msg.type() === 'error' && demoErrors.push(msg.text()));
      try {
        const settled = () => demo.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 60_000 });
        const results = (n) => demo.waitForFunction((k) => Number(document.body.dataset.results ?? 0) >= k, n, { timeout: 30_000 });
        await demo.goto(`${server.url}vision.html${real ? '' : `?model=${model}&index=${index}`}`);
        await settled();
        assert.equal(await demo.getAttribute('body', 'data-state'), 'ready', await demo.textContent('#status'));
        const plan = await demo.evaluate(() => document.querySelector('#plan').textContent);
        assert.match(plan, /the planner's choice/);
        assert.match(plan, /vision model/);
        assert.match(await demo.textContent('#index-info'), real ? /pictures .* embedded by XL/ : /^200 pictures .* embedded by XL/);
        const spec = await demo.evaluate(() => document.querySelector('#sizes input:checked').value);

        // A test picture: the answer is matedge classify's for that picture.
        const samples = await (await fetch(new URL('fashion-test.json', server.url))).json();
        await demo.click('#sample-list button >> nth=0');
        await results(1);
        const want = await classifyCLI({ model: modelPath, n: samples.images[0].test_index, mix: spec });
        assert.ok((await demo.textContent('#answer')).startsWith(`${want.name} — `), await demo.textContent('#answer'));
        assert.equal(await demo.locator('#probs li').count(), 10);
        assert.equal(await demo.locator('#neighbours li canvas').count(), 8, 'eight neighbour thumbnails');

        // Switch the encoder live: the same picture again, and the bytes the switch fetched.
        const target = spec === 'XL' ? 'S' : 'XL';
        await demo.click(`#sizes label:has(input[value="${target}"])`);
        await results(2);
        assert.match(await demo.textContent('#switches li'), new RegExp(`^${spec} → ${target}: (fetched [\\d.]+ k?B in \\d+ requests?|nothing to fetch)$`));
        assert.match(await demo.textContent('#stats'), new RegExp(`^${target} encoder · cpu backend`));

        // A drawing: a white stroke across the pad.
        await demo.click('#clear');
        const pad = await demo.locator('#pad').boundingBox();
        await demo.mouse.move(pad.x + pad.width * 0.3, pad.y + pad.height * 0.2);
        await demo.mouse.down();
        await demo.mouse.move(pad.x + pad.width * 0.5, pad.y + pad.height * 0.8, { steps: 8 });
        await demo.mouse.move(pad.x + pad.width * 0.7, pad.y + pad.height * 0.2, { steps: 8 });
        await demo.mouse.up();
        await results(3);
        const drawn = await demo.evaluate(() => {
          const d = document.querySelector('#pad').getContext('2d').getImageData(0, 0, 280, 280).data;
          let white = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] > 200) white++;
          return white;
        });
        assert.ok(drawn > 1000, `the stroke is on the pad (${drawn} white pixels)`);

        // An upload: a PNG of the second test picture.
        const png = await demo.evaluate(async (pixels) => {
          const c = new OffscreenCanvas(28, 28);
          const im = new ImageData(28, 28);
          pixels.forEach((v, i) => im.data.set([v, v, v, 255], 4 * i));
          c.getContext('2d').putImageData(im, 0, 0);
          return [...new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer())];
        }, testPicture(1).bytes);
        await demo.setInputFiles('#upload', { name: 'trouser.png', mimeType: 'image/png', buffer: Buffer.from(png) });
        await results(4);
        assert.equal(await demo.textContent('#image-error'), '');

        await demo.click('#sample-list button >> nth=14'); // a sneaker
        await results(5);
        if (!real) {
          await mkdir(RESULTS, { recursive: true });
          await demo.click('#diagnostics > summary');
          await demo.screenshot({ path: join(RESULTS, 'vision.png'), fullPage: true });
        } else {
          await demo.screenshot({ path: join(RESULTS, 'vision.png'), fullPage: true });
        }
        await demo.setViewportSize({ width: 390, height: 844 });
        const overflow = await demo.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 390 px screen`);
        await demo.screenshot({ path: join(RESULTS, 'vision-phone.png'), fullPage: true });
        assert.deepEqual(demoErrors, []);
      } finally {
        await demo.close();
      }
    }, { timeout: 180_000 });

    it('raised no uncaught errors in the page', () => assert.deepEqual(errors, []));
  });
}
