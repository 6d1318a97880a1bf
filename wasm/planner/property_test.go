package planner

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// logUniform draws from [lo, hi] evenly in log scale.
func logUniform(r *rand.Rand, lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo)))
}

// randomCapabilities draws a device: sometimes without an adapter, memory,
// network or benchmarks, with limits and rates over several decades.
func randomCapabilities(r *rand.Rand) Capabilities {
	var caps Capabilities
	if r.IntN(10) < 6 {
		a := &Adapter{Type: []string{"", "discrete-gpu", "integrated-gpu", "cpu"}[r.IntN(4)], Fallback: r.IntN(5) == 0}
		if r.IntN(3) > 0 {
			a.Limits.MaxStorageBufferBindingSize = uint64(logUniform(r, 64<<10, 2<<30))
		}
		if r.IntN(3) > 0 {
			a.Limits.MaxBufferSize = uint64(logUniform(r, 64<<10, 4<<30))
		}
		caps.Adapter = a
	}
	if r.IntN(5) > 0 {
		caps.DeviceMemoryBytes = int64(logUniform(r, 256<<10, 16<<30))
	}
	if r.IntN(3) > 0 {
		caps.Network.DownlinkMbps = logUniform(r, 0.05, 20)
	}
	caps.Network.SaveData = r.IntN(10) == 0
	for _, backend := range []string{BackendCPU, BackendGPU} {
		if r.IntN(2) == 0 || (backend == BackendGPU && caps.Adapter == nil) {
			continue
		}
		gbps := logUniform(r, 0.01, 500)
		caps.Benchmarks = append(caps.Benchmarks, Benchmark{Backend: backend, GBps: gbps,
			GFLOPs: gbps * logUniform(r, 0.2, 2), StepOverheadMicros: r.Float64() * 5000})
	}
	return caps
}

func randomBudget(r *rand.Rand) Budget {
	var b Budget
	if r.IntN(3) > 0 {
		b.TargetTokensPerSecond = logUniform(r, 0.1, 2000)
	}
	if r.IntN(2) == 0 {
		b.MaxDownloadBytes = int64(logUniform(r, 10<<10, 1<<30))
	}
	if r.IntN(2) == 0 {
		b.MaxDownloadSeconds = logUniform(r, 0.5, 300)
	}
	if r.IntN(2) == 0 {
		b.MaxMemoryBytes = int64(logUniform(r, 256<<10, 8<<30))
	}
	b.Backend = []string{"", "", "auto", BackendCPU, BackendGPU}[r.IntN(5)]
	return b
}

// allMixes lists every one of the G^layers mixes.
func allMixes(c model.Config) []model.Mix {
	mixes := []model.Mix{{}}
	for range c.Layers {
		var next []model.Mix
		for _, m := range mixes {
			for g := range c.Granularities() {
				next = append(next, append(append(model.Mix{}, m...), g))
			}
		}
		mixes = next
	}
	return mixes
}

