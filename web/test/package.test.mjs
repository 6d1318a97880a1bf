// The npm package as a web developer gets it: ./build.sh's tarball installed
// offline into an empty project (npm pointed at a closed port, so any
// registry access fails), then used by its name — type-checked by tsc,
// generating text in Node (in a worker thread and in-thread) and in headless
// Chromium (a plain <script type="module"> with an import map, and an
// esbuild bundle), each giving `matedge generate`'s greedy tokens.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { launch, missingBrowser } from '../harness/browser.mjs';
import { generate, missingBuild, missingPackage, packageTarball, startServer } from '../harness/server.mjs';

const run = promisify(execFile);
const CI = process.env.CI === 'true';
const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
const MODEL_FILE = join(WEB, '..', 'weights', 'defaultmodel', 'default.matw');
const PROMPT = 'It is a truth';
const N = 16;

const missing = missingBuild() ?? missingPackage() ?? (await missingBrowser());

// The consumer's code: the same in Node and in the page.
const USE = `
export async function use(MatEdge, model, options = {}) {
  const lm = await MatEdge.load({ model, mix: 'S', ...options });
  const gen = lm.generate(${JSON.stringify(PROMPT)}, { maxTokens: ${N}, temperature: 0 });
  let text = '';
  for await (const piece of gen) text += piece;
  lm.close();
  return { text, tokens: gen.tokens, backend: gen.backend };
}
`;

