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
// plain rounds (k = 0) and the last few rounds with proposals. A
// gpuSpeculative with adaptive k adds each round it times; the engine keeps
// it across sequences (Engine.gpuRounds), so a sequence starts from what the
// earlier ones measured.
//
// Only recent rounds count, and each round with proposals is measured
// against the plain rounds of its time: on a machine whose load changes (a
// software adapter such as lavapipe shares the CPU with everything else), a
// plain time measured a minute ago against a draft round measured now would
// make drafting look cheaper or dearer than it is. What the speed-up depends
// on is the ratio of the two costs, so a round of k proposals is kept as
// what each proposal added relative to the median plain round when it ran,
// and the plain rounds are kept recent: while speculation is on, every
// plainEvery rounds one is plain (gpuSpeculative.nextK), which costs what
// plain decoding does.
//
// While the chooser does not draft, its own probes (model.KChooser), which
// watch the acceptance rate, stop where the fitted costs say that even a
// draft that is always right could not pay; a fit thrown off by a busy
// moment during the few rounds it was made from would then never be
// corrected. So a round that drafts one token comes every retimeAfter rounds
// without proposals: retimeEvery at first, doubling (up to retimeMost) each
// time that round's cost still promises no gain, so that where drafting does
// not pay they cost little; and retimeSoon after one whose cost promises a
// gain, so that the medians turn within a few rounds.
type gpuRoundTimes struct {
	seen        [maxAdaptiveK + 1]int // rounds timed at each k, the untrusted first included
	plain       []float64             // the last roundSamples plain rounds, in seconds, oldest first
	perDraft    []float64             // the last roundSamples rounds with proposals: (time − plain)/(k·plain), oldest first
	sincePlain  int                   // rounds timed since the last plain one
	sinceDraft  int                   // rounds timed since the last one with proposals
	retimeAfter int                   // rounds without proposals before one re-times drafting; 0 means retimeEvery
}

const (
	// roundSamples is how many recent rounds of each kind are kept; the
	// fit takes medians, so that a round slowed by something else on the
	// machine does not count.
	roundSamples = 5
	// roundsToFit is how many plain rounds, and rounds with proposals, the
	// fit needs; until then the rounds alternate between k = 0 and k = 1.
	roundsToFit = roundSamples
	// plainEvery is how often, while speculation is on, a round is plain
	// to keep the plain time current.
	plainEvery = 8
	// retimeEvery, retimeMost and retimeSoon bound the rounds without
	// proposals between rounds that re-time drafting while the chooser
	// does not draft: at first, at most, and after one that promised a
	// gain. A re-timing round of one proposal costs about one draft step
	// more than a plain one and emits 1 + α tokens.
	retimeEvery = 32
	retimeMost  = 512
	retimeSoon  = 2
)

// observe records a round of k proposals that took seconds. The first round
// at each k is not kept: it may include compiling the pipelines it is the
// first to use; nor is a round with proposals before any plain one.
func (r *gpuRoundTimes) observe(k int, seconds float64) {
	if k < 0 || k >= len(r.seen) {
		return
	}
	r.seen[k]++
	if k == 0 {
		r.sincePlain = 0
		r.sinceDraft++
	} else {
		r.sincePlain++
		r.sinceDraft = 0
	}
	switch {
	case r.seen[k] == 1:
	case k == 0:
		r.plain = keepLast(r.plain, seconds)
	case len(r.plain) > 0:
		plain := median(r.plain)
		r.perDraft = keepLast(r.perDraft, (seconds-plain)/(float64(k)*plain))
	}
}

// keepLast appends x to xs, keeping the last roundSamples.
func keepLast[T any](xs []T, x T) []T {
	if len(xs) == roundSamples {
		xs = append(xs[:0], xs[1:]...)
	}
	return append(xs, x)
}

// retimeDue reports whether the next round, if the chooser does not draft,
// should draft one token to re-time drafting.
func (r *gpuRoundTimes) retimeDue() bool { return r.sinceDraft >= r.retimeWait() }

// retimeWait is how many rounds without proposals come before one that
// re-times drafting.
func (r *gpuRoundTimes) retimeWait() int {
	if r.retimeAfter == 0 {
		return retimeEvery
	}
	return r.retimeAfter
}

// retimed sets the wait before the next re-timing round, after one whose
// cost promised a gain or did not.
func (r *gpuRoundTimes) retimed(promising bool) {
	switch wait := r.retimeWait(); {
	case promising:
		r.retimeAfter = retimeSoon
	case wait < retimeEvery:
		r.retimeAfter = retimeEvery
	default:
		r.retimeAfter = min(2*wait, retimeMost)
	}
}

// ready reports whether there are enough round times to fit.
func (r *gpuRoundTimes) ready() bool {
	return len(r.plain) >= roundsToFit && len(r.perDraft) >= roundsToFit
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

// costs fits the round times (call it once ready): VerifyBase is the median
// plain round, Draft the median of what a proposal added to a round, in
// plain rounds of its time, times that.
func (r *gpuRoundTimes) costs() model.SpecCosts {
	base := median(r.plain)
	return model.SpecCosts{Draft: max(median(r.perDraft), 0) * base, VerifyBase: base}
}

// median is the lower median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[(len(s)-1)/2]
}

// gpuRounds returns the round times of draft, the mix, the precision and
// greedy or sampled rounds (a sampled round with proposals reads back and
// judges rows of logits, and costs more), kept since the weights were loaded.
func (e *Engine) gpuRounds(draft model.Mix, half, sampled bool) *gpuRoundTimes {
	key := gpuRoundsKey(draft, e.mix, half, sampled)
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

func gpuRoundsKey(draft, verify model.Mix, half, sampled bool) string {
	return fmt.Sprint(draft, verify, half, sampled)
}

// gpuAutoDraft picks the draft for "auto" on the gpu backend: of
// draftCandidates, the narrowest whose rounds have not been timed enough yet
// (so that each candidate is measured on the device, over the first
// sequences), and once all have, the one with the best expected speed-up at
// the prior acceptance rate — as autoDraft does on the cpu from its measured
// costs.
func (e *Engine) gpuAutoDraft(half, sampled bool) (model.Mix, error) {
	drafts, err := e.draftCandidates()
	if err != nil {
		return nil, err
	}
	var best model.Mix
	bestSpeedup := 0.0
	for _, draft := range drafts {
		r := e.gpuRounds(draft, half, sampled)
		if !r.ready() {
			return draft, nil
		}
		if _, s := r.costs().BestK(specPrior, maxAdaptiveK); best == nil || s > bestSpeedup {
			best, bestSpeedup = draft, s
		}
	}
	return best, nil
}

var processStart = time.Now()

// monotonic is the clock rounds are timed with: time since the process
// started, from Go's monotonic clock (in the module, WASI's clock_time_get
// with the monotonic clock; in a browser, performance.now).
func monotonic() time.Duration { return time.Since(processStart) }
