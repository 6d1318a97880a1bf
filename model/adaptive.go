package model

import (
	"math"
	"time"
)

// Speculation pays only when a round's expected tokens cost less than the same
// tokens decoded one by one. With acceptance rate α (the chance that the
// verifier keeps a draft token), a round proposing k tokens emits on average
//
//	T(k) = (1 − α^(k+1)) / (1 − α)
//
// tokens (the kept prefix plus the verifier's own), and costs k draft steps
// plus one verifier pass over k+1 positions, C(k) = k·d + v(k+1). Plain
// decoding costs v(1) per token, so the speed-up is T(k)·v(1) / C(k). Both d
// and v are measured on the device (MeasureSpecCosts): on a compute-bound CPU
// v(m) grows with m almost as fast as m one-token steps and no k pays; where a
// step is bound by reading the weights (large models, GPUs) v(m) stays near
// v(1) and speculation wins.

// SpecCosts are the measured costs, in seconds, of the two kinds of step.
type SpecCosts struct {
	Draft float64 // one draft step (Forward with the draft mix)
	// VerifyBase + m·VerifyPerPos is one verifier pass over m positions
	// (ForwardMany); m = 1 is plain decoding's step.
	VerifyBase, VerifyPerPos float64
	// VerifyAt, when set, holds measured passes: VerifyAt[m-1] over m
	// positions. The line above fits a pass over many positions, but a
	// batched pass over two or three costs more per position than one over
	// nine (the kernels pair tokens up), and those small ones are what k is
	// chosen among, so where a pass was measured its time is used.
	VerifyAt []float64
}

// Verify is the cost of a verifier pass over m positions.
func (c SpecCosts) Verify(m int) float64 {
	if m >= 1 && m <= len(c.VerifyAt) {
		return c.VerifyAt[m-1]
	}
	return c.VerifyBase + float64(m)*c.VerifyPerPos
}

// Speedup is the expected speed-up over plain decoding of rounds of k draft
// tokens at acceptance rate alpha. k = 0 is plain decoding (1).
func (c SpecCosts) Speedup(k int, alpha float64) float64 {
	if k <= 0 {
		return 1
	}
	alpha = min(max(alpha, 0), 1)
	tokens := float64(k + 1) // alpha = 1: every proposal kept
	if alpha < 1 {
		tokens = (1 - math.Pow(alpha, float64(k+1))) / (1 - alpha)
	}
	return tokens * c.Verify(1) / (float64(k)*c.Draft + c.Verify(k+1))
}

// BestK returns the k in 0…maxK with the highest expected speed-up at
// acceptance rate alpha, and that speed-up; 0 (plain decoding, 1×) unless some
// k beats it.
func (c SpecCosts) BestK(alpha float64, maxK int) (int, float64) {
	best, bestSpeedup := 0, 1.0
	for k := 1; k <= maxK; k++ {
		if s := c.Speedup(k, alpha); s > bestSpeedup {
			best, bestSpeedup = k, s
		}
	}
	return best, bestSpeedup
}

