// The contract between matedge.wasm and the web runtime, checked on the JS
// side as host/abi_doc_test.go checks it on the Go side: the exports
// wasm/ABI.md lists are the runtime's EXPORTS and the built module's; every
// import of the built module is provided by the runtime's import objects; the
// kernels the runtime forwards are those ABI.md lists. Runs in Node, on
// dist/ (./build.sh builds it before the browser tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { EXPORTS } from '../src/abi.js';
import { KERNEL_FUNCTIONS, KernelHost } from '../src/kernels.js';
import { WASI } from '../src/wasi.js';
import { noGPU } from '../src/webgpu.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const module = await WebAssembly.compile(await readFile(`${root}/dist/matedge.wasm`));

// namesIn returns the backticked names in the first column of the first
// table after the line `heading` of a Markdown file ("`a`, `b`" gives both).
async function namesIn(file, heading) {
  const lines = (await readFile(`${root}/${file}`, 'utf8')).split('\n');
  let i = lines.indexOf(heading);
  assert.ok(i >= 0, `${file} has no line ${heading}`);
  while (!lines[i].startsWith('|')) i++;
  const names = [];
  for (i += 2; lines[i]?.startsWith('|'); i++) {
    const first = lines[i].split('|')[1];
    for (const m of first.matchAll(/`(\w+)`/g)) names.push(m[1]);
  }
  return names;
}

const sorted = (names) => [...new Set(names)].sort();

test('the exports of wasm/ABI.md are the runtime\'s EXPORTS and the module\'s', async () => {
  const documented = await namesIn('wasm/ABI.md', '## Exports, in calling order');
  const wasiOwn = ['_initialize', 'memory'];
  assert.deepEqual(sorted(EXPORTS.filter((n) => !wasiOwn.includes(n))), sorted(documented));
  const built = WebAssembly.Module.exports(module).map((e) => e.name);
  assert.deepEqual(sorted(built), sorted([...documented, ...wasiOwn]), 'the built module exports exactly what ABI.md lists');
});

test('every import of the module is provided by the runtime', () => {
  const kernels = new KernelHost(null);
  const provided = {
    wasi_snapshot_preview1: new WASI({}).importsFor(module),
    webgpu: noGPU().imports(() => null),
    kernels: kernels.imports(),
  };
  const imports = WebAssembly.Module.imports(module);
  assert.ok(imports.length > 0);
  for (const imp of imports) {
    assert.ok(imp.module in provided, `the module imports from ${imp.module}, which the runtime does not provide`);
    assert.equal(typeof provided[imp.module][imp.name], 'function', `${imp.module}.${imp.name} is not provided`);
  }
});

test('the kernels the runtime forwards are those wasm/ABI.md lists', async () => {
  const documented = await namesIn('wasm/ABI.md', '## Imports');
  assert.deepEqual(sorted(['version', ...KERNEL_FUNCTIONS]), sorted(documented));
  const imported = WebAssembly.Module.imports(module).filter((i) => i.module === 'kernels').map((i) => i.name);
  assert.deepEqual(sorted(imported), sorted(documented));
});
