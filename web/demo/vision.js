// vision: the page around matedge.js for a vision model (MatViT) — plan the
// query encoder, download only its bytes, classify what the user draws,
// uploads or picks, show the nearest pictures of an index XL built, and
// switch the encoder live. body[data-state] is loading | ready | classifying
// | error, and body[data-results] counts the classifications shown (the
// browser tests wait on both).
//
// URL parameters: ?model=URL and ?index=URL (default the two files below),
// ?budget=fast|balanced|best (default balanced), ?mix=SPEC to skip planning.

import { MatEdge, toImageData } from './matedge.js';

const MODEL = 'models/matvit.matw';
const INDEX = 'models/matvit-xl.mati';
// Test pictures for the picker: {source, classes, size, channels, images: [{label, pixels: base64 u8 [C][S][S]}]}.
const SAMPLES = 'fashion-test.json';
const K = 8; // neighbours shown

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let lm = null;
let current = null; // what was classified last: {pixels} (exact) or {pad: true}, and {truth} when known
let busy = Promise.resolve(); // classifications and switches run one after another
let results = 0;
const thumbnails = new Map(); // index entry → ImageData

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// --- formatting ---

const bytes = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} bytes`);
const rate = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toPrecision(2));
const percent = (p) => `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
const mixName = (names) => (names.every((g) => g === names[0]) ? names[0] : names.join(','));

function setState(state, message) {
  document.body.dataset.state = state;
  if (message !== undefined) $('status').textContent = message;
}

function setProgress(fraction) {
  const p = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  $('bar').firstElementChild.style.width = `${p}%`;
  $('bar').setAttribute('aria-valuenow', String(p));
}

// plainError says what went wrong without the runtime's internal words.
function plainError(err) {
  const message = String(err?.message ?? err).replace(/^matedge: /, '').replace(/^\w+: engine: (bad argument|bad state): /, '');
  if (err?.code === 'ERR_FETCH') return `a file could not be downloaded (${message}). Check the connection and try again.`;
  if (err?.code === 'ERR_CLOSED' || err?.code === 'ERR_TRAP') return 'the model stopped; reload the page.';
  return `${message.charAt(0).toUpperCase()}${message.slice(1)}.`.replace(/\.\.$/, '.');
}

// --- the drawing pad ---

const pad = $('pad');
const ink = pad.getContext('2d', { willReadFrequently: true });

function clearPad() {
  ink.fillStyle = '#000';
  ink.fillRect(0, 0, pad.width, pad.height);
}

// Strokes are white on black, about as thick, relative to the picture, as
// Fashion-MNIST's outlines.
function startDrawing() {
  let last = null;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
  };
  const line = (from, to) => {
    ink.strokeStyle = '#fff';
    ink.lineWidth = pad.width / 12;
    ink.lineCap = 'round';
    ink.lineJoin = 'round';
    ink.beginPath();
    ink.moveTo(...from);
    ink.lineTo(...to);
    ink.stroke();
  };
  pad.addEventListener('pointerdown', (e) => {
    if (current && !current.pad) clearPad(); // a picked or uploaded picture: start afresh
    current = { pad: true };
    pad.setPointerCapture(e.pointerId);
    last = at(e);
    line(last, last);
    e.preventDefault();
  });
  pad.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = at(e);
    line(last, p);
    last = p;
  });
  const end = () => {
    if (!last) return;
    last = null;
    classify();
  };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
}

// showOnPad draws a picture onto the pad, scaled to fit, over black;
// pixelated for the small test pictures.
function showOnPad(source, { smooth = true } = {}) {
  clearPad();
  const w = source.naturalWidth || source.width;
  const h = source.naturalHeight || source.height;
  const scale = pad.width / Math.max(w, h);
  ink.imageSmoothingEnabled = smooth;
  ink.drawImage(source, (pad.width - w * scale) / 2, (pad.height - h * scale) / 2, w * scale, h * scale);
  ink.imageSmoothingEnabled = true;
}