// MeasureSpecCosts times, on this device, one draft step, a plain decoding
// step, and whole rounds of k = 1…min(maxK, 3) draft steps followed by the
// verifier's pass over k+1 positions, as Round runs them (one shared state,
// an argmax per position). A round is timed whole because its passes cost
// more together than apart: the draft's pass leaves the caches to the
// draft's weights, and the verifier pays to bring its own back. VerifyAt[k]
// is then the round's time less its k draft steps, so that k·Draft +
// Verify(k+1) is the round as measured; longer rounds, which pay only where
// short ones do, use the line through the plain step and the longest round.
//
// Every kind of step is timed in turns with the others, each timed run after
// an untimed one of the same kind, and keeps its fastest: on a shared machine
// other work only ever adds time, and taking turns keeps a busy stretch from
// favouring one kind over another. It all takes about as long as 90 plain
// steps where a step lasts minTimed or more, and up to about 700 where steps
// are short enough to be repeated (the module measures once per draft).
func MeasureSpecCosts(w *Weights, draft, verify Mix, maxK int) SpecCosts {
	rounds := max(min(maxK, measuredRounds, w.Config.Context/4-1), 0)
	steps := []*timedStep{newTimedStep(w, nil, verify, 0)} // the plain step, rounds of k = 1…rounds, the draft
	for k := 1; k <= rounds; k++ {
		steps = append(steps, newTimedStep(w, draft, verify, k))
	}
	draftStep := newTimedStep(w, draft, nil, 0)
	steps = append(steps, draftStep)
	for range 4 {
		for _, st := range steps {
			st.run()
		}
	}
	d := draftStep.best
	at := make([]float64, rounds+1)
	at[0] = steps[0].best
	for k := 1; k <= rounds; k++ {
		// A pass over more positions never costs less than one over fewer.
		// Kept so, a clock too coarse to time a step (wazero's default one
		// advances a millisecond per reading, whatever ran between) makes
		// rounds look no cheaper than plain steps, and k auto stays off.
		at[k] = max(steps[k].best-float64(k)*d, at[k-1])
	}
	per := 0.0
	if rounds > 0 {
		per = max(at[rounds]-at[0], 0) / float64(rounds)
	}
	return SpecCosts{Draft: d, VerifyBase: max(at[0]-per, 0), VerifyPerPos: per, VerifyAt: at}
}

// measuredRounds is the longest round MeasureSpecCosts times whole.
const measuredRounds = 3

// StepSeconds times one pass of mix over the given number of positions (the
// fastest of five, each after one to warm the caches: on a shared machine
// other work only ever adds time), as timedStep runs it.
func StepSeconds(w *Weights, mix Mix, positions int) float64 {
	st := newTimedStep(w, nil, mix, positions-1)
	for range 5 {
		st.run()
	}
	return st.best
}

// timedStep is one kind of step on its own scratch state: with draft nil,
// one verifier pass over k+1 positions; otherwise a round, k draft steps then
// the verifier's pass over k+1 positions, or with verify nil one draft step.
// run times it, after an untimed run that warms the caches for it, over
// enough repetitions to last minTimed; best is the fastest per step so far. Like decoding, each run reads other tokens at later
// positions (from a quarter of the context on, so that attention has history
// to read): the same token at the same place every time would find its
// embedding and cache rows warm, and make every step look cheaper than it is.
type timedStep struct {
	w             *Weights
	draft, verify Mix
	k             int
	s             *State
	tokens        []int
	runs          int
	reps          int // steps per timed run: doubled while a run is shorter than minTimed
	best          float64
}

func newTimedStep(w *Weights, draft, verify Mix, k int) *timedStep {
	n := max(min(k+1, w.Config.Context/4), 1)
	return &timedStep{w: w, draft: draft, verify: verify, k: n - 1, s: NewState(w.Config), tokens: make([]int, n), reps: 1, best: math.Inf(1)}
}

func (st *timedStep) once() {
	c := st.w.Config
	st.runs++
	span := max(c.Context/2-len(st.tokens), 1)
	pos := c.Context/4 + (st.runs*len(st.tokens))%span
	for i := range st.tokens {
		st.tokens[i] = ((st.runs*len(st.tokens) + i) * 7919) % c.Vocab
	}
	if st.verify == nil {
		Argmax(Forward(st.w, st.s, st.draft, st.tokens[0], pos))
		return
	}
	if st.draft != nil {
		for i := range st.k {
			Argmax(Forward(st.w, st.s, st.draft, st.tokens[i], pos+i))
		}
	}
	if st.k == 0 {
		Argmax(Forward(st.w, st.s, st.verify, st.tokens[0], pos))
		return
	}
	logits := ForwardMany(st.w, st.s, st.verify, st.tokens, pos)
	for i := range st.tokens {
		Argmax(logits[i*c.Vocab : (i+1)*c.Vocab])
	}
}

