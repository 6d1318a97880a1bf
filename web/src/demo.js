// demo: the page around matedge.js — load the default model, pick a size,
// stream text. body[data-state] is loading | ready | generating | done | error
// (the browser tests wait on it).

import { MatEdge } from './matedge.js';

const MODEL = 'models/default.matw';

const $ = (id) => document.getElementById(id);
let lm = null;
let running = null; // the Generation in progress

function setState(state, message) {
  document.body.dataset.state = state;
  if (message !== undefined) $('status').textContent = message;
}

function setProgress(fraction) {
  const percent = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  $('bar').firstElementChild.style.width = `${percent}%`;
  $('bar').setAttribute('aria-valuenow', String(percent));
}

const megabytes = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} MB`;
const rangeBytes = (ranges) => ranges.reduce((n, r) => n + r.length, 0);
const mixName = (mix) => (mix.every((g) => g === mix[0]) ? mix[0] : mix.join(','));

function onProgress(what) {
  return ({ phase, loaded, total }) => {
    const label = phase === 'wasm' ? 'the module' : what;
    $('status').textContent = total > 0 ? `Downloading ${label}… ${megabytes(loaded)} of ${megabytes(total)}` : `Downloading ${label}… ${megabytes(loaded)}`;
    setProgress(total > 0 ? loaded / total : 0);
  };
}

function renderFacts() {
  const c = lm.info.header.config;
  const facts = [
    ['Mix', mixName(lm.mix.mix)],
    ['Weights for this mix', megabytes(rangeBytes(lm.mix.needed))],
    ['Downloaded', megabytes(lm.downloaded.bytes)],
    ['Whole file', lm.fileSize > 0 ? megabytes(lm.fileSize) : 'unknown'],
    ['Layers × width', `${c.layers} × ${c.dim}`],
    ['FFN widths', c.ffn_widths.join(' / ')],
    ['Context', `${c.context} tokens`],
    ['Vocabulary', `${c.vocab}`],
  ];
  $('facts').replaceChildren(...facts.map(([term, value]) => {
    const row = document.createElement('div');
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = term;
    dd.textContent = value;
    row.append(dt, dd);
    return row;
  }));
}

function renderSizes() {
  const current = mixName(lm.mix.mix);
  const legend = $('sizes').querySelector('legend');
  $('sizes').replaceChildren(legend, ...lm.info.granularities.map((name, g) => {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'size';
    input.value = name;
    input.checked = name === current;
    const strong = document.createElement('strong');
    strong.textContent = name;
    const small = document.createElement('small');
    small.textContent = megabytes(rangeBytes(lm.info.ranges[g]));
    label.append(input, strong, small);
    return label;
  }));
}

function ready(message) {
  renderFacts();
  $('sizes').disabled = false;
  $('generate').disabled = false;
  setProgress(1);
  setState('ready', message);
}

async function start() {
  const mix = new URLSearchParams(location.search).get('mix') ?? 'S';
  try {
    lm = await MatEdge.load({ model: MODEL, mix, onProgress: onProgress(`the ${mix} weights`) });
  } catch (err) {
    setState('error', err.message);
    return;
  }
  renderSizes();
  ready(`Ready: ${mixName(lm.mix.mix)} — ${megabytes(lm.downloaded.bytes)} of ${megabytes(lm.fileSize)} downloaded.`);
}

$('sizes').addEventListener('change', async (e) => {
  const mix = e.target.value;
  const before = lm.downloaded.bytes;
  $('sizes').disabled = true;
  $('generate').disabled = true;
  setState('loading', `Switching to ${mix}…`);
  setProgress(0);
  try {
    await lm.setMix(mix, { onProgress: onProgress(`the rows ${mix} adds`) });
  } catch (err) {
    setState('error', err.message);
    $('sizes').disabled = false;
    return;
  }
  const fetched = lm.downloaded.bytes - before;
  ready(`Ready: ${mix} — ${fetched ? `fetched ${megabytes(fetched)} more` : 'nothing to fetch'}.`);
});

function showStats(gen, final) {
  const parts = [`${gen.tokens.length} tokens`, `${gen.tokensPerSecond.toFixed(0)} tokens/s`];
  if (gen.backend) parts.push(`${gen.backend} backend`);
  parts.push(`mix ${mixName(lm.mix.mix)}`);
  if (final && gen.reason === 'context') parts.push('context full');
  if (final && gen.reason === 'cancelled') parts.push('stopped');
  $('stats').textContent = parts.join(' · ');
}

$('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (running) {
    running.cancel();
    return;
  }
  const prompt = $('prompt').value;
  const gen = lm.generate(prompt, {
    maxTokens: Number($('max-tokens').value) || 1,
    temperature: Math.max(0, Number($('temperature').value) || 0),
    seed: Math.max(0, Math.trunc(Number($('seed').value) || 0)),
  });
  running = gen;
  $('out-prompt').textContent = prompt;
  $('out-text').textContent = '';
  $('stats').textContent = '';
  $('generate').textContent = 'Stop';
  $('sizes').disabled = true;
  setState('generating');
  try {
    for await (const piece of gen) {
      $('out-text').textContent += piece;
      showStats(gen, false);
    }
    await gen.finished;
    showStats(gen, true);
    setState('done');
  } catch (err) {
    setState('error', err.message);
  } finally {
    running = null;
    $('generate').textContent = 'Generate';
    $('sizes').disabled = false;
  }
});

start();
