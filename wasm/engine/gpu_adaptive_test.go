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
type roundCosts struct {
	dev             *roundDevice
	plain, perDraft time.Duration
	now             time.Duration
}

func (r *roundCosts) clock() time.Duration {
	k := (int(r.dev.lastRead)/4 - 1) / 2
	r.now += r.plain + time.Duration(max(k, 0))*r.perDraft
	return r.now
}

// stepRecord is what one step of a generation did on the device.
type stepRecord struct {
	token, dispatches, reads, readBytes, k int
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
		dispatches, reads, readBytes := dev.dispatches, dev.reads, dev.readBytes
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
		out = append(out, stepRecord{tok, dev.dispatches - dispatches, dev.reads - reads, dev.readBytes - readBytes, e.Speculation().K})
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
//     nothing, and each of its steps is a plain step: the dispatches and the
//     one 4-byte read of the verifier alone;
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
		rounds := e.gpuRounds(e.header.Config.Uniform(0), false)
		if !rounds.ready() {
			t.Fatalf("after a sequence: round times %+v; want enough to fit", rounds)
		}
		c := rounds.costs()
		if c.VerifyBase != 0.001 || c.Draft < 0.0099 || c.Draft > 0.0101 {
			t.Errorf("fitted costs %+v; want VerifyBase 1 ms, Draft 10 ms", c)
		}
		off := recordSteps(t, e, dev, "XL", o)
		check("draft S, drafting never pays", off)
		if info := e.Speculation(); info.Proposed != 0 || info.Rounds != len(off) {
			t.Errorf("drafting never pays: %+v for %d tokens; want nothing proposed, a round a token", info, len(off))
		}
		// Every round is a plain step: the first steps differ (the prompt:
		// the verifier alone runs it all in one pass, speculation all but
		// its last token, then a round on that one).
		for i := 1; i < len(off); i++ {
			a, s := alone[i], off[i]
			if s.dispatches != a.dispatches || s.reads != 1 || s.readBytes != 4 || a.reads != 1 || a.readBytes != 4 {
				t.Errorf("step %d with k = 0: %d dispatches, %d reads of %d bytes; the verifier alone %d, %d of %d",
					i, s.dispatches, s.reads, s.readBytes, a.dispatches, a.reads, a.readBytes)
				break
			}
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
