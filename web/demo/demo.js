// demo: the page around matedge.js — measure the device, plan, download the
// plan, switch size live, stream text. body[data-state] is loading | ready |
// generating | done | error (the browser tests wait on it).
//
// URL parameters: ?budget=fast|balanced|best (default balanced), ?mix=SPEC
// to skip planning and load that mix.
//
// window.demo holds the model and the last Generation, for the console and
// the browser tests ({lm, generation}).

import { MatEdge } from './matedge.js';

const MODEL = 'models/default.matw';

const $ = (id) => document.getElementById(id);
// The speculation toggle's hint, shown again when a run goes without a draft.
const SPEC_HINT = $('spec-stats').textContent;
const SVG = 'http://www.w3.org/2000/svg';
let lm = null;
let running = null; // the Generation in progress
window.demo = { lm: null, generation: null };
// plainRates holds the tokens/s of the last run without speculative decoding,
// by mix, for the speed-up a speculative run of the same mix reports.
const plainRates = new Map();

/** el makes an element: el('dd', {class: 'x'}, 'text', child…). */
function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// --- formatting ---

const megabytes = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} MB`;
const size = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : megabytes(n));
const rate = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toPrecision(2));
const count = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(0)} k` : String(n));
const rangeBytes = (ranges) => ranges.reduce((n, r) => n + r.length, 0);
const mixName = (names) => (names.every((g) => g === names[0]) ? names[0] : names.join(','));

function setState(state, message) {
  document.body.dataset.state = state;
  if (message !== undefined) $('status').textContent = message;
}

function setProgress(fraction) {
  const percent = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  $('bar').firstElementChild.style.width = `${percent}%`;
  $('bar').setAttribute('aria-valuenow', String(percent));
}

// facts fills a <dl class="facts"> with [term, value, {title, wide}] rows.
function facts(target, rows) {
  target.replaceChildren(...rows.map(([term, value, { title, wide } = {}]) =>
    el('div', { ...(title ? { title } : {}), ...(wide ? { class: 'wide' } : {}) }, el('dt', {}, term), el('dd', {}, value))));
}

// --- the model: sizes, bytes and quality of mixes ---

// A choice is a mix the size control offers: {label, spec, names}.
function choices() {
  const { granularities: names, header: { config } } = lm.info;
  const layers = config.layers;
  const top = names.length - 1;
  const list = names.map((name) => ({ label: name, spec: name, names: Array(layers).fill(name) }));
  const presets = [
    ['Ramp ↑', (l) => Math.floor((l * names.length) / layers)],
    ['Ramp ↓', (l) => top - Math.floor((l * names.length) / layers)],
    ['Sandwich', (l) => (l === 0 || l === layers - 1 ? top : 0)],
  ];
  if (lm.plan) presets.unshift(['Planned', (l) => lm.plan.mix[l]]);
  for (const [label, pick] of presets) {
    const mixNames = Array.from({ length: layers }, (_, l) => names[pick(l)]);
    const spec = mixName(mixNames);
    if (!list.some((c) => c.spec === spec)) list.push({ label, spec, names: mixNames });
  }
  return list;
}

// mixBytes is what a mix reads from the file: the entries it needs.
function mixBytes(mixNames) {
  const g = mixNames.map((n) => lm.info.granularities.indexOf(n));
  return lm.info.header.entries.reduce((n, e) => n + (e.layer < 0 || e.granularity <= g[e.layer] ? e.length : 0), 0);
}

// nonEmbeddingParams is model.Config.NonEmbeddingParams.
function nonEmbeddingParams(mixNames) {
  const c = lm.info.header.config;
  return mixNames.reduce((n, name) => n + 2 * c.dim + 4 * c.dim * c.dim + 3 * c.ffn_widths[lm.info.granularities.indexOf(name)] * c.dim, c.dim);
}

