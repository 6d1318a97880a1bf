// The text API's options, through the public API in Node (node.js, in a
// worker thread and in-thread): stop strings, the context policies,
// AbortSignal on load, setMix and generate, and progress with a rate.
// Greedy tokens make every expectation exact.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { generate, missingBuild } from '../harness/server.mjs';
import { StopScanner } from '../src/stop.js';

const CI = process.env.CI === 'true';
const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
const MODEL = join(WEB, '..', 'weights', 'defaultmodel', 'default.matw');
const WASM = join(WEB, '..', 'dist', 'matedge.wasm');
const PROMPT = 'It is a truth universally acknowledged';
const greedy = { temperature: 0, maxTokens: 24 };

describe('StopScanner', () => {
  const run = (stops, pieces) => {
    const s = new StopScanner(stops);
    const d = new TextDecoder();
    const out = [];
    for (const p of pieces) {
      const r = s.push(new TextEncoder().encode(p));
      out.push(d.decode(r.out));
      if (r.stopped) return { out, stopped: true };
    }
    out.push(d.decode(s.flush()));
    return { out, stopped: false };
  };
  it('holds back a possible prefix and cuts before the stop string', () => {
    assert.deepEqual(run(['END'], ['Hello E', 'N', 'D more']), { out: ['Hello ', '', ''], stopped: true });
  });
  it('releases a false start once it cannot be a stop string', () => {
    assert.deepEqual(run(['END'], ['Hello E', 'Nx']), { out: ['Hello ', 'ENx', ''], stopped: false });
  });
  it('stops at the earliest of several, inside one piece', () => {
    assert.deepEqual(run(['b', 'xy'], ['axyb']), { out: ['a'], stopped: true });
  });
  it('matches bytes of multi-byte characters split across pieces', () => {
    const s = new StopScanner(['é!']);
    const bytes = new TextEncoder().encode('café!');
    assert.deepEqual([...s.push(bytes.subarray(0, 4)).out], [...new TextEncoder().encode('caf')]);
    assert.equal(s.push(bytes.subarray(4)).stopped, true);
  });
  it('ignores empty stop strings', () => {
    assert.deepEqual(run([''], ['ab']), { out: ['ab', ''], stopped: false });
  });
});

// withEOT returns a copy of a weights file (format version 2) whose header
// also names eot as the end-of-text token (weights/doc.go): the key is
// appended to the header's msgpack map, the header checksum recomputed, the
// data moved to the new DataStart. (Go's weights.SetEOT does the same.)
function withEOT(file, eot) {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  assert.equal(view.getUint32(4, true), 2, 'format version 2');
  const h = view.getUint32(8, true);
  const doc = file.subarray(12, 12 + h);
  assert.ok(doc[0] >= 0x80 && doc[0] < 0x8f, 'the header is a msgpack fixmap with room for a key');
  const value = eot < 128 ? [eot] : [0xcd, eot >> 8, eot & 0xff];
  const extra = Uint8Array.from([0xa3, ...new TextEncoder().encode('eot'), ...value]);
  const h2 = h + extra.length;
  const dataStart = Math.ceil((16 + h) / 256) * 256;
  const dataStart2 = Math.ceil((16 + h2) / 256) * 256;
  const data = file.subarray(dataStart);
  const out = new Uint8Array(dataStart2 + data.length);
  out.set(file.subarray(0, 12));
  new DataView(out.buffer).setUint32(8, h2, true);
  out.set(doc, 12);
  out[12] = doc[0] + 1;
  out.set(extra, 12 + h);
  new DataView(out.buffer).setUint32(12 + h2, crc32c(out.subarray(0, 12 + h2)), true);
  out.set(data, dataStart2);
  return out;
}

// crc32c is CRC-32C (Castagnoli), the weights format's checksum.
function crc32c(bytes) {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return ~c >>> 0;
}

