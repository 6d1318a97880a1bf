package experiment

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
)

// The frontier keeps only points that beat every cheaper one, and is read
// linearly between them.
func TestFrontier(t *testing.T) {
	r := &RouteStudy{
		Uniform: []RoutePoint{{FFNShare: 0.125, Loss: 4}, {FFNShare: 0.25, Loss: 3.5}, {FFNShare: 0.5, Loss: 3.2}, {FFNShare: 1, Loss: 3}},
		Mixes:   []RoutePoint{{FFNShare: 0.375, Loss: 3.6}, {FFNShare: 0.75, Loss: 3.05}},
	}
	want := [][2]float64{{0.125, 4}, {0.25, 3.5}, {0.5, 3.2}, {0.75, 3.05}, {1, 3}}
	got := r.frontier()
	if len(got) != len(want) {
		t.Fatalf("frontier %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frontier %v; want %v", got, want)
		}
	}
	for _, tc := range []struct{ x, want float64 }{{0.125, 4}, {0.375, 3.35}, {0.875, 3.025}, {1, 3}} {
		if y := frontierAt(got, tc.x); math.Abs(y-tc.want) > 1e-12 {
			t.Errorf("frontierAt(%g) = %g; want %g", tc.x, y, tc.want)
		}
	}
	if y := frontierAt(got, 0.1); !math.IsInf(y, 1) {
		t.Errorf("frontierAt below the cheapest point = %g; want +Inf", y)
	}
}

func TestAllMixes(t *testing.T) {
	c := model.Config{Layers: 3, FFNWidths: []int{1, 2, 4, 8}}
	mixes := allMixes(c)
	seen := map[string]bool{}
	for _, m := range mixes {
		seen[c.MixSpec(m)] = true
	}
	if len(mixes) != 64 || len(seen) != 64 {
		t.Fatalf("%d mixes, %d distinct; want 64", len(mixes), len(seen))
	}
	if s := mixShare(c, model.Mix{0, 3, 3}); math.Abs(s-17.0/24) > 1e-12 {
		t.Errorf("mixShare(S,XL,XL) = %g; want 17/24", s)
	}
}

// With a trained series, ROUTING.md shows both series, their comparison and
// the targets for each; the plot has both lines.
func TestRouteWriteTrained(t *testing.T) {
	c := model.Config{Vocab: 11, Dim: 8, Layers: 2, Heads: 2, FFNWidths: []int{2, 4, 8, 16}, Context: 8, RopeTheta: 10000, NormEps: 1e-5}
	pt := func(name string, budget, share, loss float64) RoutePoint {
		return RoutePoint{Name: name, Budget: budget, FFNShare: share, Loss: loss, Share: []float64{0.25, 0.25, 0.25, 0.25}, LayerXL: []float64{0.5, 0.5}}
	}
	r := &RouteStudy{Config: c, Setup: map[string]int{"seq_len": 8}, Args: []string{"-train-steps", "3"},
		Uniform:    []RoutePoint{{Name: "S", FFNShare: 0.125, Loss: 4}, {Name: "M", FFNShare: 0.25, Loss: 3.5}, {Name: "L", FFNShare: 0.5, Loss: 3.2}, {Name: "XL", FFNShare: 1, Loss: 3}},
		Train:      RouteTrainSetup{Steps: 3, Batch: 1, LR: 0.01, Temp: [2]float64{0.3, 0.03}},
		TrainCurve: []float64{3.5, 3.4}, TrainedTable: []float32{0.3, -1, 0.6, -2}}
	r.Routed = []RoutePoint{pt("routed 0.5", 0.5, 0.5, 3.25), pt("routed 0.6", 0.6, 0.6, 3.1)}
	r.Trained = []RoutePoint{pt("trained 0.5", 0.5, 0.5, 3.1), pt("trained 0.6", 0.6, 0.6, 3.01)}
	for i := range r.Routed {
		r.Routed[i].Frontier = frontierAt(r.frontier(), r.Routed[i].FFNShare)
		r.Trained[i].Frontier = frontierAt(r.frontier(), r.Trained[i].FFNShare)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "ROUTING.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### Loss-trained routers",
		"| 0.60 | 60.0 | 3.1000 | -0.0600 | 60.0 | 3.0100 | -0.1500 | -0.0900 |",
		"| a budget at ≤ 60 % of XL's FFN FLOPs within 0.02 nats/token of XL | none | **no** | budgets 0.60 | yes |",
		"Budget table of the loss-trained routers, 2 rows: 0.300→-1.00 0.600→-2.00.",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("ROUTING.md lacks %q", want)
		}
	}
	// RESULTS.md gets the summary section, and a second Write replaces it
	// rather than adding another; the study reads back from its JSON.
	again, err := ReadRouteStudy(filepath.Join(dir, "results", "routing.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Write(dir); err != nil {
		t.Fatal(err)
	}
	res, err := os.ReadFile(filepath.Join(dir, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(res), "<!-- begin routing -->") != 1 || !strings.Contains(string(res), "| loss-trained | 0.60 | 60.0 | 3.0100 |") ||
		!strings.Contains(string(res), "loss-trained routers: on or below the frontier at") {
		t.Errorf("RESULTS.md's routing section:\n%s", res)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "results", "routing.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svg), "loss-trained") {
		t.Error("routing.svg has no trained series")
	}
}
