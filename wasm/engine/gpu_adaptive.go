package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/matedge/matedge/model"
)

// The gpu backend chooses k round by round as the cpu backend does
// (model.KChooser), from costs measured on the device. The cpu backend times
// a draft step and verifier passes before the sequence (model.MeasureSpecCosts);
// the gpu backend cannot: in a browser a readback completes only once the
// module has returned to the event loop, so no measurement can wait for the
// GPU inside reset. It times its rounds instead, from the submission to the
// readback's arrival — which is what a round costs, readback included — and
// fits them, per draft, verifier and precision, across the engine's sequences
// (gpuRoundTimes).
//
// A round of k proposals costs k draft steps and one verifier pass over k+1
// positions: k·d + v(1) + k·v′ where v′ is a verifier position's extra cost,
// plus the round's fixed cost o (submission, readback). Plain decoding costs
// v(1) + o a token. The speed-up model.SpecCosts computes depends only on
// those two sums, so the fit's
//
//	SpecCosts{Draft: d + v′, VerifyBase: v(1) + o, VerifyPerPos: 0}
//
// expects the same speed-up as the costs taken apart would.

// gpuRoundTimes is what the gpu backend has measured of its rounds for one
// draft, verifier mix and precision on the engine's device: the last few
// round times at each k. A gpuSpeculative with adaptive k adds each round it
// times; the engine keeps it across sequences (Engine.gpuRounds), so a
// sequence starts from what the earlier ones measured.
type gpuRoundTimes struct {
	seen  [maxAdaptiveK + 1]int       // rounds timed at each k, the untrusted first included
	times [maxAdaptiveK + 1][]float64 // the last roundSamples of them, in seconds, oldest first
}

const (
	// roundSamples is how many recent round times are kept per k; their
	// median is the k's cost, so that a round slowed by something else on
	// the machine does not count.
	roundSamples = 5
	// roundsToFit is how many round times at k = 0, and at k > 0, the fit
	// needs; until then the rounds alternate between k = 0 and k = 1.
	roundsToFit = 3
)

// observe records a round of k proposals that took seconds. The first round
// at each k is not kept: it may include compiling the pipelines it is the
// first to use.
func (r *gpuRoundTimes) observe(k int, seconds float64) {
	if k < 0 || k >= len(r.seen) {
		return
	}
	r.seen[k]++
	if r.seen[k] == 1 {
		return
	}
	if len(r.times[k]) == roundSamples {
		r.times[k] = r.times[k][1:]
	}
	r.times[k] = append(r.times[k], seconds)
}

// drafted is the number of round times kept at k > 0.
func (r *gpuRoundTimes) drafted() int {
	n := 0
	for _, t := range r.times[1:] {
		n += len(t)
	}
	return n
}

// ready reports whether there are enough round times to fit.
func (r *gpuRoundTimes) ready() bool {
	return len(r.times[0]) >= roundsToFit && r.drafted() >= roundsToFit
}

// learningK is the k of a round while the times are not ready: k = 0 and
// k = 1 in turn, so that learning costs at most one draft token a round.
func (r *gpuRoundTimes) learningK() int {
	drafted := 0
	for _, n := range r.seen[1:] {
		drafted += n
	}
	if r.seen[0] <= drafted {
		return 0
	}
	return 1
}

// costs fits the round times: VerifyBase is the median plain round (k = 0),
// Draft the slope that best fits the medians at each k > 0 above it (least
// squares through VerifyBase, each k weighed by its samples). Call it once
// ready.
func (r *gpuRoundTimes) costs() model.SpecCosts {
	base := median(r.times[0])
	var num, den float64
	for k := 1; k < len(r.times); k++ {
		if n := float64(len(r.times[k])); n > 0 {
			num += n * float64(k) * (median(r.times[k]) - base)
			den += n * float64(k*k)
		}
	}
	return model.SpecCosts{Draft: max(num/den, 0), VerifyBase: base}
}

// median is the lower median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[(len(s)-1)/2]
}

// gpuRounds returns the round times of draft, the mix and the precision, kept
// since the weights were loaded.
func (e *Engine) gpuRounds(draft model.Mix, half bool) *gpuRoundTimes {
	key := gpuRoundsKey(draft, e.mix, half)
	if r, ok := e.gpuRoundTimes[key]; ok {
		return r
	}
	if e.gpuRoundTimes == nil {
		e.gpuRoundTimes = map[string]*gpuRoundTimes{}
	}
	r := &gpuRoundTimes{}
	e.gpuRoundTimes[key] = r
	return r
}

func gpuRoundsKey(draft, verify model.Mix, half bool) string {
	return fmt.Sprint(draft, verify, half)
}

// gpuAutoDraft picks the draft for "auto" on the gpu backend: of the uniform
// granularities narrower than the mix in every layer and already in memory,
// the narrowest whose rounds have not been timed enough yet (so that each
// candidate is measured on the device, over the first sequences), and once
// all have, the one with the best expected speed-up at the prior acceptance
// rate — as autoDraft does on the cpu from its measured costs.
func (e *Engine) gpuAutoDraft(half bool) (model.Mix, error) {
	c := e.header.Config
	var best model.Mix
	bestSpeedup := 0.0
	for g := range c.FFNWidths {
		draft := c.Uniform(g)
		if !draft.NarrowerThan(e.mix) || len(e.asm.Missing(draft)) > 0 {
			continue
		}
		r := e.gpuRounds(draft, half)
		if !r.ready() {
			return draft, nil
		}
		if _, s := r.costs().BestK(specPrior, maxAdaptiveK); best == nil || s > bestSpeedup {
			best, bestSpeedup = draft, s
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: draft auto: no granularity is narrower than the mix %s", ErrArg, c.MixSpec(e.mix))
	}
	return best, nil
}

var processStart = time.Now()

// monotonic is the clock rounds are timed with: time since the process
// started, from Go's monotonic clock (in the module, WASI's clock_time_get
// with the monotonic clock; in a browser, performance.now).
func monotonic() time.Duration { return time.Since(processStart) }