// canvasOf puts ImageData on a canvas of its size.
function canvasOf(imageData, label) {
  const c = el('canvas', { width: imageData.width, height: imageData.height, ...(label ? { role: 'img', 'aria-label': label } : { 'aria-hidden': 'true' }) });
  c.getContext('2d').putImageData(imageData, 0, 0);
  return c;
}

// --- classification ---

// classify runs the current picture through the model, then shows its
// classes and its neighbours. Calls queue behind each other.
function classify() {
  const input = current;
  busy = busy.then(() => run(input)).catch(() => {});
  return busy;
}

async function run(input) {
  if (!lm || !input) return;
  setState('classifying');
  try {
    const r = await lm.classify(input.pixels ?? pad, { k: lm.index ? K : 0 });
    renderResult(r, input);
    await renderNeighbours(r.neighbors);
    $('image-error').textContent = '';
    results++;
    document.body.dataset.results = String(results);
    setState('ready');
  } catch (err) {
    $('image-error').textContent = `Could not classify: ${plainError(err)}`;
    setState('ready');
  }
}

function renderResult(r, input) {
  const truth = input.truth === undefined ? '' : ` (true class: ${lm.classes[input.truth]})`;
  $('answer').textContent = `${r.className} — ${percent(r.probs[r.class])}${truth}`;
  $('probs').replaceChildren(...lm.classes.map((name, c) => el('li', { class: c === r.class ? 'top' : '' },
    el('span', { class: 'name' }, name),
    el('span', { class: 'meter', 'aria-hidden': 'true' }, el('span', { style: `width: ${(100 * r.probs[c]).toFixed(1)}%` })),
    el('span', { class: 'value' }, percent(r.probs[c])))));
  $('stats').textContent = `${mixName(lm.mix.mix)} encoder · ${r.backend} backend · ${(r.seconds * 1000).toFixed(1)} ms`;
}

async function renderNeighbours(neighbors) {
  if (!lm.index) return;
  const items = [];
  for (const n of neighbors) {
    let picture = null;
    if (lm.index.has_images) {
      if (!thumbnails.has(n.index)) thumbnails.set(n.index, toImageData(await lm.indexImage(n.index), lm.image));
      picture = canvasOf(thumbnails.get(n.index), `indexed picture ${n.index}: ${n.className}`);
    }
    items.push(el('li', {}, picture, el('span', {}, n.className), el('small', {}, `similarity ${n.score.toFixed(2)}`)));
  }
  $('neighbours').replaceChildren(...items);
}

// --- the encoder ---

function renderSizes() {
  const now = mixName(lm.mix.mix);
  const legend = $('sizes').querySelector('legend');
  const { granularities, header: { config, entries } } = lm.info;
  // What a mix reads from the file: the entries it needs.
  const size = (names) => entries.reduce((n, e) => n + (e.layer < 0 || e.granularity <= granularities.indexOf(names[e.layer]) ? e.length : 0), 0);
  const choices = granularities.map((name) => ({ label: name, spec: name, names: Array(config.layers).fill(name) }));
  // The planner may choose a Mix'n'Match encoder (one granularity per layer).
  if (lm.plan && !choices.some((c) => c.spec === lm.plan.spec)) choices.push({ label: 'Planned', spec: lm.plan.spec, names: lm.plan.mix_names });
  $('sizes').replaceChildren(legend, ...choices.map((c) => el('label', { title: c.spec, ...(c.label !== c.spec ? { class: 'preset' } : {}) },
    el('input', { type: 'radio', name: 'size', value: c.spec, ...(c.spec === now ? { checked: '' } : {}) }),
    el('strong', {}, c.label),
    el('small', {}, bytes(size(c.names))))));
}