// TestRandomDevices checks Choose against brute force over every mix of two
// small models on seeded random devices and budgets: a plan never breaks a
// hard limit; a plan is returned exactly when some mix fits, and it is the
// best (most parameters, or least download under save-data); when none
// fits, the error names a constraint that the smallest mix breaks.
func TestRandomDevices(t *testing.T) {
	five := model.Config{Vocab: 2048, Dim: 128, Layers: 5, Heads: 4, FFNWidths: model.NestedWidths(512),
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
	headers := []*weights.Header{tinyHeader(t, nil), layoutHeader(five)}
	r := rand.New(rand.NewPCG(5, 5))
	var fits, fails int
	for trial := range 400 {
		h := headers[trial%len(headers)]
		caps, budget := randomCapabilities(r), randomBudget(r)
		plan, err := Choose(caps, h, budget)

		p, perr := newPlanning(&caps, h, budget)
		if perr != nil {
			t.Fatal(perr)
		}
		var best *candidate
		for _, backend := range p.backends() {
			if backend == BackendGPU && caps.Adapter == nil {
				continue
			}
			for _, mix := range allMixes(h.Config) {
				if x := p.price(mix, backend); p.violation(x) == "" && (best == nil || p.better(x, best)) {
					best = x
				}
			}
		}

		if best == nil {
			fails++
			var ce *ConstraintError
			if !errors.As(err, &ce) || !errors.Is(err, ErrNoFit) {
				t.Fatalf("trial %d: no mix fits, Choose = %s, %v; want a constraint error", trial, plan.Spec, err)
			}
			if ce.Constraint == ConstraintBackend {
				if caps.Adapter != nil || budget.Backend != BackendGPU {
					t.Fatalf("trial %d: backend constraint with adapter %v, budget backend %q", trial, caps.Adapter, budget.Backend)
				}
				continue
			}
			_, eerr := Evaluate(caps, h, budget, h.Config.Uniform(0), ce.Backend)
			if !isConstraint(eerr, ce.Constraint) {
				t.Fatalf("trial %d: error names %s, but the smallest mix on %s gives %v", trial, ce.Constraint, ce.Backend, eerr)
			}
			continue
		}
		fits++
		if err != nil {
			t.Fatalf("trial %d: %v fits on %s, but Choose = %v", trial, best.mix, best.backend, err)
		}
		if _, err := Evaluate(caps, h, budget, plan.Mix, plan.Backend); err != nil {
			t.Fatalf("trial %d: chosen %s on %s does not fit: %v", trial, plan.Spec, plan.Backend, err)
		}
		checkHardLimits(t, trial, caps, budget, plan)
		if caps.Network.SaveData {
			if plan.DownloadBytes != best.download {
				t.Fatalf("trial %d: save-data plan downloads %d; %v downloads %d", trial, plan.DownloadBytes, best.mix, best.download)
			}
		} else if plan.NonEmbeddingParams != best.params {
			t.Fatalf("trial %d: plan %s has %d params; %v on %s fits with %d", trial, plan.Spec, plan.NonEmbeddingParams, best.mix, best.backend, best.params)
		}
	}
	t.Logf("%d trials fit, %d did not", fits, fails)
	if fits < 50 || fails < 50 {
		t.Errorf("%d trials fit and %d did not; the generator should exercise both", fits, fails)
	}
}

// checkHardLimits checks a plan against the budget directly, not through
// the planner's own check.
func checkHardLimits(t *testing.T, trial int, caps Capabilities, b Budget, p Plan) {
	t.Helper()
	switch {
	case b.MaxDownloadBytes > 0 && p.DownloadBytes > b.MaxDownloadBytes:
		t.Fatalf("trial %d: download %d over the budget's %d", trial, p.DownloadBytes, b.MaxDownloadBytes)
	case b.MaxDownloadSeconds > 0 && caps.Network.DownlinkMbps > 0 && float64(p.DownloadBytes) > b.MaxDownloadSeconds*caps.Network.DownlinkMbps*1e6/8:
		t.Fatalf("trial %d: download %d takes over %g s at %g Mbit/s", trial, p.DownloadBytes, b.MaxDownloadSeconds, caps.Network.DownlinkMbps)
	case b.MaxMemoryBytes > 0 && p.MemoryBytes > b.MaxMemoryBytes:
		t.Fatalf("trial %d: memory %d over the budget's %d", trial, p.MemoryBytes, b.MaxMemoryBytes)
	case caps.DeviceMemoryBytes > 0 && p.MemoryBytes > caps.DeviceMemoryBytes/2:
		t.Fatalf("trial %d: memory %d over half the device's %d", trial, p.MemoryBytes, caps.DeviceMemoryBytes)
	case p.PredictedTokensPerSecond < b.TargetTokensPerSecond:
		t.Fatalf("trial %d: %g tokens/s under the target %g", trial, p.PredictedTokensPerSecond, b.TargetTokensPerSecond)
	case p.Backend == BackendGPU && caps.Adapter == nil:
		t.Fatalf("trial %d: gpu plan without an adapter", trial)
	case (b.Backend == BackendCPU || b.Backend == BackendGPU) && p.Backend != b.Backend:
		t.Fatalf("trial %d: plan on %s, budget asks for %s", trial, p.Backend, b.Backend)
	}
}

// TestTighterNeverBigger: on random devices, a higher speed target or a
// smaller download or memory budget never gives a plan with more parameters.
func TestTighterNeverBigger(t *testing.T) {
	h := layoutHeader(midConfig())
	r := rand.New(rand.NewPCG(6, 6))
	size := func(caps Capabilities, b Budget) int {
		p, err := Choose(caps, h, b)
		if err != nil {
			if !errors.Is(err, ErrNoFit) {
				t.Fatal(err)
			}
			return 0
		}
		return p.NonEmbeddingParams
	}
	for trial := range 60 {
		caps, b := randomCapabilities(r), randomBudget(r)
		caps.Network.SaveData = false
		base := size(caps, b)
		tighter := []Budget{b, b, b}
		tighter[0].TargetTokensPerSecond = max(b.TargetTokensPerSecond*2, 1)
		tighter[1].MaxDownloadBytes = 100 << 20
		if b.MaxDownloadBytes > 0 {
			tighter[1].MaxDownloadBytes = b.MaxDownloadBytes / 2
		}
		tighter[2].MaxMemoryBytes = 200 << 20
		if b.MaxMemoryBytes > 0 {
			tighter[2].MaxMemoryBytes = b.MaxMemoryBytes / 2
		}
		for i, tb := range tighter {
			if got := size(caps, tb); got > base {
				t.Fatalf("trial %d, tightening %d: %d params, more than %d before (budget %+v → %+v)", trial, i, got, base, b, tb)
			}
		}
	}
}
