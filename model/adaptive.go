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

// MeasureSpecCosts times, on this device, one draft step and verifier passes
// over 1, 2, …, maxK+1 positions.
func MeasureSpecCosts(w *Weights, draft, verify Mix, maxK int) SpecCosts {
	m := max(min(maxK+1, w.Config.Context/2), 1)
	at := make([]float64, m)
	for i := range at {
		at[i] = StepSeconds(w, verify, i+1)
	}
	per := 0.0
	if m > 1 {
		per = max(at[m-1]-at[0], 0) / float64(m-1)
	}
	return SpecCosts{Draft: StepSeconds(w, draft, 1), VerifyBase: max(at[0]-per, 0), VerifyPerPos: per, VerifyAt: at}
}

// StepSeconds times one pass of mix over the given number of positions (the
// fastest of five, after one to warm the caches: on a shared machine other
// work only ever adds time) on a scratch state at a quarter of the context,
// so that attention has history to read.
func StepSeconds(w *Weights, mix Mix, positions int) float64 {
	c := w.Config
	s := NewState(c)
	positions = max(min(positions, c.Context/2), 1)
	pos := min(c.Context/4, c.Context-positions)
	tokens := make([]int, positions)
	for i := range tokens {
		tokens[i] = (i * 7919) % c.Vocab
	}
	best := math.Inf(1)
	for i := range 6 {
		start := time.Now()
		if positions == 1 {
			Forward(w, s, mix, tokens[0], pos)
		} else {
			ForwardMany(w, s, mix, tokens, pos)
		}
		if i > 0 {
			best = min(best, time.Since(start).Seconds())
		}
	}
	return best
}

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
	priorWeight  = 8    // proposals the prior is worth
	decay        = 0.95 // weight kept by past proposals each round
	probeEvery   = 16   // plain rounds between probes while speculation is off
	maxDraftPerK = 64
)

// Alpha is the current estimate of the acceptance rate.
func (kc *KChooser) Alpha() float64 {
	return (kc.accepted + kc.Prior*priorWeight) / (kc.proposed + priorWeight)
}

// K is the number of draft tokens for the next round: 0 when speculation is
// not expected to pay. While it is off, every probeEvery rounds it proposes
// one token anyway, so a rising acceptance rate can turn it back on — unless
// even a draft that is always accepted could not pay on this device.
func (kc *KChooser) K() int {
	maxK := min(max(kc.MaxK, 1), maxDraftPerK)
	if k, _ := kc.Costs.BestK(kc.Alpha(), maxK); k > 0 {
		return k
	}
	if best, _ := kc.Costs.BestK(1, maxK); best == 0 {
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