function renderPlan() {
  const plan = lm.plan;
  if (!plan) {
    $('plan').replaceChildren(el('p', { class: 'hint' }, `Fixed by the page address: ${mixName(lm.mix.mix)}.`));
    return;
  }
  const now = mixName(lm.mix.mix);
  const speed = plan.predicted_tokens_per_second; // images/s for a vision model
  const body = [el('p', { class: 'headline' }, el('strong', {}, now), ` on the ${plan.backend.toUpperCase()}`,
    now === plan.spec ? ' — the planner\'s choice' : ` — chosen by hand; the planner chose ${plan.spec}`)];
  const accuracy = plan.expected_accuracy ? `, ${(100 * plan.expected_accuracy).toFixed(1)}% accurate on validation pictures` : '';
  body.push(el('p', { class: 'hint' }, `Planned: ${plan.spec}, ${bytes(plan.download_bytes)} to download, about ${rate(speed)} images/s${plan.speed_measured ? '' : ' (assumed)'}${accuracy}.`));
  if (plan.error) body.push(el('p', { class: 'warning' }, `Nothing fits the budget (${plan.constraint}): ${plan.error}. Running the smallest encoder (best effort).`));
  body.push(el('details', { open: '' }, el('summary', {}, 'Why the planner chose it'), el('ul', { class: 'reasons' }, ...plan.reasons.map((r) => el('li', {}, r)))));
  $('plan').replaceChildren(...body);
}

function renderDevice() {
  const caps = lm.capabilities;
  const rows = [['GPU', lm.gpu ? `${lm.gpu.name}${lm.gpu.adapterType === 'cpu' ? ' (software)' : ''}` : `none — ${lm.gpuReason || 'no WebGPU adapter'}`]];
  if (caps) {
    rows.push(['Cores', caps.logicalCores ? String(caps.logicalCores) : 'not reported']);
    for (const b of caps.benchmarks) rows.push([`${b.backend.toUpperCase()} benchmark`, `${rate(b.imagesPerSecond ?? 0)} images/s on S · ${rate(b.gflops)} GFLOP/s`]);
  }
  $('device').replaceChildren(...rows.map(([t, v]) => el('div', {}, el('dt', {}, t), el('dd', {}, v))));
  const c = lm.info.header.config;
  const acc = quality();
  $('model-card').textContent = `A MatViT of ${c.layers} layers of width ${c.dim}: ${c.image.size}×${c.image.size} pictures`
    + ` (${c.image.channels === 1 ? 'grey' : 'colour'}) in ${c.context} patches of ${c.image.patch}×${c.image.patch}, ${c.vocab} classes.`
    + (acc.length ? ` Validation accuracy: ${acc.map((q) => `${q.mix} ${(100 * q.accuracy).toFixed(1)}%`).join(', ')}.` : '');
}

function quality() {
  try {
    const table = JSON.parse(lm.info.header.meta?.quality ?? '[]');
    return Array.isArray(table) ? table.filter((q) => q.accuracy > 0).map((q) => ({ ...q, mix: Array.isArray(q.mix) ? mixName(q.mix) : String(q.mix) })) : [];
  } catch {
    return [];
  }
}

function onProgress({ phase, loaded, total, mix, overall }) {
  if (phase === 'wasm') {
    $('status').textContent = `Downloading the module… ${bytes(loaded)}${total > 0 ? ` of ${bytes(total)}` : ''}`;
  } else {
    $('status').textContent = `Fetching the ${mix} encoder… ${bytes(loaded)} of ${bytes(total)}`;
  }
  setProgress(overall.total > 0 ? overall.loaded / overall.total : total > 0 ? loaded / total : 0);
}

function fetched(before) {
  const net = lm.downloaded.bytes - before.bytes;
  const requests = lm.downloaded.requests - before.requests;
  const cached = lm.downloaded.cachedBytes - before.cachedBytes;
  if (!net && !cached) return 'nothing to fetch';
  return [net && `fetched ${bytes(net)} in ${requests} request${requests === 1 ? '' : 's'}`, cached && `${bytes(cached)} from the cache`].filter(Boolean).join(', ');
}