if (missing && CI) {
  it('the npm package', () => assert.fail(`${missing} (CI=true: a missing dependency is a failure)`));
} else {
  describe('the npm package', { skip: missing ?? false, timeout: 180_000 }, () => {
    let project;
    let want;

    before(async () => {
      project = await mkdtemp(join(tmpdir(), 'matedge-package-'));
      await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
      await run('npm', ['install', packageTarball(), '--offline', '--no-audit', '--no-fund', '--ignore-scripts',
        '--registry', 'http://127.0.0.1:9/', '--cache', join(project, '.npm-cache')], { cwd: project, timeout: 60_000 });
      await writeFile(join(project, 'use.mjs'), USE);
      want = await generate({ prompt: PROMPT, n: N, mix: 'S' });
    }, { timeout: 90_000 });
    after(() => project && rm(project, { recursive: true, force: true }));

    it('installs offline with the module and the types inside', async () => {
      const files = await readdir(join(project, 'node_modules', 'matedge'));
      for (const f of ['package.json', 'matedge.js', 'matedge.d.ts', 'matedge.wasm', 'worker.js', 'node.js', 'worker-node.js']) {
        assert.ok(files.includes(f), `the package lacks ${f}: ${files.join(' ')}`);
      }
      const manifest = JSON.parse(await readFile(join(project, 'node_modules', 'matedge', 'package.json'), 'utf8'));
      assert.equal(manifest.type, 'module');
      assert.deepEqual(Object.keys(manifest.dependencies ?? {}), []);
    });

    it('type-checks a TypeScript consumer, and refuses a wrong one', async () => {
      const tsc = join(WEB, 'node_modules', '.bin', 'tsc');
      await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
        compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, lib: ['es2022', 'dom'], types: [] },
        files: ['good.ts'],
      }));
      await writeFile(join(project, 'good.ts'), `import { MatEdge, MatEdgeError, toImageData, type ClassifyResult, type IndexInfo, type Plan } from 'matedge';
const lm: MatEdge = await MatEdge.load({ model: 'models/default.matw', budget: 'fast', inThread: true });
const plan: Plan | null = lm.plan;
for await (const piece of lm.generate('It is', { maxTokens: 8, temperature: 0 })) console.log(piece.length, plan?.spec);
const e = new Error() as MatEdgeError;
console.log(e.code);
const vit = await MatEdge.load({ model: 'models/matvit.matw', inThread: true });
if (vit.isVision && vit.image) {
  const r: ClassifyResult = await vit.classify(new Float32Array(vit.image.channels * vit.image.size ** 2), { k: 3, backend: 'cpu' });
  const info: IndexInfo = await vit.loadIndex('models/matvit-xl.mati');
  const img: ImageData = toImageData(await vit.indexImage(r.neighbors[0]?.index ?? 0), vit.image);
  console.log(r.className, r.probs[r.class], info.count, img.width, vit.classes[0], vit.plan?.expected_accuracy);
}
`);
      await run(tsc, ['-p', project], { cwd: project, timeout: 60_000 }).catch((err) => assert.fail(`tsc: ${err.stdout}${err.stderr}`));
      await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
        compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, lib: ['es2022', 'dom'], types: [] },
        files: ['bad.ts'],
      }));
      await writeFile(join(project, 'bad.ts'), `import { MatEdge } from 'matedge';
const lm = await MatEdge.load({ model: 1 });
lm.generate('x', { maxTokens: 'many' });
`);
      await assert.rejects(run(tsc, ['-p', project], { cwd: project, timeout: 60_000 }), (err) => {
        assert.match(err.stdout, /bad\.ts.*error TS2322/s);
        return true;
      });
    });

    for (const inThread of [false, true]) {
      it(`generates matedge generate's greedy tokens in Node (${inThread ? 'in-thread' : 'worker thread'})`, async () => {
        await writeFile(join(project, 'node.mjs'), `import { MatEdge } from 'matedge';
import { use } from './use.mjs';
console.log(JSON.stringify(await use(MatEdge, process.argv[2], { inThread: ${inThread} })));
`);
        // The process must exit by itself once done: an idle worker thread does not hold it.
        const { stdout } = await run('node', ['node.mjs', MODEL_FILE], { cwd: project, timeout: 60_000 });
        const got = JSON.parse(stdout);
        assert.deepEqual(got.tokens, want.tokens);
        assert.equal(got.text, want.text);
        assert.equal(got.backend, 'cpu');
      });
    }

    describe('in Chromium', () => {
      let server;
      let browser;
      before(async () => {
        // A plain page: an import map names the package, a module script uses it.
        await writeFile(join(project, 'index.html'), `<!doctype html><title>consumer</title>
<script type="importmap">{"imports": {"matedge": "./node_modules/matedge/matedge.js"}}</script>
<script type="module">
import { MatEdge } from 'matedge';
import { use } from './use.mjs';
window.result = use(MatEdge, 'models/default.matw');
</script>`);
        // A bundle: esbuild resolves 'matedge' through the package's exports (browser
        // conditions: no Node module may leak in); the worker, its imports and the
        // module are copied beside the bundle, as the package README says.
        const bundle = join(project, 'bundle');
        await mkdir(bundle);
        await writeFile(join(project, 'app.mjs'), `import { MatEdge } from 'matedge';
import { use } from './use.mjs';
window.result = use(MatEdge, '/models/default.matw');
`);
        await run(join(WEB, 'node_modules', '.bin', 'esbuild'), ['app.mjs', '--bundle', '--format=esm', '--platform=browser', `--outfile=${join(bundle, 'app.js')}`],
          { cwd: project, timeout: 60_000 });
        const pkg = join(project, 'node_modules', 'matedge');
        for (const f of await readdir(pkg)) {
          if (/\.(js|wasm)$/.test(f) && !['node.js', 'worker-node.js', 'files.js'].includes(f)) await cp(join(pkg, f), join(bundle, f));
        }
        await writeFile(join(bundle, 'index.html'), '<!doctype html><title>bundle</title><script type="module" src="app.js"></script>');
        server = await startServer({ dist: project });
        browser = await launch();
      }, { timeout: 90_000 });
      after(async () => {
        await browser?.close();
        await server?.stop();
      }, { timeout: 20_000 });

      for (const [name, path] of [['a plain module script', ''], ['an esbuild bundle', 'bundle/']]) {
        it(`generates matedge generate's greedy tokens from ${name}`, async () => {
          const page = await browser.context.newPage();
          const errors = [];
          page.on('pageerror', (err) => errors.push(err.message));
          await page.goto(`${server.url}${path}`);
          const got = await page.evaluate(() => window.result);
          await page.close();
          assert.deepEqual(errors, []);
          assert.deepEqual(got.tokens, want.tokens);
          assert.equal(got.text, want.text);
        });
      }

      it('lists a cached model with its size and deletes it', async () => {
        const page = await browser.context.newPage();
        await page.goto(server.url);
        await page.evaluate(() => window.result);
        const got = await page.evaluate(async () => {
          const { MatEdge } = await import('matedge');
          const before = await MatEdge.cachedModels();
          const freed = await MatEdge.deleteCachedModel('models/default.matw');
          return { before, freed, after: await MatEdge.cachedModels(), again: await MatEdge.deleteCachedModel('models/default.matw') };
        });
        await page.close();
        assert.equal(got.before.length, 1, JSON.stringify(got.before));
        const [model] = got.before;
        assert.equal(model.url, `${server.url}models/default.matw`);
        assert.match(model.identity, /^[0-9a-f]{64}$/);
        // S was fetched (mix 'S'): its bytes and the header are cached, in blocks.
        assert.ok(model.blocks > 0 && model.bytes > 1_000_000 && model.bytes < 7_890_688, JSON.stringify(model));
        assert.equal(got.freed, model.bytes);
        assert.deepEqual(got.after, []);
        assert.equal(got.again, 0);
      });

      it('keeps Node modules out of the browser bundle', async () => {
        const js = await readFile(join(project, 'bundle', 'app.js'), 'utf8');
        assert.doesNotMatch(js, /node:(worker_threads|fs|url)/);
      });
    });
  });
}
