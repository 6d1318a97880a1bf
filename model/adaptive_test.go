package model

import (
	"math"
	"slices"
	"testing"
)

func TestSpecCostsSpeedup(t *testing.T) {
	// A weight-bound device: a pass over 5 positions costs little more than
	// one; the draft is a quarter of the verifier.
	bound := SpecCosts{Draft: 0.25, VerifyBase: 0.95, VerifyPerPos: 0.05}
	// k = 2, alpha = 0.5: T = (1 − 0.125)/0.5 = 1.75 tokens for 2·0.25 + 1.1.
	if got, want := bound.Speedup(2, 0.5), 1.75*1.0/1.6; math.Abs(got-want) > 1e-12 {
		t.Errorf("Speedup(2, 0.5) = %v, want %v", got, want)
	}
	if got := bound.Speedup(0, 0.9); got != 1 {
		t.Errorf("Speedup(0) = %v, want 1", got)
	}
	if k, s := bound.BestK(0.8, 8); k == 0 || s <= 1 {
		t.Errorf("weight-bound device, alpha 0.8: BestK = %d (%.2f×), want speculation on", k, s)
	}
	if k, _ := bound.BestK(0.05, 8); k != 0 {
		t.Errorf("alpha 0.05: BestK = %d, want 0 (off)", k)
	}
	// A compute-bound device: verifying m positions costs m steps, so even a
	// draft that is always right cannot pay for itself.
	compute := SpecCosts{Draft: 0.4, VerifyBase: 0, VerifyPerPos: 1}
	for _, alpha := range []float64{0, 0.5, 0.9, 1} {
		if k, s := compute.BestK(alpha, 8); k != 0 || s != 1 {
			t.Errorf("compute-bound, alpha %v: BestK = %d (%.2f×), want 0", alpha, k, s)
		}
	}
	// More acceptance never lowers the best speed-up.
	prev := 0.0
	for alpha := 0.0; alpha <= 1; alpha += 0.05 {
		_, s := bound.BestK(alpha, 8)
		if s < prev-1e-12 {
			t.Errorf("best speed-up fell from %v to %v at alpha %v", prev, s, alpha)
		}
		prev = s
	}
}

func TestKChooserFollowsAcceptance(t *testing.T) {
	kc := &KChooser{Costs: SpecCosts{Draft: 0.25, VerifyBase: 0.95, VerifyPerPos: 0.05}, MaxK: 8, Prior: 0.7}
	if kc.K() == 0 {
		t.Fatalf("prior 0.7 on a weight-bound device: k = 0")
	}
	for range 100 { // the draft is never right
		kc.Observe(0, max(kc.K(), 1))
	}
	if k := kc.K(); k != 0 {
		t.Fatalf("after 100 rejected rounds: k = %d, want 0", k)
	}
	// Off, it probes with one token every probeEvery plain rounds.
	probes := 0
	for range 4 * probeEvery {
		k := kc.K()
		if k > 0 {
			probes++
		}
		kc.Observe(0, k)
	}
	if probes < 3 || probes > 4 {
		t.Errorf("%d probes in %d rounds, want one per %d", probes, 4*probeEvery, probeEvery)
	}
	// Accepted again, it turns back on (after enough probes to promise
	// DraftGain).
	for range 30 * probeEvery {
		k := kc.K()
		kc.Observe(k, k)
	}
	if kc.K() == 0 {
		t.Errorf("after rounds that accept everything: k = 0")
	}
	// Where nothing can pay, it never probes.
	never := &KChooser{Costs: SpecCosts{Draft: 0.4, VerifyPerPos: 1}, MaxK: 8, Prior: 1}
	for range 3 * probeEvery {
		if k := never.K(); k != 0 {
			t.Fatalf("compute-bound device: k = %d", k)
		}
		never.Observe(0, 0)
	}
}

// TestAdaptiveSpeculationIsVerifierGreedy: whatever k the chooser picks round
// by round — including 0, plain steps — greedy output is the verifier's, with
// a shared or a separate draft cache.
func TestAdaptiveSpeculationIsVerifierGreedy(t *testing.T) {
	w := specWeights(t)
	c := w.Config
	prompt := []int{2, 7, 1}
	want := greedyDecode(w, c.Uniform(3), prompt, 20)
	costs := map[string]SpecCosts{
		"weight-bound":  {Draft: 0.1, VerifyBase: 1, VerifyPerPos: 0.01},
		"compute-bound": {Draft: 0.4, VerifyPerPos: 1},
		"borderline":    {Draft: 0.3, VerifyBase: 0.5, VerifyPerPos: 0.5},
	}
	for name, cost := range costs {
		for _, shared := range []bool{true, false} {
			kc := &KChooser{Costs: cost, MaxK: 6, Prior: 0.6}
			sp := Speculator{Weights: w, Draft: c.Uniform(0), Verify: c.Uniform(3), Shared: shared, Adaptive: kc}
			got, st := sp.Generate(prompt, 20)
			if !slices.Equal(got, want) {
				t.Fatalf("%s, shared %v: %v; verifier alone %v", name, shared, got, want)
			}
			if name == "compute-bound" && st.Proposed != 0 {
				t.Errorf("compute-bound: %d tokens proposed, want none", st.Proposed)
			}
			if name == "weight-bound" && st.Proposed == 0 {
				t.Errorf("weight-bound: nothing proposed")
			}
		}
	}
}

func TestMeasureSpecCosts(t *testing.T) {
	w := specWeights(t)
	c := w.Config
	costs := MeasureSpecCosts(w, c.Uniform(0), c.Uniform(3), 4)
	if !(costs.Draft > 0) || !(costs.Verify(1) > 0) || costs.VerifyBase < 0 || costs.VerifyPerPos < 0 {
		t.Errorf("costs %+v: want positive times", costs)
	}
	if len(costs.VerifyAt) != measuredRounds+1 || !(costs.VerifyAt[0] > 0) {
		t.Errorf("costs %+v: want the plain step and rounds of k = 1…%d measured", costs, measuredRounds)
	}
}

// TestSpecCostsMeasuredPasses: where a pass over m positions was measured,
// its time is the cost, not the fitted line's.
func TestSpecCostsMeasuredPasses(t *testing.T) {
	c := SpecCosts{Draft: 0.5, VerifyBase: 0.7, VerifyPerPos: 0.3, VerifyAt: []float64{1, 1.6, 1.9}}
	for m, want := range map[int]float64{1: 1, 2: 1.6, 3: 1.9, 4: 1.9, 10: 3.7} {
		if got := c.Verify(m); math.Abs(got-want) > 1e-12 {
			t.Errorf("Verify(%d) = %v, want %v", m, got, want)
		}
	}
	// The line alone would make k = 1 pay at alpha 0.9 (1.9 tokens for
	// 0.5 + 1.3); the measured pass over two positions does not (1.9 / 2.1).
	if k, _ := c.BestK(0.9, 2); k != 0 {
		t.Errorf("BestK(0.9, 2) = %d, want 0", k)
	}
	c.VerifyAt = nil
	if k, _ := c.BestK(0.9, 2); k == 0 {
		t.Errorf("without measured passes: BestK(0.9, 2) = 0, want speculation on")
	}
}
