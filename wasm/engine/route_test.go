package engine

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// routedReference decodes greedily with model.ForwardRouted (picks capped at
// mix), returning the tokens and each token's widths.
func routedReference(w *model.Weights, mix model.Mix, budget float64, prompt string, n int) ([]int, [][]int) {
	pick := w.Threshold(w.RouteThreshold(budget))
	capped := func(l int, x []float32) int { return min(pick(l, x), mix[l]) }
	s := model.NewState(w.Config)
	var sampler model.Sampler
	picks := make([]int, w.Config.Layers)
	var logits []float32
	pos := 0
	for _, t := range (&model.Tokenizer{}).Encode([]byte(prompt)) {
		logits = model.ForwardRouted(w, s, capped, t, pos, picks)
		pos++
	}
	var out []int
	var widths [][]int
	for range n {
		next := sampler.Sample(logits)
		out = append(out, next)
		widths = append(widths, slices.Clone(picks))
		logits = model.ForwardRouted(w, s, capped, next, pos, picks)
		pos++
	}
	return out, widths
}

func TestRoutedMatchesModel(t *testing.T) {
	w := weights.RandomRouted(weights.Random(weights.TinyConfig(), 7), 3)
	c := w.Config
	e := loaded(t, weightsFile(t, w), nil)
	for _, tt := range []struct {
		mix    string
		budget float32
	}{{"XL", 0.6}, {"XL", 0.4}, {"S,L,XL", 0.6}, {"XL", 1}} {
		mix, _ := c.ParseMix(tt.mix)
		want, wantWidths := routedReference(w, mix, float64(tt.budget), gpuPrompt, 16)
		got := tokens(t, e, tt.mix, Options{Route: tt.budget}, gpuPrompt, 1)
		widths := [][]int{}
		if wd, err := e.Widths(); err != nil {
			t.Fatal(err)
		} else {
			widths = append(widths, wd)
		}
		for len(got) < 16 {
			tok, err := e.Step()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, tok)
			wd, _ := e.Widths()
			widths = append(widths, wd)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("mix %s route %g: engine tokens %v, model %v", tt.mix, tt.budget, got, want)
		}
		seen := map[int]bool{}
		for i := range widths {
			if !slices.Equal(widths[i], wantWidths[i]) {
				t.Fatalf("mix %s route %g token %d: widths %v, model %v", tt.mix, tt.budget, i, widths[i], wantWidths[i])
			}
			for l, g := range widths[i] {
				if g > mix[l] {
					t.Fatalf("token %d layer %d ran %d, above the mix's %d", i, l, g, mix[l])
				}
				seen[g] = true
			}
		}
		if tt.budget == 1 {
			if plain := tokens(t, e, tt.mix, Options{}, gpuPrompt, 16); !slices.Equal(got, plain) {
				t.Errorf("route 1 tokens %v; the mix alone gives %v", got, plain)
			}
		} else if len(seen) < 2 {
			t.Errorf("mix %s route %g picked only %v: the test routers test nothing", tt.mix, tt.budget, seen)
		}
	}
}

func TestRouteRefused(t *testing.T) {
	w := weights.RandomRouted(weights.Random(weights.TinyConfig(), 7), 3)
	e := loaded(t, weightsFile(t, w), nil)
	if err := e.SetMix(w.Config.Uniform(3)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		o    Options
		want error
	}{
		{Options{Route: 0.5, Backend: "gpu"}, ErrBackend},
		{Options{Route: -0.5}, ErrArg},
		{Options{Route: 1.5}, ErrArg},
		{Options{Route: float32(nan())}, ErrArg},
		{Options{Route: 0.5, Draft: "S"}, ErrArg},
		{Options{Route: 0.5, Backend: "tpu"}, ErrArg},
	} {
		if err := e.Reset(tt.o); !errors.Is(err, tt.want) {
			t.Errorf("Reset(%+v) = %v; want %v", tt.o, err, tt.want)
		}
	}
	if err := e.Reset(Options{Route: 0.5, Backend: "auto"}); err != nil || e.Backend() != "cpu" {
		t.Errorf("Reset(route, backend auto) = %v on %q; want the cpu backend", err, e.Backend())
	}
	if _, err := e.Widths(); !errors.Is(err, ErrState) {
		t.Errorf("Widths before a step = %v; want ErrState", err)
	}
	plain := loaded(t, weightsFile(t, weights.Random(weights.TinyConfig(), 7)), nil)
	if err := plain.SetMix(w.Config.Uniform(3)); err != nil {
		t.Fatal(err)
	}
	if err := plain.Reset(Options{Route: 0.5}); !errors.Is(err, ErrArg) {
		t.Errorf("Reset(route) on a file without routers = %v; want ErrArg", err)
	}
}

func nan() float64 { return math.NaN() }
