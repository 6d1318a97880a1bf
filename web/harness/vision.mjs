// vision: what the vision tests need from the Go side — tiny MatViT models
// trained for a few steps by `matedge train`, retrieval indexes by `matedge
// index`, and `matedge classify -json` / `matedge retrieve -json` as the
// oracle — and Fashion-MNIST's test pictures, read here from Debian's
// dataset-fashion-mnist (the same bytes the CLI's test:N reads).

import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';

import { BIN } from './server.mjs';

const run = promisify(execFile);

/** FASHION is where Debian's dataset-fashion-mnist puts the IDX files. */
export const FASHION = process.env.MATEDGE_FASHION_MNIST || '/usr/share/datasets/fashion-mnist';

/** missingVision returns why the vision tests cannot run ("needs …"), or null. */
export async function missingVision() {
  if (!existsSync(join(FASHION, 't10k-images-idx3-ubyte.gz'))) return `needs Fashion-MNIST in ${FASHION} (apt-get install dataset-fashion-mnist)`;
  for (const command of ['classify', 'retrieve', 'index']) {
    const help = await run(BIN, [command, '-help']).then((r) => r.stdout + r.stderr, (err) => `${err.stdout ?? ''}${err.stderr ?? ''}`);
    if (/unknown command/i.test(help) || !help.includes('-json')) return `needs ${BIN} with the ${command} command: run ./build.sh`;
  }
  return null;
}

/**
 * trainTiny trains a MatViT of width 16, 2 layers, 7×7 patches of
 * Fashion-MNIST's 28×28 pictures, for a few steps (its weights differ by
 * seed), and returns its path. About half a minute on a busy machine: most
 * of it reads the data set and measures every preset mix.
 */
export async function trainTiny(dir, { seed = 1, name = `tiny-${seed}.matw` } = {}) {
  const out = join(dir, name);
  await run(BIN, ['train', '-data', 'fashion-mnist', '-patch', '7', '-dim', '16', '-layers', '2', '-heads', '2', '-hidden', '64',
    '-steps', '3', '-batch', '4', '-eval-every', '1000', '-checkpoint-every', '1000', '-seed', String(seed), '-out', out,
    '-checkpoint', join(dir, `${name}.ckpt`)], { timeout: 180_000 });
  return out;
}

/** buildIndex runs `matedge index` on the first `limit` training pictures and returns the .mati's path. */
export async function buildIndex(model, out, { limit = 200, mix = 'XL', dtype = 'f16', images = true } = {}) {
  await run(BIN, ['index', '-q', '-model', model, '-data', 'fashion-mnist', '-split', 'train', '-limit', String(limit), '-mix', mix,
    '-dtype', dtype, ...(images ? ['-images'] : []), '-out', out], { timeout: 180_000 });
  return out;
}

/** classifyCLI runs `matedge classify -json` on test picture n. */
export async function classifyCLI({ model, n, mix, backend = 'cpu' }) {
  const { stdout } = await run(BIN, ['classify', '-q', '-json', '-model', model, '-image', `test:${n}`, '-mix', mix, '-backend', backend], { timeout: 60_000 });
  return JSON.parse(stdout);
}

/** retrieveCLI runs `matedge retrieve -json` on test picture n. */
export async function retrieveCLI({ model, index, n, mix, k, backend = 'cpu' }) {
  const { stdout } = await run(BIN, ['retrieve', '-q', '-json', '-model', model, '-index', index, '-image', `test:${n}`, '-mix', mix,
    '-k', String(k), '-backend', backend], { timeout: 60_000 });
  return JSON.parse(stdout);
}

let testSet = null;

/** testPicture returns Fashion-MNIST test picture n: {label, bytes (u8 [28][28])}. */
export function testPicture(n) {
  testSet ??= {
    images: gunzipSync(readFileSync(join(FASHION, 't10k-images-idx3-ubyte.gz'))),
    labels: gunzipSync(readFileSync(join(FASHION, 't10k-labels-idx1-ubyte.gz'))),
  };
  const size = 28 * 28;
  return { label: testSet.labels[8 + n], bytes: [...testSet.images.subarray(16 + n * size, 16 + (n + 1) * size)] };
}
