package experiment

import (
	"math"
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
