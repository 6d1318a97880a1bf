package engine

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
)

// roundDevice counts dispatches and remembers the size of the last read, so
// that a test clock can make each speculative round take the time its k
// says: a round reads back 2k+1 words.
type roundDevice struct {
	*counting
	dispatches int
	lastRead   uint64
}

func (d *roundDevice) Dispatch(p webgpu.Pipeline, params []byte, bindings []webgpu.Binding, groups [3]uint32) error {
	d.dispatches++
	return d.counting.Dispatch(p, params, bindings, groups)
}

func (d *roundDevice) Read(b webgpu.Buffer, offset, size uint64) (webgpu.Ticket, error) {
	d.lastRead = size
	return d.counting.Read(b, offset, size)
}

// roundCosts is a clock on which a round of k proposals takes plain +
// k·perDraft: each reading advances it by the cost of the round last read
// back. A round is timed from a reading at its start (which the previous
// read sets) to one once its own read is in, so the difference is its own
// cost: the costs the chooser fits are these, whatever the device does.
// With sampledVocab set, the rounds are sampled ones of that vocabulary.
type roundCosts struct {
	dev             *roundDevice
	plain, perDraft time.Duration
	now             time.Duration
	sampledVocab    int
}

func (r *roundCosts) clock() time.Duration {
	// A greedy round reads back 2k+1 words, a sampled one (2k+1)·vocab + k
	// (a plain one, 1).
	words := int(r.dev.lastRead) / 4
	k := (words - 1) / 2
	if v := r.sampledVocab; v > 0 {
		k = max(words-v, 0) / (2*v + 1)
	}
	r.now += r.plain + time.Duration(max(k, 0))*r.perDraft
	return r.now
}

// stepRecord is what one step of a generation did on the device: the
// dispatches it recorded, the reads and bytes it read back, the bytes it
// wrote, and the k of the last round.
type stepRecord struct {
	token, dispatches, reads, readBytes, written, k int
}

// recordSteps generates until the context is full with mix and o, recording
// what each step cost on dev.
func recordSteps(t *testing.T, e *Engine, dev *roundDevice, mix string, o Options) []stepRecord {
	t.Helper()
	m, err := e.ParseMix(mix)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMix(m); err != nil {
		t.Fatal(err)
	}
	if err := e.Reset(o); err != nil {
		t.Fatalf("Reset(%+v): %v", o, err)
	}
	if _, err := e.Prompt([]byte(gpuPrompt)); err != nil {
		t.Fatal(err)
	}
	var out []stepRecord
	for {
		dispatches, reads, readBytes, written := dev.dispatches, dev.reads, dev.readBytes, dev.written
		var tok int
		for {
			tok, err = e.Step()
			if !errors.Is(err, ErrPending) {
				break
			}
		}
		if errors.Is(err, ErrDone) {
			return out
		}
		if err != nil {
			t.Fatalf("%+v step %d: %v", o, len(out), err)
		}
		out = append(out, stepRecord{tok, dev.dispatches - dispatches, dev.reads - reads, dev.readBytes - readBytes, dev.written - written, e.Speculation().K})
	}
}

func recordTokens(steps []stepRecord) []int {
	var out []int
	for _, s := range steps {
		out = append(out, s.token)
	}
	return out
}