$('sizes').addEventListener('change', (e) => {
  const mix = e.target.value;
  busy = busy.then(async () => {
    const from = mixName(lm.mix.mix);
    const before = { ...lm.downloaded };
    $('sizes').disabled = true;
    setState('loading', `Switching the encoder to ${mix}…`);
    setProgress(0);
    try {
      await lm.setMix(mix, { onProgress: (p) => onProgress({ ...p, phase: 'weights' }) });
      $('size-error').textContent = '';
      const what = fetched(before);
      $('switches').prepend(el('li', {}, `${from} → ${mix}: ${what}`));
      setProgress(1);
      setState('ready', `Ready: ${mix} — ${what}.`);
    } catch (err) {
      $('size-error').textContent = `Could not switch to ${mix}: ${plainError(err)}`;
      setState('ready', `Still running ${mixName(lm.mix.mix)}.`);
    }
    renderSizes();
    renderPlan();
    $('sizes').disabled = false;
  });
  classify(); // the same picture, by the new encoder
});

// --- inputs ---

$('clear').addEventListener('click', () => {
  clearPad();
  current = null;
  $('answer').textContent = 'Draw something, or pick a picture below.';
  $('probs').replaceChildren();
  $('neighbours').replaceChildren();
  $('stats').textContent = '';
});

$('upload').addEventListener('change', async () => {
  const file = $('upload').files[0];
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file);
    showOnPad(bitmap);
    bitmap.close();
  } catch {
    $('image-error').textContent = `Could not read ${file.name} as a picture.`;
    return;
  }
  current = { pad: true };
  classify();
});

async function loadSamples() {
  let set;
  try {
    const response = await fetch(SAMPLES);
    if (!response.ok) return; // no test pictures with this build: the picker stays hidden
    set = await response.json();
  } catch {
    return;
  }
  const shape = { size: set.size, channels: set.channels };
  $('sample-list').replaceChildren(...set.images.map(({ label, pixels }, i) => {
    const u8 = Uint8Array.from(atob(pixels), (ch) => ch.charCodeAt(0));
    const picture = canvasOf(toImageData(u8, shape));
    const button = el('button', { type: 'button', class: 'thumb', 'aria-label': `Test picture ${i + 1}: ${set.classes[label]}`, title: set.classes[label] }, picture);
    button.addEventListener('click', () => {
      showOnPad(picture, { smooth: false });
      // The model's own size and channels: classify the exact pixels, not the pad's resampling.
      const exact = lm && lm.image.size === set.size && lm.image.channels === set.channels;
      current = exact ? { pixels: Float32Array.from(u8, (v) => v / 255), truth: label } : { pad: true, truth: label };
      classify();
    });
    return button;
  }));
  $('samples').hidden = false;
}

// --- start ---

async function start() {
  clearPad();
  startDrawing();
  loadSamples();
  try {
    lm = await MatEdge.load({
      model: params.get('model') ?? MODEL,
      mix: params.get('mix') ?? 'auto',
      budget: params.get('budget') ?? 'balanced',
      bestEffort: true,
      onProgress,
    });
    if (!lm.isVision) throw new Error(`${params.get('model') ?? MODEL} is a language model; the text demo runs it`);
  } catch (err) {
    const hint = /HTTP 404/.test(err?.message) && !params.get('model')
      ? ' The vision model is not served here: start the server with bin/matedge serve -model weights/defaultmodel/matvit.matw -model weights/defaultmodel/matvit-xl.mati.' : '';
    setState('error', `Could not load the model: ${plainError(err)}${hint}`);
    return;
  }
  renderDevice();
  renderPlan();
  renderSizes();
  $('sizes').disabled = false;
  setProgress(1);
  const loaded = `Ready: ${mixName(lm.mix.mix)} encoder — ${fetched({ bytes: 0, requests: 0, cachedBytes: 0 })}`;
  setState('loading', `${loaded}; loading the index…`);
  try {
    const index = await lm.loadIndex(params.get('index') ?? INDEX);
    $('index-info').textContent = `${index.count} pictures (${bytes(index.bytes)}), embedded by ${mixName(index.mix)}; `
      + `each query is embedded by the encoder chosen below and compared by cosine similarity.`;
  } catch (err) {
    $('index-info').textContent = `No index: ${plainError(err)}`;
  }
  setState('ready', `${loaded}.`);
}

start();