// quality is the header's quality table ({mix, non_embedding_params,
// loss_nats_per_token, …} per measured mix), or null.
function quality() {
  try {
    const table = JSON.parse(lm.info.header.meta?.quality ?? 'null');
    return Array.isArray(table) && table.length ? table.map((q) => ({ ...q, spec: Array.isArray(q.mix) ? mixName(q.mix) : String(q.mix) })) : null;
  } catch {
    return null;
  }
}

// --- cards ---

function renderDevice(caps) {
  const a = caps.adapter;
  const rows = [];
  if (a) {
    rows.push(['GPU', `${a.description || [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unnamed adapter'}${a.isFallbackAdapter ? ' (software)' : ''}`]);
    rows.push(['Per buffer', megabytes(a.limits.maxStorageBufferBindingSize), { title: 'maxStorageBufferBindingSize' }]);
    rows.push(['Features', a.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ') || 'none of note']);
  } else {
    rows.push(['GPU', `none — ${lm?.gpuReason || 'no WebGPU adapter'}`]);
  }
  rows.push(['Memory', caps.deviceMemoryBytes ? `${size(caps.deviceMemoryBytes)} (browser-rounded)` : 'not reported']);
  rows.push(['Cores', caps.logicalCores ? String(caps.logicalCores) : 'not reported']);
  rows.push(['Storage free', caps.storageQuotaBytes ? size(caps.storageQuotaBytes) : 'not reported']);
  const n = caps.network;
  rows.push(['Network', n.effectiveType || n.downlink ? `${n.effectiveType || '?'}${n.downlink ? `, ${n.downlink} Mbit/s` : ''}${n.saveData ? ', save-data' : ''}` : 'not reported']);
  for (const b of caps.benchmarks) {
    rows.push([`${b.backend.toUpperCase()} benchmark`,
      `${rate(b.tokensPerSecond)} tokens/s on S · ${rate(b.gbps)} GB/s · ${rate(b.gflops)} GFLOP/s · measured in ${b.durationMillis.toFixed(0)} ms`,
      { title: b.method, wide: true }]);
  }
  facts($('device'), rows);
}

// renderPlan shows the mix that runs: the plan's, or one chosen by hand
// (then the plan's choice is named beside it).
function renderPlan(plan) {
  const current = lm?.mix ? mixName(lm.mix.mix) : plan.spec;
  const byHand = current !== plan.spec;
  const names = byHand ? lm.mix.mix : plan.mix_names;
  const body = [
    el('p', { class: 'headline' }, el('strong', {}, current), ` on the ${plan.backend.toUpperCase()}`,
      byHand ? ` — chosen by hand; the planner chose ${plan.spec}` : ' — the planner\'s choice'),
  ];
  const dl = el('dl', { class: 'facts' });
  facts(dl, [
    ['Download', megabytes(byHand ? mixBytes(names) : plan.download_bytes)],
    ...(byHand ? [] : [['Memory', megabytes(plan.memory_bytes)]]),
    ['Expected speed', byHand ? `${rate(plan.predicted_tokens_per_second)} tokens/s predicted for ${plan.spec}` : `${rate(plan.predicted_tokens_per_second)} tokens/s${plan.speed_measured ? '' : ' (assumed)'}`],
    ['Parameters', `${count(byHand ? nonEmbeddingParams(names) : plan.non_embedding_params)} non-embedding`],
  ]);
  body.push(dl);
  if (plan.error) body.push(el('p', { class: 'warning' }, `Nothing fits the budget (${plan.constraint}): ${plan.error}. Running the smallest plan (best effort).`));
  body.push(el('details', { open: '' }, el('summary', {}, 'Why'), el('ul', { class: 'reasons' }, ...plan.reasons.map((r) => el('li', {}, r)))));
  $('plan').replaceChildren(...body);
}

function renderSizes() {
  const current = mixName(lm.mix.mix);
  const legend = $('sizes').querySelector('legend');
  $('sizes').replaceChildren(legend, ...choices().map((c) => el('label', { title: c.spec, ...(c.label !== c.spec ? { class: 'preset' } : {}) },
    el('input', { type: 'radio', name: 'size', value: c.spec, ...(c.spec === current ? { checked: '' } : {}) }),
    el('strong', {}, c.label),
    el('small', {}, megabytes(mixBytes(c.names))))));
}

// renderChart draws size against validation loss from the header's quality
// table, or against parameter count when the model has none, and marks the
// current mix.
function renderChart() {
  const table = quality();
  const current = mixName(lm.mix.mix);
  const points = table
    ? table.map((q) => ({ spec: q.spec, x: q.non_embedding_params, y: q.bits_per_byte }))
    : choices().map((c) => ({ spec: c.spec, label: c.label, x: mixBytes(c.names), y: nonEmbeddingParams(c.names) }));
  if (table && !points.some((p) => p.spec === current)) {
    // A mix the table does not list: interpolate its loss between its neighbours by size.
    const x = nonEmbeddingParams(lm.mix.mix);
    const sorted = [...points].sort((a, b) => a.x - b.x);
    const hi = sorted.find((p) => p.x >= x) ?? sorted.at(-1);
    const lo = [...sorted].reverse().find((p) => p.x <= x) ?? sorted[0];
    const y = hi.x === lo.x ? lo.y : lo.y + ((x - lo.x) / (hi.x - lo.x)) * (hi.y - lo.y);
    points.push({ spec: current, x, y, interpolated: true });
  }
  const [w, h, left, bottom, top, right] = [320, 176, 46, 30, 18, 14];
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const scale = (v, lo, hi, a, b) => (hi === lo ? (a + b) / 2 : a + ((v - lo) / (hi - lo)) * (b - a));
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const px = (x) => scale(x, x0, x1, left + 8, w - right);
  const py = (y) => scale(y, y0, y1, h - bottom - 8, top);
  const xLabel = table ? 'non-embedding parameters' : 'download';
  const yLabel = table ? 'loss, bits per byte (lower is better)' : 'parameters';
  const xFmt = table ? count : megabytes;
  const yFmt = table ? (v) => v.toFixed(2) : count;
  const svg = el('svg:svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': `${yLabel} against ${xLabel}` },
    el('svg:line', { x1: left, y1: h - bottom, x2: w - right, y2: h - bottom, class: 'axis' }),
    el('svg:line', { x1: left, y1: top, x2: left, y2: h - bottom, class: 'axis' }),
    el('svg:text', { x: (left + w - right) / 2, y: h - 4, 'text-anchor': 'middle' }, xLabel),
    el('svg:text', { x: 12, y: (top + h - bottom) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${(top + h - bottom) / 2})` }, yLabel),
    el('svg:text', { x: left + 2, y: h - bottom + 12, 'text-anchor': 'start', class: 'tick' }, xFmt(x0)),
    el('svg:text', { x: w - right, y: h - bottom + 12, 'text-anchor': 'end', class: 'tick' }, xFmt(x1)),
    el('svg:text', { x: left - 3, y: py(y0) + 3, 'text-anchor': 'end', class: 'tick' }, yFmt(y0)),
    el('svg:text', { x: left - 3, y: py(y1) + 3, 'text-anchor': 'end', class: 'tick' }, yFmt(y1)),
    ...points.map((p) => el('svg:circle', { cx: px(p.x), cy: py(p.y), r: p.spec === current ? 6 : 3.5, class: p.spec === current ? 'current' : 'point' },
      el('svg:title', {}, `${p.spec}: ${xFmt(p.x)}, ${yFmt(p.y)}${p.interpolated ? ' (interpolated)' : ''}`))),
    // Every point is named.
    ...points.map((p) => el('svg:text', {
      x: px(p.x), y: py(p.y) - (p.spec === current ? 10 : 7), 'text-anchor': p.x === x1 ? 'end' : 'middle', class: p.spec === current ? 'current-label' : 'label',
    }, p.label ?? p.spec)));
  $('chart').replaceChildren(svg, el('figcaption', {}, table
    ? 'Loss on held-out Austen text (bits per byte: lower is better) of each measured mix against its size; the ring is the mix running now.'
    : 'This model has no quality table, so size is shown against parameter count; the ring is the current mix.'));
}

// --- progress ---

function onProgress({ phase, loaded, total, mix, granularities, overall }) {
  if (phase === 'wasm') {
    $('status').textContent = total > 0 ? `Downloading the module… ${megabytes(loaded)} of ${megabytes(total)}` : `Downloading the module… ${megabytes(loaded)}`;
  } else {
    $('status').textContent = `Fetching the ${mix} weights… ${megabytes(loaded)} of ${megabytes(total)}`;
  }
  // The bar and its line show the whole load: the module and the weights together.
  const parts = [];
  if (overall.total !== null) parts.push(`Overall ${megabytes(overall.loaded)} of ${megabytes(overall.total)}`);
  if (overall.bytesPerSecond > 0) parts.push(`${megabytes(overall.bytesPerSecond)}/s`);
  if (overall.etaSeconds !== null) parts.push(`about ${eta(overall.etaSeconds)} left`);
  if (phase === 'weights') {
    parts.push(granularities.filter((g) => g.total > 0).map((g) => `${g.name} ${megabytes(g.loaded)} / ${megabytes(g.total)}`).join(' · '));
  }
  $('progress-detail').textContent = parts.join(' · ');
  setProgress(overall.total > 0 ? overall.loaded / overall.total : total > 0 ? loaded / total : 0);
}

// eta says a number of seconds in plain words.
const eta = (s) => (s < 1 ? 'under a second' : s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

function ready(message) {
  renderSizes();
  renderRouteControl();
  renderChart();
  renderModelCard();
  if (lm.plan) renderPlan(lm.plan);
  $('sizes').disabled = false;
  $('generate').disabled = false;
  setProgress(1);
  setState('ready', message);
}

function fetched(before) {
  const net = lm.downloaded.bytes - before.bytes;
  const cached = lm.downloaded.cachedBytes - before.cachedBytes;
  if (!net && !cached) return 'nothing to fetch';
  return [net && `fetched ${megabytes(net)}`, cached && `${megabytes(cached)} from the cache`].filter(Boolean).join(', ');
}

async function start() {
  const params = new URLSearchParams(location.search);
  const budget = params.get('budget') ?? 'balanced';
  $('budget').value = budget;
  try {
    lm = await MatEdge.load({
      model: MODEL,
      mix: params.get('mix') ?? 'auto',
      budget,
      bestEffort: true, // the demo shows the plan's warning and runs the smallest plan
      onProgress,
      onPlan: ({ capabilities, plan }) => {
        renderDevice(capabilities);
        renderPlan(plan);
      },
    });
  } catch (err) {
    setState('error', `Could not load the model: ${plainError(err)}`);
    return;
  }
  window.demo.lm = lm;
  if (!lm.plan) {
    $('plan').replaceChildren(el('p', { class: 'hint' }, `Fixed by the page address: ${mixName(lm.mix.mix)}.`));
    facts($('device'), [['GPU', lm.gpu ? lm.gpu.name : `none — ${lm.gpuReason}`], ['Benchmark', 'skipped: the mix is fixed']]);
  }
  ready(`Ready: ${mixName(lm.mix.mix)} — ${fetched({ bytes: 0, cachedBytes: 0 })}.`);
}

$('budget').addEventListener('change', () => {
  const params = new URLSearchParams(location.search);
  params.set('budget', $('budget').value);
  params.delete('mix');
  location.search = params;
});

$('sizes').addEventListener('change', async (e) => {
  const mix = e.target.value;
  const before = { ...lm.downloaded };
  $('sizes').disabled = true;
  $('generate').disabled = true;
  setState('loading', `Switching to ${mix}…`);
  setProgress(0);
  try {
    await lm.setMix(mix, { onProgress: (p) => onProgress({ ...p, phase: 'weights' }) });
  } catch (err) {
    $('size-error').textContent = `Could not switch to ${mix}: ${plainError(err)}`;
    setState('ready', `Still running ${mixName(lm.mix.mix)}.`);
    renderSizes();
    $('sizes').disabled = false;
    $('generate').disabled = false;
    return;
  }
  $('size-error').textContent = '';
  ready(`Ready: ${mix} — ${fetched(before)}.`);
});

function showStats(gen, final) {
  const parts = [`${gen.tokens.length} tokens`, `${rate(gen.tokensPerSecond)} tokens/s`];
  if (gen.backend) parts.push(`${gen.backend} backend`);
  parts.push(`mix ${mixName(lm.mix.mix)}`);
  if (gen.deviceLost) parts.push('GPU lost, went on on the CPU');
  if (final && gen.reason === 'context') parts.push('context full');
  if (final && gen.reason === 'cancelled') parts.push('stopped');
  if (gen.droppedChars) parts.push(`the prompt's first ${gen.droppedChars} characters did not fit`);
  $('stats').textContent = parts.join(' · ');
}

// --- token routing ---

// ROUTE_HINT is what the line under the text says when no run was routed.
const ROUTE_HINT = $('route-stats').textContent;

// routers says whether the model carries token routers (config.router_budgets > 0).
const routers = () => (lm.info.header.config.router_budgets ?? 0) > 0;

// widthCost is the FFN cost of one token's widths (a granularity index per
// layer) as a fraction of XL's: the mean over layers of width/XL's width.
function widthCost(widths) {
  const w = lm.info.header.config.ffn_widths;
  return widths.reduce((sum, g) => sum + w[g] / w.at(-1), 0) / widths.length;
}

// widthColour shades a mean granularity index (0 … top): blue for S, through
// green and yellow, to orange for XL; translucent, so it reads in light and
// dark schemes alike.
function widthColour(mean, top) {
  const hue = 205 - (180 * mean) / Math.max(top, 1);
  return `hsl(${hue.toFixed(0)} 85% 55% / .38)`;
}

// renderRouteControl enables the routing control when the model has routers
// and draws its legend: one swatch per uniform width.
function renderRouteControl() {
  const names = lm.info.granularities;
  const cost = lm.info.header.config.ffn_widths;
  $('route').disabled = !routers();
  if (!routers()) {
    $('route').value = '0';
    $('route-stats').textContent = 'This model has no token routers, so routing is off.';
  }
  $('route-legend').replaceChildren('Each token is shaded by how wide its feed-forward layers ran, on average over the layers: ',
    ...names.flatMap((name, g) => [el('span', { class: 'swatch', style: `background: ${widthColour(g, names.length - 1)}` }, name),
      ` ${Math.round((100 * cost[g]) / cost.at(-1))} %${g === 0 ? ' of XL\'s cost' : ''}${g === names.length - 1 ? '.' : ', '}`]),
    ' Hover a token for its width in each layer.');
  showRouteLegend();
}

function showRouteLegend() {
  $('route-legend').hidden = Number($('route').value) === 0;
}

// routedSpan is the text of the tokens produced since the last piece,
// shaded by their mean width; data-tokens and data-widths hold their ids
// and widths (a piece covers more than one token when a token ended inside
// a UTF-8 character).
function routedSpan(piece, tokens, widths) {
  if (!tokens.length) return document.createTextNode(piece);
  const names = lm.info.granularities;
  const all = widths.flat();
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  const perLayer = widths.map((w) => w.map((g) => names[g]).join(' ')).join(' | ');
  const cost = widths.reduce((n, w) => n + widthCost(w), 0) / widths.length;
  return el('span', {
    class: 'routed', style: `background: ${widthColour(mean, names.length - 1)}`,
    title: `widths by layer: ${perLayer} · ${Math.round(100 * cost)} % of XL's feed-forward cost`,
    'data-tokens': JSON.stringify(tokens), 'data-widths': JSON.stringify(widths),
  }, piece);
}

// showRouting says, during a routed run, the mean feed-forward cost per
// token so far as a share of XL's, against the budget asked for.
function showRouting(gen, budget) {
  const n = gen.widths.length;
  const mean = n ? gen.widths.reduce((sum, w) => sum + widthCost(w), 0) / n : 0;
  const parts = [n ? `mean feed-forward cost ${Math.round(100 * mean)} % of XL's per token` : 'mean feed-forward cost —',
    `budget ${Math.round(100 * budget)} %`, `${n} tokens`];
  if (gen.backend) parts.push(`routed on the ${gen.backend.toUpperCase()}`);
  $('route-stats').textContent = parts.join(' · ');
}

// An error about routing goes with the control's state that caused it.
$('route').addEventListener('change', () => {
  $('route-error').textContent = '';
  showRouteLegend();
});
$('backend').addEventListener('change', () => { $('route-error').textContent = ''; });

// acceptance is a generation's share of draft tokens kept, as text.
function acceptance(spec) {
  return spec && spec.proposed > 0 ? `${Math.round((100 * spec.accepted) / spec.proposed)} %` : '—';
}

// showSpeculation says, during a speculative run, how many of S's proposals
// the mix kept, the last round's k and the speed; after it, the speed-up
// over the last plain run of the same mix.
function showSpeculation(gen, final) {
  const spec = gen.speculation;
  const parts = [`acceptance ${acceptance(spec)}`, `k ${spec?.k ?? 0}`, `${rate(gen.tokensPerSecond)} tokens/s`];
  if (final) {
    const mix = mixName(lm.mix.mix);
    const plain = plainRates.get(mix);
    parts.push(spec ? `${spec.accepted} of ${spec.proposed} draft tokens kept in ${spec.rounds} rounds` : 'no rounds');
    parts.push(plain ? `${(gen.tokensPerSecond / plain).toFixed(2)}× the last run without it (${rate(plain)} tokens/s)` : `run once without it to compare on ${mix}`);
  }
  $('spec-stats').textContent = parts.join(' · ');
}

// An error about speculation goes with the toggle's state that caused it.
$('speculate').addEventListener('change', () => {
  $('spec-error').textContent = '';
  $('route-error').textContent = ''; // it may say that the two do not combine
});

$('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (running) {
    running.cancel();
    return;
  }
  const prompt = $('prompt').value;
  if (!prompt.trim()) {
    $('prompt-error').textContent = 'Type a prompt first: the model continues your text.';
    return;
  }
  const speculate = $('speculate').checked;
  const route = Number($('route').value) || 0;
  const backend = $('backend').value;
  const repetitionPenalty = Math.max(1, Number($('repetition').value) || 1);
  if (speculate && repetitionPenalty > 1) {
    $('spec-error').textContent = 'Speculative decoding does not combine with a repetition penalty: set it to 1, or turn speculation off.';
    return;
  }
  $('spec-error').textContent = '';
  if (route && speculate) {
    $('route-error').textContent = 'Token routing does not combine with speculative decoding: turn one of them off.';
    return;
  }
  // The error element beside the control that asked for what failed.
  const errorBox = route ? $('route-error') : speculate ? $('spec-error') : $('prompt-error');
  let gen;
  try {
    gen = lm.generate(prompt, {
      maxTokens: Number($('max-tokens').value) || 1,
      temperature: Math.max(0, Number($('temperature').value) || 0),
      seed: Math.max(0, Math.trunc(Number($('seed').value) || 0)),
      repetitionPenalty,
      context: 'truncate-left',
      // S drafts, k is chosen round by round; speculative sampling draws from
      // the whole distribution, so top-k and top-p are off.
      ...(speculate ? { draft: 'S', topK: 0, topP: 1 } : {}),
      // Routing runs where the module can route (the CPU) unless a backend is forced.
      ...(route ? { route } : {}),
      ...(backend ? { backend } : {}),
    });
  } catch (err) {
    errorBox.textContent = plainError(err);
    return;
  }
  running = gen;
  window.demo.generation = gen;
  $('out-prompt').textContent = prompt;
  $('out-text').textContent = '';
  $('stats').textContent = '';
  $('generate').textContent = 'Stop';
  $('sizes').disabled = true;
  $('speculate').disabled = true;
  $('route').disabled = true;
  $('spec-stats').textContent = speculate ? 'acceptance — · k 0' : SPEC_HINT; // no stale figures under a run without a draft
  if (route) showRouting(gen, route);
  else if (routers()) $('route-stats').textContent = ROUTE_HINT; // no stale figures under unrouted text
  setState('generating');
  try {
    // Each token's piece is queued by its worker message and taken here
    // before the next message is handled, so the tokens added since the
    // last piece are the ones that made this piece.
    let shown = 0;
    for await (const piece of gen) {
      if (route) {
        $('out-text').append(routedSpan(piece, gen.tokens.slice(shown), gen.widths.slice(shown)));
        shown = gen.tokens.length;
        showRouting(gen, route);
      } else {
        $('out-text').append(piece);
      }
      showStats(gen, false);
      if (speculate) showSpeculation(gen, false);
    }
    await gen.finished;
    showStats(gen, true);
    if (route) showRouting(gen, route);
    $('route-error').textContent = '';
    if (speculate) {
      showSpeculation(gen, true);
    } else if (gen.reason === 'length' || gen.reason === 'context') {
      plainRates.set(mixName(lm.mix.mix), gen.tokensPerSecond);
    }
    $('prompt-error').textContent = '';
    setState('done');
  } catch (err) {
    errorBox.textContent = plainError(err);
    if (route) $('route-stats').textContent = 'Nothing was routed.';
    setState('ready', 'Ready.');
  } finally {
    running = null;
    $('generate').textContent = 'Generate';
    $('sizes').disabled = false;
    $('speculate').disabled = false;
    $('route').disabled = !routers();
  }
});

// plainError says what went wrong without the runtime's internal words.
function plainError(err) {
  const message = String(err?.message ?? err).replace(/^matedge: /, '').replace(/^\w+: engine: (bad argument|bad state): /, '');
  if (err?.code === 'ERR_FETCH') return `the model could not be downloaded (${message}). Check the connection and try again.`;
  if (err?.code === 'ERR_CLOSED' || err?.code === 'ERR_TRAP') return 'the model stopped; reload the page.';
  if (/empty prompt/.test(message)) return 'Type a prompt first: the model continues your text.';
  return `${message.charAt(0).toUpperCase()}${message.slice(1)}.`.replace(/\.\.$/, '.');
}

// renderModelCard says what the model is, from its header: what it was
// trained on, how big it is, and what to expect of its text.
function renderModelCard() {
  const c = lm.info.header.config;
  const meta = lm.info.header.meta ?? {};
  const table = quality();
  const granularities = lm.info.granularities;
  const params = (g) => nonEmbeddingParams(Array(c.layers).fill(g));
  const corpus = meta.corpus === 'austen' ? 'Jane Austen\'s six novels' : meta.corpus ? `the ${meta.corpus} corpus` : 'an unnamed corpus';
  const bits = (g) => table?.find((q) => q.spec === g)?.bits_per_byte;
  const parts = [
    `A small MatFormer trained on ${corpus}: ${c.layers} layers of width ${c.dim}, a ${c.vocab}-token vocabulary, a context of ${c.context} tokens,`,
    ` ${count(params(granularities[0]))} (${granularities[0]}) to ${count(params(granularities.at(-1)))} (${granularities.at(-1)}) non-embedding parameters.`,
  ];
  if (bits(granularities[0]) && bits(granularities.at(-1))) {
    parts.push(` On held-out Austen text it scores ${bits(granularities.at(-1)).toFixed(2)} bits per byte at ${granularities.at(-1)} and ${bits(granularities[0]).toFixed(2)} at ${granularities[0]}.`);
  }
  parts.push(' Expect Austen-flavoured English sentences that lose the thread after a line or two: it shows elastic sizes on your device, not a chat assistant.');
  parts.push(lm.info.header.eot === undefined
    ? ' It has no end-of-text token, so it writes until the token limit (or a stop string).'
    : ' It ends its text with an end-of-text token, where generation stops.');
  $('model-card').textContent = parts.join('');
}

start();
