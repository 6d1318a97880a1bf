// fashion-samples: writes the vision demo's test pictures, demo/fashion-test.json —
// the first `per` pictures of each class of Fashion-MNIST's test set (which
// no index is built from), as base64 u8 pixels [1][28][28] with their labels.
//
//   node web/scripts/fashion-samples.mjs [DIR] [per]
//
// DIR holds t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (default:
// Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist); per
// defaults to 2 (20 pictures, 21 kB of JSON).

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

// The class names of weights/train (FashionMNISTClasses), label order.
const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

const dir = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const per = Number(process.argv[3] ?? 2);
const images = gunzipSync(readFileSync(join(dir, 't10k-images-idx3-ubyte.gz')));
const labels = gunzipSync(readFileSync(join(dir, 't10k-labels-idx1-ubyte.gz')));
const u32 = (b, at) => b.readUInt32BE(at);
if (u32(images, 0) !== 0x803 || u32(labels, 0) !== 0x801) throw new Error(`${dir}: not IDX image and label files`);
const [n, rows, cols] = [u32(images, 4), u32(images, 8), u32(images, 12)];
if (rows !== cols || u32(labels, 4) !== n) throw new Error(`${dir}: ${n} images of ${rows}×${cols}, ${u32(labels, 4)} labels`);
const size = rows * cols;

const picked = [];
const taken = new Array(CLASSES.length).fill(0);
for (let i = 0; i < n && picked.length < per * CLASSES.length; i++) {
  const label = labels[8 + i];
  if (taken[label] >= per) continue;
  taken[label]++;
  picked.push({ label, pixels: images.subarray(16 + i * size, 16 + (i + 1) * size).toString('base64'), test_index: i });
}
picked.sort((a, b) => a.label - b.label || a.test_index - b.test_index);

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'demo', 'fashion-test.json');
writeFileSync(out, `${JSON.stringify({ source: 'Fashion-MNIST test set (t10k), first pictures of each class', classes: CLASSES, size: rows, channels: 1, images: picked })}\n`);
console.log(`wrote ${out}: ${picked.length} pictures`);
