package model

import (
	"math"
	"slices"
	"testing"
)

// routeTrainSetup is a tiny network with random routers whose softmax at the
// chosen price and temperature is spread over every granularity.
func routeTrainSetup() (Config, *Weights, [][]float32, []int, []int) {
	c := tinyConfig()
	w := NewWeights(c)
	w.InitRandom(11)
	r := NewRNG(12)
	for i := range w.Data {
		w.Data[i] += (2*r.Float32() - 1) * 0.1
	}
	k := c.Dim + 1
	routers := make([][]float32, c.Layers)
	for l := range routers {
		routers[l] = randomSlice(r, (c.Granularities()-1)*k, 0.5)
		for g := range c.Granularities() - 1 {
			routers[l][g*k+c.Dim] = -1 - 0.3*float32(g)
		}
	}
	const n = 2 * 6
	tokens, targets := randomTokens(r, n, c.Vocab), randomTokens(r, n, c.Vocab)
	targets[4] = -1
	return c, w, routers, tokens, targets
}

// TestRouterGradient checks ∂J/∂routers of the soft relaxation, the loss
// plus the priced expected FLOPs, against finite differences of J.
func TestRouterGradient(t *testing.T) {
	c, w, routers, tokens, targets := routeTrainSetup()
	obj := RouteObjective{Tau: -1.5, Temp: 0.3, Mode: RouteSoft}
	tr := NewRouterTrainer(c, 2, 6)
	objective := func() float64 {
		loss, share, err := tr.Forward(w, routers, obj, tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		return loss + math.Exp(float64(obj.Tau))*float64(c.Layers)*share
	}
	objective()
	// The relaxation must be soft for the test to test anything.
	var spread float32
	for _, p := range tr.probs[0] {
		spread = max(spread, min(p, 1-p))
	}
	if spread < 0.1 {
		t.Fatalf("routing probabilities are all within %g of 0 or 1: the test router is too sure", spread)
	}
	grad := make([][]float32, c.Layers)
	for l := range grad {
		grad[l] = make([]float32, len(routers[l]))
	}
	tr.Backward(w, routers, grad)
	for l := range routers {
		checkGrad(t, "router", routers[l], grad[l], 1e-2, 2e-3, objective)
	}
	// Deterministic: the same step gives the same gradient bit for bit.
	again := make([][]float32, c.Layers)
	for l := range again {
		again[l] = make([]float32, len(routers[l]))
	}
	objective()
	tr.Backward(w, routers, again)
	for l := range grad {
		if !slices.Equal(grad[l], again[l]) {
			t.Fatalf("layer %d: a second run gave another gradient", l)
		}
	}
}

// The straight-through forward runs what routed decoding runs: its loss is
// Batch.ForwardRouted's with the routers' picks at the same price.
func TestRouterStraightThroughIsRouted(t *testing.T) {
	c, w, routers, tokens, targets := routeTrainSetup()
	const tau = -1.5
	tr := NewRouterTrainer(c, 2, 6)
	got, share, err := tr.Forward(w, routers, RouteObjective{Tau: tau, Temp: 0.1, Mode: RouteStraightThrough}, tokens, targets)
	if err != nil {
		t.Fatal(err)
	}
	if !(share > 0 && share < 1) {
		t.Errorf("expected FFN share %g; want within (0, 1)", share)
	}
	rw, err := WithRouter(w, routers, []float32{0.3, 0, 0.6, -1})
	if err != nil {
		t.Fatal(err)
	}
	picks := make([]int, len(tokens)*c.Layers)
	want := NewBatch(c, 2, 6).ForwardRouted(rw, rw.Threshold(tau), tokens, targets, picks, nil)
	if math.Abs(got-want) > 1e-5 {
		t.Errorf("straight-through loss %g; routed forward %g", got, want)
	}
	seen := map[int]bool{}
	for _, g := range picks {
		seen[g] = true
	}
	if len(seen) < 2 {
		t.Errorf("the test routers picked only %v: the test tests nothing", seen)
	}
}

func TestRouterTrainerRefuses(t *testing.T) {
	c, w, routers, tokens, targets := routeTrainSetup()
	tr := NewRouterTrainer(c, 2, 6)
	short := [][]float32{routers[0][:3], routers[1]}
	for _, tc := range []struct {
		name    string
		routers [][]float32
		obj     RouteObjective
		n       int
	}{
		{"zero temperature", routers, RouteObjective{Tau: 0}, len(tokens)},
		{"infinite price", routers, RouteObjective{Tau: float32(math.Inf(1)), Temp: 1}, len(tokens)},
		{"short router", short, RouteObjective{Temp: 1}, len(tokens)},
		{"missing layer", routers[:1], RouteObjective{Temp: 1}, len(tokens)},
		{"short batch", routers, RouteObjective{Temp: 1}, 5},
	} {
		if _, _, err := tr.Forward(w, tc.routers, tc.obj, tokens[:tc.n], targets[:tc.n]); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