const missing = missingBuild();
if (missing && CI) {
  it('the text API', () => assert.fail(`${missing} (CI=true: a missing dependency is a failure)`));
} else {
  describe('the text API in Node', { skip: missing ?? false, timeout: 120_000 }, async () => {
    const { MatEdge, MatEdgeError } = await import('../src/node.js');
    const collect = async (gen) => {
      let text = '';
      for await (const piece of gen) text += piece;
      return text;
    };

    for (const inThread of [false, true]) {
      it(`stops before a stop string, with its tokens and text (${inThread ? 'in-thread' : 'worker thread'})`, async () => {
        const lm = await MatEdge.load({ model: MODEL, wasm: WASM, mix: 'S', inThread });
        try {
          const plain = lm.generate(PROMPT, greedy);
          const full = await collect(plain);
          // A stop string from the middle of the greedy text, two characters long.
          const at = Math.floor(full.length / 2);
          const stop = full.slice(at, at + 2);
          const first = full.indexOf(stop);
          const gen = lm.generate(PROMPT, { ...greedy, stop: ['never there', stop] });
          const text = await collect(gen);
          assert.equal(text, full.slice(0, first));
          assert.equal(gen.text, text);
          assert.equal(gen.reason, 'stop');
          assert.deepEqual(gen.tokens, plain.tokens.slice(0, gen.tokens.length));
          assert.ok(gen.tokens.length < plain.tokens.length);
          // No stop string appears: every held-back byte comes out at the end.
          const none = lm.generate(PROMPT, { ...greedy, stop: 'zzzq' });
          assert.equal(await collect(none), full);
          assert.equal(none.reason, 'length');
        } finally {
          lm.close();
        }
      });
    }

    for (const inThread of [false, true]) {
      it(`stops at the model's end-of-text token with reason eot (${inThread ? 'in-thread' : 'worker thread'})`, async () => {
        const plainLM = await MatEdge.load({ model: MODEL, wasm: WASM, mix: 'S', inThread });
        let plain;
        try {
          plain = plainLM.generate(PROMPT, greedy);
          await collect(plain);
          assert.equal(plainLM.info.header.eot, undefined, 'the default model has no end-of-text token');
        } finally {
          plainLM.close();
        }
        // The same weights, with a header naming a token the model produces mid-way as end-of-text.
        const eot = plain.tokens[Math.floor(plain.tokens.length / 2)];
        const first = plain.tokens.indexOf(eot);
        const dir = await mkdtemp(join(tmpdir(), 'matedge-eot-'));
        const model = join(dir, 'eot.matw');
        await writeFile(model, withEOT(await readFile(MODEL), eot));
        const lm = await MatEdge.load({ model, wasm: WASM, mix: 'S', inThread });
        try {
          assert.equal(lm.info.header.eot, eot);
          const gen = lm.generate(PROMPT, greedy);
          const text = await collect(gen);
          assert.equal(gen.reason, 'eot');
          assert.deepEqual(gen.tokens, plain.tokens.slice(0, first));
          assert.ok(plain.text.startsWith(text) && text.length < plain.text.length, JSON.stringify([text, plain.text]));
        } finally {
          lm.close();
          await rm(dir, { recursive: true });
        }
      });
    }

    it('refuses, truncates or slides a prompt longer than the context', async () => {
      const lm = await MatEdge.load({ model: MODEL, wasm: WASM, mix: 'S', inThread: true });
      try {
        const context = lm.info.header.config.context;
        const long = `${'It is a truth universally acknowledged, that a single man in possession of a good fortune must be in want of a wife. '.repeat(30)}And so`;
        await assert.rejects(collect(lm.generate(long, greedy)), (err) => err instanceof MatEdgeError && err.code === 'ERR_ARG' && /context is 256/.test(err.message));
        const cut = lm.generate(long, { ...greedy, context: 'truncate-left' });
        await collect(cut);
        assert.equal(cut.reason, 'length');
        assert.equal(cut.tokens.length, greedy.maxTokens);
        assert.ok(cut.droppedChars > 0 && cut.droppedChars < long.length, `dropped ${cut.droppedChars} of ${long.length}`);
        assert.ok(cut.promptTokens.length <= context - 1 - greedy.maxTokens, `kept ${cut.promptTokens.length} tokens`);
        // The kept prompt is the end of the long one: generating from it alone gives the same tokens.
        const same = lm.generate(long.slice(cut.droppedChars), greedy);
        await collect(same);
        assert.deepEqual(same.tokens, cut.tokens);

        // More tokens than the context holds: 'refuse' ends at the context, 'slide' goes on.
        const n = context + 40;
        const ended = lm.generate(PROMPT, { temperature: 0, maxTokens: n });
        await collect(ended);
        assert.equal(ended.reason, 'context');
        const slid = lm.generate(PROMPT, { temperature: 0, maxTokens: n, context: 'slide' });
        await collect(slid);
        assert.equal(slid.reason, 'length');
        assert.equal(slid.tokens.length, n);
        assert.ok(slid.slides >= 1);
        assert.deepEqual(slid.tokens.slice(0, ended.tokens.length), ended.tokens);
        assert.throws(() => lm.generate(PROMPT, { context: 'wrap' }), /context "wrap"/);
      } finally {
        lm.close();
      }
    });

    it('aborts load, setMix and generate with ERR_ABORTED', async () => {
      await assert.rejects(MatEdge.load({ model: MODEL, wasm: WASM, signal: AbortSignal.abort() }), { code: 'ERR_ABORTED' });
      const loading = new AbortController();
      const load = MatEdge.load({ model: MODEL, wasm: WASM, mix: 'XL', signal: loading.signal, onProgress: () => loading.abort() });
      await assert.rejects(load, { code: 'ERR_ABORTED' });

      // In-thread, the abort reaches the session between two file reads, for certain.
      const lm = await MatEdge.load({ model: MODEL, wasm: WASM, mix: 'S', inThread: true });
      try {
        await assert.rejects(lm.setMix('XL', { signal: AbortSignal.abort() }), { code: 'ERR_ABORTED' });
        const switching = new AbortController();
        await assert.rejects(lm.setMix('XL', { signal: switching.signal, onProgress: () => switching.abort() }), { code: 'ERR_ABORTED' });
        assert.deepEqual(lm.mix.mix, ['S', 'S', 'S', 'S']);
        const controller = new AbortController();
        const gen = lm.generate(PROMPT, { ...greedy, maxTokens: 200, signal: controller.signal });
        let pieces = 0;
        await assert.rejects(async () => {
          for await (const _ of gen) if (++pieces === 3) controller.abort();
        }, { code: 'ERR_ABORTED' });
        assert.ok(gen.tokens.length >= 3 && gen.tokens.length < 200, `${gen.tokens.length} tokens`);
        await assert.rejects(gen.finished, { code: 'ERR_ABORTED' });
        // The model is still usable: the same greedy tokens as a fresh generation.
        const after = lm.generate(PROMPT, greedy);
        await collect(after);
        assert.deepEqual(after.tokens.slice(0, 3), gen.tokens.slice(0, 3));
        assert.equal(after.reason, 'length');
        await assert.rejects(collect(lm.generate(PROMPT, { signal: AbortSignal.abort() })), { code: 'ERR_ABORTED' });
      } finally {
        lm.close();
      }
    });

    it("gives matedge generate's tokens with penalties and min-p, and they change the text", async () => {
      const lm = await MatEdge.load({ model: MODEL, wasm: WASM, mix: 'S', inThread: true });
      try {
        for (const [options, flags] of [
          [{ temperature: 0, repetitionPenalty: 1.5 }, ['-repeat-penalty', '1.5']],
          [{ temperature: 0, presencePenalty: 1, penaltyWindow: 16 }, ['-presence-penalty', '1', '-penalty-window', '16']],
          [{ temperature: 0.9, seed: 3, minP: 0.2, repetitionPenalty: 1.2 }, ['-min-p', '0.2', '-repeat-penalty', '1.2']],
        ]) {
          const gen = lm.generate(PROMPT, { maxTokens: 40, ...options });
          await collect(gen);
          assert.equal(gen.backend, 'cpu');
          const want = await generate({ prompt: PROMPT, n: 40, mix: 'S', seed: options.seed ?? 1, temperature: options.temperature, extra: flags });
          assert.deepEqual(gen.tokens, want.tokens, JSON.stringify(options));
          const plain = lm.generate(PROMPT, { maxTokens: 40, temperature: options.temperature, seed: options.seed ?? 1 });
          await collect(plain);
          assert.notDeepEqual(plain.tokens, gen.tokens, `${JSON.stringify(options)} changed nothing`);
        }
        await assert.rejects(collect(lm.generate(PROMPT, { repetitionPenalty: 0.5 })), { code: 'ERR_ARG' });
      } finally {
        lm.close();
      }
    });

    it('refuses a budget nothing fits, unless bestEffort', async () => {
      let seen = null;
      await assert.rejects(MatEdge.load({ model: MODEL, wasm: WASM, inThread: true, budget: { maxMemoryBytes: 1000 }, onPlan: ({ plan }) => { seen = plan; } }),
        (err) => err.code === 'ERR_BUDGET' && /nothing fits the budget \(memory\)/.test(err.message) && /bestEffort/.test(err.message));
      assert.equal(seen?.constraint, 'memory');
      const lm = await MatEdge.load({ model: MODEL, wasm: WASM, inThread: true, budget: { maxMemoryBytes: 1000 }, bestEffort: true });
      try {
        assert.equal(lm.plan.constraint, 'memory');
        assert.ok(lm.plan.error);
        assert.deepEqual(lm.mix.mix, ['S', 'S', 'S', 'S']);
      } finally {
        lm.close();
      }
    });

    it('reports progress with a rate and a time left', async () => {
      const events = [];
      const lm = await MatEdge.load({ model: MODEL, wasm: WASM, mix: 'XL', inThread: true, onProgress: (p) => events.push(p) });
      lm.close();
      const weights = events.filter((e) => e.phase === 'weights');
      assert.ok(weights.length > 1);
      for (const e of events) {
        assert.ok(Number.isFinite(e.bytesPerSecond) && e.bytesPerSecond >= 0, JSON.stringify(e));
        assert.ok(e.etaSeconds === null || e.etaSeconds >= 0, JSON.stringify(e));
      }
      const last = weights.at(-1);
      assert.equal(last.loaded, last.total);
      if (last.etaSeconds !== null) assert.equal(last.etaSeconds, 0);
      // Overall: the module and XL's bytes, known from XL's first event on (a fixed mix: no plan).
      const wasm = events.filter((e) => e.phase === 'wasm').at(-1);
      const total = (wasm.total > 0 ? wasm.total : wasm.loaded) + last.total;
      assert.ok(events.filter((e) => e.phase === 'wasm').every((e) => e.overall.total === null), 'no overall total before the weights are known');
      for (const e of weights) {
        assert.equal(e.overall.total, total, JSON.stringify(e.overall));
        assert.equal(e.overall.loaded, (wasm.total > 0 ? wasm.total : wasm.loaded) + e.loaded, JSON.stringify(e));
        assert.ok(e.overall.etaSeconds === null || e.overall.etaSeconds >= 0, JSON.stringify(e.overall));
      }
      assert.equal(last.overall.loaded, total);
      if (last.overall.etaSeconds !== null) assert.equal(last.overall.etaSeconds, 0);
    });
  });
}
