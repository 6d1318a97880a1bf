package abi_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzPlanRequest decodes plan's msgpack PlanRequest as the module's plan
// export does and plans it for the tiny model: a document is refused or
// planned, never a panic; a plan without an error fits the model. The corpus
// holds the device profiles of wasm/planner/testdata and budgets at their
// edges (targets of 0, 1e9 and past it, NaN and ±Inf, negative and huge byte
// limits, unknown backends), benchmarks with zero, negative and non-finite
// rates, truncated and trailing bytes.
func FuzzPlanRequest(f *testing.F) {
	add := func(req any) {
		b, err := msgpack.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	profiles, _ := filepath.Glob(filepath.Join("..", "planner", "testdata", "*.json"))
	var caps []planner.Capabilities
	for _, p := range profiles {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var c planner.Capabilities
		if err := json.Unmarshal(b, &c); err != nil {
			f.Fatal(err)
		}
		caps = append(caps, c)
		add(abi.PlanRequest{Capabilities: c, Budget: planner.Balanced})
	}
	if len(caps) == 0 {
		f.Fatal("no device profiles in wasm/planner/testdata")
	}
	nan, inf := math.NaN(), math.Inf(1)
	for _, target := range []float64{0, 1e-300, 1e9, 1e9 + 1, 1e308, nan, inf, -inf, -1} {
		add(abi.PlanRequest{Capabilities: caps[0], Budget: planner.Budget{TargetTokensPerSecond: target}})
	}
	for _, n := range []int64{-1, 0, 1, math.MaxInt64, math.MinInt64} {
		add(abi.PlanRequest{Capabilities: caps[0], Budget: planner.Budget{MaxDownloadBytes: n, MaxMemoryBytes: n}})
	}
	for _, s := range []float64{-1, 0, 1e-9, nan, inf} {
		add(abi.PlanRequest{Capabilities: caps[0], Budget: planner.Budget{MaxDownloadSeconds: s}})
	}
	for _, backend := range []string{"", "auto", "cpu", "gpu", "GPU", "tpu"} {
		add(abi.PlanRequest{Capabilities: caps[0], Budget: planner.Budget{Backend: backend}})
	}
	for _, mix := range []string{"S", "XL", "S,M,L", "s, m ,xl", "auto", "Q,Q,Q", ","} {
		add(abi.PlanRequest{Capabilities: caps[0], Budget: planner.Best, Mix: mix})
	}
	for _, rate := range []float64{0, -1, 1e-300, 1e300, nan, inf} {
		c := caps[0]
		c.Benchmarks = []planner.Benchmark{{Backend: "cpu", GBps: rate, GFLOPs: rate, StepOverheadMicros: rate}}
		c.DeviceMemoryBytes, c.StorageQuotaBytes = int64(rate), int64(rate)
		c.Network = planner.Network{DownlinkMbps: rate, EffectiveType: "slow-2g"}
		add(abi.PlanRequest{Capabilities: c, Budget: planner.Fast})
	}
	add(abi.PlanRequest{Budget: planner.Budget{Name: "fast"}})
	add(abi.PlanRequest{Budget: planner.Budget{Name: "cheap"}})
	whole, _ := msgpack.Marshal(abi.PlanRequest{Capabilities: caps[0], Budget: planner.Balanced})
	f.Add(whole[:len(whole)/2])
	f.Add(append(whole, 0xc0))
	f.Add([]byte{0x81, 0xac, 'c', 'a', 'p', 'a', 'b', 'i', 'l', 'i', 't', 'i', 'e', 's', 0xdf, 0xff, 0xff, 0xff, 0xff})

	seed, err := os.ReadFile(filepath.Join("..", "..", "weights", "testdata", "tiny.matw"))
	if err != nil {
		f.Fatal(err)
	}
	h, err := weights.ParseHeader(seed, int64(len(seed)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req abi.PlanRequest
		if err := msgpack.Unmarshal(b, &req); err != nil {
			return // the module answers ERR_ARG
		}
		budget := req.Budget
		if budget.Name != "" && budget == (planner.Budget{Name: budget.Name}) {
			if budget, err = planner.Preset(budget.Name); err != nil {
				return
			}
		}
		var p planner.Plan
		if req.Mix == "" {
			p, err = planner.Choose(req.Capabilities, h, budget)
		} else {
			mix, perr := h.Config.ParseMix(req.Mix)
			if perr != nil {
				return
			}
			p, err = planner.Fastest(req.Capabilities, h, budget, mix)
		}
		if err != nil {
			return // a ConstraintError (nothing fits), or a budget Validate refuses
		}
		if _, perr := h.Config.ParseMix(p.Spec); perr != nil || (p.Backend != planner.BackendCPU && p.Backend != planner.BackendGPU) {
			t.Fatalf("plan %q on %q for %+v: not a mix of the model, or no backend (%v)", p.Spec, p.Backend, req, perr)
		}
		if math.IsNaN(p.PredictedTokensPerSecond) || p.PredictedTokensPerSecond < 0 {
			t.Fatalf("plan %q predicts %g tokens/s", p.Spec, p.PredictedTokensPerSecond)
		}
	})
}