// TestGPUSpeculativeAdaptive: with draft_tokens 0 the gpu backend chooses k
// round by round from the times of its rounds, and its greedy tokens are the
// verifier's alone in every regime of the chooser. The round times come from
// a test clock that makes a round of k proposals cost plain + k·perDraft:
//
//   - the first sequence learns them, with rounds of k = 0 and 1 only;
//   - where drafting costs more than it can save, the next sequence proposes
//     nothing but a round of one token now and then that re-times drafting,
//     and each of its other steps is a plain step: the dispatches, the one
//     4-byte read and (after a plain step) no write of the verifier alone;
//   - where drafting is cheap and the draft always right (the verifier
//     drafting for itself), the next sequence drafts several tokens a round;
//   - draft auto measures each narrower granularity in turn, S first, then
//     picks the one expected to pay most.
func TestGPUSpeculativeAdaptive(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		file := weightsFile(t, weights.Random(weights.TinyConfig(), 7))
		dev := &roundDevice{counting: &counting{Device: d, pendingOnce: true}}
		e := loaded(t, file, dev)
		costs := &roundCosts{dev: dev}
		e.roundClock = costs.clock

		alone := recordSteps(t, e, dev, "XL", Options{Backend: "gpu"})
		want := recordTokens(alone)
		if len(want) < 16 {
			t.Fatalf("%d tokens before the context filled; want room for rounds", len(want))
		}
		check := func(what string, steps []stepRecord) {
			t.Helper()
			if got := recordTokens(steps); !slices.Equal(got, want) {
				t.Errorf("%s: %v\nverifier alone: %v", what, got, want)
			}
		}

		// Drafting never pays: a round of k costs 1 ms + 10 ms·k.
		costs.plain, costs.perDraft = time.Millisecond, 10*time.Millisecond
		o := Options{Backend: "gpu", Draft: "S"}
		first := recordSteps(t, e, dev, "XL", o)
		check("draft S, learning", first)
		for i, s := range first {
			if s.k > 1 {
				t.Errorf("learning: step %d drafted %d tokens; want 0 or 1 while the round times are too few", i, s.k)
			}
		}
		rounds := e.gpuRounds(e.header.Config.Uniform(0), false, false)
		if !rounds.ready() {
			t.Fatalf("after a sequence: round times %+v; want enough to fit", rounds)
		}
		c := rounds.costs()
		if c.VerifyBase != 0.001 || c.Draft < 0.0099 || c.Draft > 0.0101 {
			t.Errorf("fitted costs %+v; want VerifyBase 1 ms, Draft 10 ms", c)
		}
		off := recordSteps(t, e, dev, "XL", o)
		check("draft S, drafting never pays", off)
		if info := e.Speculation(); info.Proposed > 1+len(off)/retimeEvery {
			t.Errorf("drafting never pays: %+v for %d tokens; want at most a re-timing round of one proposal per %d rounds", info, len(off), retimeEvery)
		}
		// Every round but those is a plain step, which costs what a step of
		// the verifier alone does; after a plain step it writes nothing,
		// the token being on the device. The first steps differ (the
		// prompt: the verifier alone runs it all in one pass, speculation
		// all but its last token, then a round on that one).
		plain := 0
		for i := 1; i < len(off); i++ {
			a, s := alone[i], off[i]
			if s.k > 1 {
				t.Errorf("drafting never pays: step %d drafted %d tokens; want 0, or 1 to re-time drafting", i, s.k)
			}
			if s.k != 0 {
				continue
			}
			plain++
			if s.dispatches != a.dispatches || s.reads != 1 || s.readBytes != 4 || a.reads != 1 || a.readBytes != 4 ||
				(off[i-1].k == 0 && s.written != a.written) || a.written != 0 {
				t.Errorf("step %d with k = 0: %d dispatches, %d reads of %d bytes, %d bytes written; the verifier alone %d, %d of %d, %d",
					i, s.dispatches, s.reads, s.readBytes, s.written, a.dispatches, a.reads, a.readBytes, a.written)
				break
			}
		}
		if plain < len(off)-3 {
			t.Errorf("drafting never pays: %d plain steps of %d", plain, len(off))
		}

		// Drafting pays: a round of k costs 10 ms + 1 ms·k, and the verifier
		// drafts for itself (every proposal kept).
		costs.plain, costs.perDraft = 10*time.Millisecond, time.Millisecond
		o = Options{Backend: "gpu", Draft: "XL"}
		check("draft XL, learning", recordSteps(t, e, dev, "XL", o))
		on := recordSteps(t, e, dev, "XL", o)
		check("draft XL, drafting pays", on)
		info := e.Speculation()
		most := 0
		for _, s := range on {
			most = max(most, s.k)
		}
		if info.Accepted != info.Proposed || most < 4 || info.Rounds > len(on)/2 {
			t.Errorf("drafting pays: %+v for %d tokens, k up to %d; want every proposal kept, k ≥ 4, several tokens a round", info, len(on), most)
		}

		// Draft auto, on weights loaded afresh (nothing timed yet): S, M
		// and L are each timed in turn, one sequence being enough to fit
		// them; then, all costing the same here, the first of the best, S.
		e = loaded(t, file, dev)
		e.roundClock = costs.clock
		var drafts []string
		for range 4 {
			check("draft auto", recordSteps(t, e, dev, "XL", Options{Backend: "gpu", Draft: "auto"}))
			drafts = append(drafts, e.Speculation().Draft[0])
		}
		if !slices.Equal(drafts, []string{"S", "M", "L", "S"}) {
			t.Errorf("draft auto over four sequences: %v; want S, M, L measured in turn, then S", drafts)
		}
	})
}