func (st *timedStep) run() {
	st.once()
	for {
		start := time.Now()
		for range st.reps {
			st.once()
		}
		elapsed := time.Since(start)
		if elapsed >= minTimed || st.reps >= maxReps {
			st.best = min(st.best, elapsed.Seconds()/float64(st.reps))
			return
		}
		st.reps = min(2*st.reps, maxReps)
	}
}

// A timed run repeats its step until it lasts minTimed (at most maxReps
// times), so that a coarse clock cannot make a step look free: a browser
// page that is not cross-origin isolated reads performance.now() to 100 µs,
// about a whole decode step of the default model, and the fastest of four
// single-step readings was then a tick short, which made speculation look
// like it paid where it did not. A tick is now at most 5 % of a run. (A
// clock that does not move at all makes every step cost the same, and k auto
// stays off.)
const (
	minTimed = 2 * time.Millisecond
	maxReps  = 16
)

// KChooser picks each round's k from the measured costs and the acceptance
// rate seen so far. Its choices depend only on the costs it was given and the
// rounds it observed, so with fixed costs a seeded run is reproducible; greedy
// output never depends on k at all.
type KChooser struct {
	Costs SpecCosts
	MaxK  int
	// Prior is the acceptance rate assumed before any round is seen (e.g.
	// the draft's measured consistency with the verifier); it weighs as much
	// as priorWeight proposals.
	Prior float64

	accepted, proposed float64 // decayed counts
	idle               int     // rounds since the last one that drafted
}

const (
	priorWeight = 8    // proposals the prior is worth
	decay       = 0.95 // weight kept by past proposals each round
	probeEvery  = 16   // plain rounds between probes while speculation is off
	// probeGain is the speed-up a draft that is always right must promise
	// before probes are worth their cost (a probe that is rejected is a
	// round that loses, and a separate draft cache catches up first): at
	// the acceptance a draft usually gets (70 % or so) such a device is
	// about at DraftGain, and measured costs within their noise no longer
	// turn probes on where rounds lose.
	probeGain = 1.3
	// DraftGain is the expected speed-up below which k auto does not draft
	// at all. Rounds timed apart still run faster than the same rounds in
	// a decode (natively on the speculate model, a k = 1 round of S took
	// 1.6–1.7 plain steps measured, 1.9–2.0 in decoding), and the
	// measurement is one short look at a shared machine: a promise of a few
	// percent is within both, and never being slower than plain decoding is
	// the target.
	DraftGain    = 1.15
	maxDraftPerK = 64
)

// Alpha is the current estimate of the acceptance rate.
func (kc *KChooser) Alpha() float64 {
	return (kc.accepted + kc.Prior*priorWeight) / (kc.proposed + priorWeight)
}

// K is the number of draft tokens for the next round: 0 when speculation is
// not expected to pay by DraftGain. While it is off, every probeEvery rounds it proposes
// one token anyway, so a rising acceptance rate can turn it back on — unless
// even a draft that is always accepted could not pay clearly (probeGain) on
// this device.
func (kc *KChooser) K() int {
	maxK := min(max(kc.MaxK, 1), maxDraftPerK)
	if k, s := kc.Costs.BestK(kc.Alpha(), maxK); k > 0 && s >= DraftGain {
		return k
	}
	if _, s := kc.Costs.BestK(1, maxK); s < probeGain {
		return 0
	}
	if kc.idle >= probeEvery {
		return 1
	}
	return 0
}

// Observe records a round's outcome.
func (kc *KChooser) Observe(accepted, proposed int) {
	if proposed == 0 {
		kc.idle++
		return
	}
	kc.idle = 0
	kc.accepted = kc.accepted*decay + float64(accepted)
	kc.proposed = kc.proposed*decay + float64(proposed)
}
