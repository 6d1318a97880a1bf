// image: pictures in and out of a vision model's pixel layout, [C][S][S]
// values in [0, 1] (model/vision.go): a browser image is drawn onto an S×S
// canvas (scaled to fill it), over black, and read back as luminance for a
// one-channel model or as R, G, B for three; the index's stored u8 pixels
// come back out as ImageData for a thumbnail.

import { MatEdgeError } from './abi.js';

// Rec. 601 luma, as Fashion-MNIST's (and most greyscale converters') weights.
const LUMA = [0.299, 0.587, 0.114];

const argError = (message) => new MatEdgeError(`matedge: ${message}`, { code: 'ERR_ARG' });

/** isImageSource reports whether x is something a canvas can draw (or ImageData). */
function isImageSource(x) {
  return ['ImageData', 'ImageBitmap', 'HTMLCanvasElement', 'OffscreenCanvas', 'HTMLImageElement', 'SVGImageElement', 'HTMLVideoElement', 'VideoFrame']
    .some((name) => typeof globalThis[name] === 'function' && x instanceof globalThis[name]);
}

/**
 * toPixels turns image into the Float32Array [C][S][S] a model of `size` and
 * `channels` (its config.image) takes. A Float32Array is taken as it is
 * (already [C][S][S] in [0, 1]; the module refuses a wrong length with
 * ERR_ARG). An ImageData, ImageBitmap, canvas, or loaded <img> is scaled to
 * fit S×S (centred, its aspect kept) over black — transparent parts are black, as in Fashion-MNIST,
 * whose objects are light on black — and read as luminance (one channel) or
 * RGB (three). Drawing needs OffscreenCanvas (browsers; not Node).
 */
export function toPixels(image, { size, channels }) {
  if (image instanceof Float32Array) return image;
  if (!isImageSource(image)) {
    throw argError(`classify: an image must be a Float32Array [C][S][S], an ImageData, an ImageBitmap, a canvas or an <img>; got ${image?.constructor?.name ?? typeof image}`);
  }
  if (typeof OffscreenCanvas !== 'function') throw argError('classify: converting an image needs OffscreenCanvas; pass a Float32Array [C][S][S] instead');
  if (typeof HTMLImageElement === 'function' && image instanceof HTMLImageElement && !(image.complete && image.naturalWidth > 0)) {
    throw argError('classify: the <img> has not loaded (or failed to): await img.decode() first');
  }
  let source = image;
  if (image instanceof ImageData) {
    // drawImage cannot draw ImageData: put it on a canvas of its own size first.
    source = new OffscreenCanvas(image.width, image.height);
    source.getContext('2d').putImageData(image, 0, 0);
  }
  const canvas = new OffscreenCanvas(size, size);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, size, size);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  // Fit the longer side, centred: a wide picture is not squashed.
  const w = image.naturalWidth || image.videoWidth || image.displayWidth || image.width;
  const h = image.naturalHeight || image.videoHeight || image.displayHeight || image.height;
  if (!(w > 0 && h > 0)) throw argError(`classify: the image is ${w}×${h} pixels`);
  const scale = size / Math.max(w, h);
  ctx.drawImage(source, (size - w * scale) / 2, (size - h * scale) / 2, w * scale, h * scale);
  const rgba = ctx.getImageData(0, 0, size, size).data;
  const n = size * size;
  const out = new Float32Array(channels * n);
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    if (channels === 1) {
      out[i] = (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b) / 255;
    } else {
      out[i] = r / 255;
      out[n + i] = g / 255;
      out[2 * n + i] = b / 255;
    }
  }
  return out;
}

/**
 * toImageData turns u8 pixels [C][S][S] (an index's stored image, from
 * MatEdge.indexImage) into an S×S ImageData to put on a canvas: grey for
 * one channel, RGB for three.
 */
export function toImageData(pixels, { size, channels }) {
  const n = size * size;
  if (pixels.length !== channels * n) throw argError(`toImageData: ${pixels.length} pixels, want C·S·S = ${channels}·${size}·${size} = ${channels * n}`);
  const rgba = new Uint8ClampedArray(4 * n);
  for (let i = 0; i < n; i++) {
    const c = channels === 1 ? [pixels[i], pixels[i], pixels[i]] : [pixels[i], pixels[n + i], pixels[2 * n + i]];
    rgba.set(c, 4 * i);
    rgba[4 * i + 3] = 255;
  }
  return new ImageData(rgba, size, size);
}