// TestGPURetime: k auto recovers from a fit that a busy moment threw off.
// The first sequence learns round times on which a proposal costs ten
// plain rounds (the machine busy whenever it drafted); then a proposal
// costs a tenth of one, and the draft is always right (the verifier drafts
// for itself). By the fit even a draft that is always right could not pay,
// so the chooser makes no probes of its own; the rounds that re-time
// drafting find the new cost, and within a few sequences k auto drafts
// several tokens a round again. Greedy tokens stay the verifier's.
func TestGPURetime(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		file := weightsFile(t, weights.Random(weights.TinyConfig(), 7))
		dev := &roundDevice{counting: &counting{Device: d}}
		e := loaded(t, file, dev)
		costs := &roundCosts{dev: dev, plain: time.Millisecond, perDraft: 10 * time.Millisecond}
		e.roundClock = costs.clock
		want := recordTokens(recordSteps(t, e, dev, "XL", Options{Backend: "gpu"}))
		o := Options{Backend: "gpu", Draft: "XL"}
		recordSteps(t, e, dev, "XL", o)
		rounds := e.gpuRounds(e.header.Config.Uniform(3), false, false)
		if !rounds.ready() {
			t.Fatalf("after a sequence: round times %+v; want enough to fit", rounds)
		}
		if c := rounds.costs(); c.Draft < 0.0099 {
			t.Fatalf("fitted costs %+v; want Draft 10 ms", c)
		}
		costs.plain, costs.perDraft = 10*time.Millisecond, time.Millisecond
		const sequences = 6
		for i := range sequences {
			steps := recordSteps(t, e, dev, "XL", o)
			if got := recordTokens(steps); !slices.Equal(got, want) {
				t.Fatalf("sequence %d: %v\nverifier alone: %v", i, got, want)
			}
			most := 0
			for _, s := range steps {
				most = max(most, s.k)
			}
			if most >= 4 {
				if c := rounds.costs(); c.Draft > 0.0011 {
					t.Errorf("fitted costs %+v; want Draft 1 ms", c)
				}
				return
			}
		}
		t.Errorf("after %d sequences k auto drafts no more than one token a round; fitted costs %+v, round times %+v", sequences, rounds.costs(), rounds)
	})
}

// TestGPURoundTimes: the fit of the gpu backend's round times, without a
// GPU. The first round at each k is left out; rounds alternate k = 0 and 1
// until five of each are in; a proposal's cost is measured against the
// plain rounds of its time, so that the machine slowing down between the
// plain rounds and the drafting ones does not make drafting look cheap.
func TestGPURoundTimes(t *testing.T) {
	var r gpuRoundTimes
	var ks []int
	for !r.ready() {
		k := r.learningK()
		ks = append(ks, k)
		r.observe(k, 0.010+0.005*float64(k)) // a proposal costs half a plain round
		if len(ks) > 20 {
			t.Fatalf("not ready after rounds of k %v: %+v", ks, r)
		}
	}
	if want := []int{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}; !slices.Equal(ks, want) {
		t.Errorf("learning rounds' k %v; want %v (the first of each not kept)", ks, want)
	}
	if c := r.costs(); c.VerifyBase != 0.010 || c.Draft < 0.00499 || c.Draft > 0.00501 {
		t.Errorf("costs %+v; want VerifyBase 10 ms, Draft 5 ms", c)
	}
	// The machine slows down threefold, and only plain rounds have run
	// since: a proposal is still half a plain round, now 15 ms (not the
	// 5 ms measured before the slow-down).
	for range roundSamples {
		r.observe(0, 0.030)
	}
	if c := r.costs(); c.VerifyBase != 0.030 || c.Draft < 0.0149 || c.Draft > 0.0151 {
		t.Errorf("after a slow-down: costs %+v; want VerifyBase 30 ms, Draft 15 ms", c)
	}
	for range 3 {
		r.observe(2, 0.030+2*0.015)
	}
	if r.sincePlain != 3 {
		t.Errorf("%d rounds since the last plain one; want 3", r.sincePlain)
	}
	// A round slowed by something else does not move the medians.
	r.observe(0, 1)
	r.observe(2, 5)
	if c := r.costs(); c.VerifyBase != 0.030 || c.Draft < 0.0149 || c.Draft > 0.0151 {
		t.Errorf("after two outliers: costs %+v; want VerifyBase 30 ms, Draft 15 ms", c)
	}
	r.observe(-1, 1) // out of range: ignored
	r.observe(maxAdaptiveK+1, 1)
}

// TestGPURetimeWait: while the chooser does not draft, the wait between
// rounds that re-time drafting starts at retimeEvery, doubles up to
// retimeMost while they promise no gain, and shrinks to retimeSoon after
// one that does; it counts rounds without proposals only.
func TestGPURetimeWait(t *testing.T) {
	var r gpuRoundTimes
	var waits []int
	for _, promising := range []bool{false, false, false, false, false, false, true, false, true, true} {
		waits = append(waits, r.retimeWait())
		r.retimed(promising)
	}
	if want := []int{32, 64, 128, 256, 512, 512, 512, 2, 32, 2}; !slices.Equal(waits, want) {
		t.Errorf("waits %v; want %v", waits, want)
	}
	r.retimeAfter = 0
	for range retimeEvery - 1 {
		r.observe(0, 0.01)
	}
	if r.retimeDue() {
		t.Errorf("re-timing due after %d plain rounds; want after %d", retimeEvery-1, retimeEvery)
	}
	r.observe(0, 0.01)
	if !r.retimeDue() {
		t.Errorf("re-timing not due after %d plain rounds", retimeEvery)
	}
	r.observe(1, 0.02)
	if r.retimeDue() || r.sinceDraft != 0 {
		t.Errorf("re-timing due right after a round with proposals (%d rounds since one)", r.sinceDraft)
	}
}
