package planner

import (
	"fmt"

	"github.com/matedge/matedge/model"
)

// assumedAcceptance is the share of draft tokens the verifier is assumed to
// keep before a sequence has shown its own: nested drafts of the default
// model keep 56–80 % at k = 2 (matedge speculate). The module's adaptive k
// replaces it with the running rate.
const assumedAcceptance = 0.6

// maxDraftTokens is the largest k the planner considers, as the module's
// adaptive choice does.
const maxDraftTokens = 8

// speculationBackends are the backends the module decodes speculatively on,
// greedy or sampled.
var speculationBackends = map[string]bool{BackendCPU: true, BackendGPU: true}

// Speculation is the planner's estimate of self-speculative decoding for a
// plan: the draft expected to pay most, its k and the expected speed-up over
// plain decoding at assumedAcceptance. DraftTokens 0 means it is not expected
// to pay by model.DraftGain, the margin the module's k auto asks for
// (Speedup is then the best draft's: at its best k, or at k = 1 where no k
// gains at all).
type Speculation struct {
	Draft       string  `msgpack:"draft" json:"draft"`
	DraftTokens int     `msgpack:"draft_tokens" json:"draft_tokens"`
	Speedup     float64 `msgpack:"speedup" json:"speedup"`
}

// speculation estimates speculative decoding for x from the same speed model
// as the plan: a verifier pass over m positions reads the weights once and
// does m positions' arithmetic. It returns nil when no uniform granularity is
// narrower than x's mix.
func (p *planning) speculation(x *candidate) *Speculation {
	c := p.header.Config
	s := p.speeds[x.backend]
	pos := typicalPosition(c)
	seconds := func(w Work, m int, rows int64) float64 { return s.stepSeconds(w, m, x.dispatches, x.binds.extra, rows) }
	v1, vm := seconds(x.work, 1, x.rows), seconds(x.work, maxDraftTokens+1, x.rows)
	per := (vm - v1) / maxDraftTokens
	var best *Speculation
	for g := range c.FFNWidths {
		draft := c.Uniform(g)
		if !draft.NarrowerThan(x.mix) {
			continue
		}
		rows := int64(0)
		if x.rows > 0 {
			rows = MatrixRows(c, draft)
		}
		costs := model.SpecCosts{Draft: seconds(DecodeWork(c, draft, pos), 1, rows), VerifyBase: v1 - per, VerifyPerPos: per}
		k, speedup := costs.BestK(assumedAcceptance, maxDraftTokens)
		if k == 0 {
			speedup = costs.Speedup(1, assumedAcceptance) // how far from paying: k = 1's
		} else if speedup < model.DraftGain {
			k = 0 // the module's k auto does not draft for less
		}
		if best == nil || speedup > best.Speedup {
			best = &Speculation{Draft: c.MixSpec(draft), DraftTokens: k, Speedup: speedup}
		}
	}
	return best
}

// explainSpeculation says whether speculation pays for x, and why.
func (p *planning) explainSpeculation(x *candidate, sp *Speculation, add func(string, ...any)) {
	if !speculationBackends[x.backend] {
		add("Self-speculative decoding runs on the cpu and gpu backends only, so it is not planned on the %s.", x.backend)
		return
	}
	if sp == nil {
		add("Self-speculative decoding needs a narrower draft than %s; there is none.", p.spec(x.mix))
		return
	}
	s := p.speeds[x.backend].bench
	byBytes := float64(x.work.Bytes) / (s.GBps * 1e9)
	byFLOPs := float64(x.work.FLOPs) / (s.GFLOPs * 1e9)
	why := fmt.Sprintf("a step of %s is bound by reading its %s of weights and cache (%s ms, against %s ms of arithmetic), so checking several tokens in one pass costs little more than one",
		p.spec(x.mix), formatBytes(x.work.Bytes), formatRate(byBytes*1e3), formatRate(byFLOPs*1e3))
	if 1.25*byFLOPs >= byBytes {
		why = fmt.Sprintf("a step of %s is bound by arithmetic (%s ms, against %s ms to read its %s), so checking k tokens in one pass costs about k steps",
			p.spec(x.mix), formatRate(byFLOPs*1e3), formatRate(byBytes*1e3), formatBytes(x.work.Bytes))
	}
	if sp.DraftTokens > 0 {
		add("Self-speculative decoding should pay here: draft %s proposing %d tokens a round gives about %.2f× at an assumed %.0f %% acceptance, because %s; -draft auto measures it and chooses k as it goes.",
			sp.Draft, sp.DraftTokens, sp.Speedup, 100*assumedAcceptance, why)
		return
	}
	add("Self-speculative decoding would not pay here (at best %.2f×, draft %s, at an assumed %.0f %% acceptance; k auto drafts from %.2f×): %s; -draft auto measures it and keeps it off where it does not pay.",
		sp.Speedup, sp.Draft, 100*assumedAcceptance, model.DraftGain, why)
}
