package model

import (
	"math"
	"slices"
	"testing"
)

// constantRouter returns w with routers that always pick z at τ = 0: zero
// weights, a score of 10 (e^10 nats) for every granularity below z and −30
// from z on, so that z is the cheapest of those that cost almost no loss.
func constantRouter(t *testing.T, w *Weights, z int) *Weights {
	t.Helper()
	c := w.Config
	k := c.Dim + 1
	routers := make([][]float32, c.Layers)
	for l := range routers {
		routers[l] = make([]float32, (c.Granularities()-1)*k)
		for g := range c.Granularities() - 1 {
			routers[l][g*k+c.Dim] = 10
			if g >= z {
				routers[l][g*k+c.Dim] = -30
			}
		}
	}
	out, err := WithRouter(w, routers, []float32{0.25, 1, 0.5, 0})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func routedLogits(w *Weights, pick Picker, tokens []int) ([]float32, [][]int) {
	s := NewState(w.Config)
	var out []float32
	var picks [][]int
	for pos, tok := range tokens {
		p := make([]int, w.Config.Layers)
		out = ForwardRouted(w, s, pick, tok, pos, p)
		picks = append(picks, p)
	}
	return slices.Clone(out), picks
}

func TestRouterAlwaysZIsUniformZ(t *testing.T) {
	c := forwardConfig()
	tokens := []int{3, 1, 4, 1, 5, 9, 2, 6}
	for z := range c.Granularities() {
		w := constantRouter(t, forwardWeights(c, 1), z)
		got, picks := routedLogits(w, w.Threshold(0), tokens)
		want := logitsFor(w, c.Uniform(z), tokens)
		if !slices.Equal(got, want) {
			t.Errorf("router always %s: logits differ from uniform %s by %g; want bit-identical", c.GranularityName(z), c.GranularityName(z), maxAbsDiff(got, want))
		}
		for pos, p := range picks {
			if !slices.Equal(p, c.Uniform(z)) {
				t.Fatalf("router always %s: position %d picked %v", c.GranularityName(z), pos, p)
			}
		}
	}
}

// A trained-looking router: random weights. Budget 1 must be XL exactly, a
// budget at S's share S exactly, and a budget between them must mix widths.
func TestRouteThresholdEnds(t *testing.T) {
	c := forwardConfig()
	w := forwardWeights(c, 2)
	k := c.Dim + 1
	r := NewRNG(7)
	routers := make([][]float32, c.Layers)
	for l := range routers {
		routers[l] = make([]float32, (c.Granularities()-1)*k)
		for i := range routers[l] {
			routers[l][i] = 2*r.Float32() - 1
		}
	}
	w, err := WithRouter(w, routers, []float32{0.3, 1, 0.6, 0, 0.9, -1})
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5}
	for _, tc := range []struct {
		budget float64
		mix    int
	}{{1, c.Granularities() - 1}, {1.5, c.Granularities() - 1}, {0.125, 0}, {0, 0}} {
		got, _ := routedLogits(w, w.Threshold(w.RouteThreshold(tc.budget)), tokens)
		if want := logitsFor(w, c.Uniform(tc.mix), tokens); !slices.Equal(got, want) {
			t.Errorf("budget %g: logits differ from uniform %s by %g", tc.budget, c.GranularityName(tc.mix), maxAbsDiff(got, want))
		}
	}
	_, picks := routedLogits(w, w.Threshold(w.RouteThreshold(0.6)), tokens)
	seen := map[int]bool{}
	for _, p := range picks {
		for _, g := range p {
			seen[g] = true
		}
	}
	if len(seen) < 2 {
		t.Errorf("budget 0.6 with a random router picked only %v", seen)
	}
}

func TestRouteThresholdInterpolates(t *testing.T) {
	c := forwardConfig()
	w := constantRouter(t, forwardWeights(c, 1), 0) // table (0.25, 1), (0.5, 0)
	for _, tc := range []struct {
		budget float64
		tau    float32
	}{{0.2, 1}, {0.25, 1}, {0.375, 0.5}, {0.5, 0}, {0.9, 0}, {1, float32(math.Inf(-1))}, {0.125, float32(math.Inf(1))}} {
		if got := w.RouteThreshold(tc.budget); got != tc.tau {
			t.Errorf("RouteThreshold(%g) = %g; want %g", tc.budget, got, tc.tau)
		}
	}
}

func TestCheckRouter(t *testing.T) {
	c := forwardConfig()
	w := constantRouter(t, forwardWeights(c, 1), 0)
	if err := w.CheckRouter(); err != nil {
		t.Fatal(err)
	}
	for _, table := range [][]float32{{0.5, 0, 0.25, 1}, {0.25, 0, 0.25, 1}, {0, 0, 0.5, 1}, {0.5, 0, 1.5, 1}, {0.25, float32(math.NaN()), 0.5, 0}} {
		copy(w.RouterBudget, table)
		if err := w.CheckRouter(); err == nil {
			t.Errorf("CheckRouter accepted budget table %v", table)
		}
	}
	if err := forwardWeights(c, 1).CheckRouter(); err == nil {
		t.Error("CheckRouter accepted a network without a router")
	}
	bad := c
	bad.RouterBudgets = 1
	if bad.Validate() == nil {
		t.Error("Validate accepted router_budgets 1")
	}
	bad.RouterBudgets, bad.FFNWidths = 4, []int{64}
	if bad.Validate() == nil {
		t.Error("Validate accepted a router with one granularity")
	}
}

// The batched routed forward picks as decoding does and gives its logits to
// float32 rounding; with a static picker its loss is Batch.Forward's.
func TestBatchForwardRoutedMatchesDecoding(t *testing.T) {
	c := forwardConfig()
	w := forwardWeights(c, 3)
	k := c.Dim + 1
	r := NewRNG(5)
	routers := make([][]float32, c.Layers)
	for l := range routers {
		routers[l] = make([]float32, (c.Granularities()-1)*k)
		for i := range routers[l] {
			routers[l][i] = 2*r.Float32() - 1
		}
	}
	w, err := WithRouter(w, routers, []float32{0.3, 1, 0.6, 0})
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}
	b := NewBatch(c, 1, len(tokens))
	picks := make([]int, len(tokens)*c.Layers)
	pick := w.Threshold(0.1)
	b.ForwardRouted(w, pick, tokens, nil, picks, nil)
	s := NewState(c)
	mixed := map[int]bool{}
	for pos, tok := range tokens {
		p := make([]int, c.Layers)
		want := ForwardRouted(w, s, pick, tok, pos, p)
		got := b.Logits()[pos*c.Vocab : (pos+1)*c.Vocab]
		if !slices.Equal(p, picks[pos*c.Layers:(pos+1)*c.Layers]) {
			t.Fatalf("position %d: batch picked %v, decoding %v", pos, picks[pos*c.Layers:(pos+1)*c.Layers], p)
		}
		if d := maxAbsDiff(got, want); d > 1e-4 {
			t.Errorf("position %d: batch logits differ from decoding by %g", pos, d)
		}
		for _, g := range p {
			mixed[g] = true
		}
	}
	if len(mixed) < 2 {
		t.Errorf("the test router picked only %v: it tests nothing", mixed)
	}

	targets := append(slices.Clone(tokens[1:]), 0)
	for _, mix := range []Mix{c.Uniform(0), {3, 1}} {
		want := NewBatch(c, 1, len(tokens)).Forward(w, mix, tokens, targets)
		got := b.ForwardRouted(w, func(l int, _ []float32) int { return mix[l] }, tokens, targets, nil, nil)
		if math.Abs(got-want) > 1e-5 {
			t.Errorf("mix %v: routed loss %g, Forward %g", mix, got, want)
		}
	}
}

// The trace's errors are those of Forward at each width: the relative error
// of g in the last layer is ‖x_XL − x_g‖ / ‖x_XL‖ of the final residual.
func TestRouteTraceErrors(t *testing.T) {
	c := forwardConfig()
	c.Layers = 1
	w := forwardWeights(c, 4)
	tokens := []int{7, 2, 9}
	b := NewBatch(c, 1, len(tokens))
	var errs []float32
	b.ForwardRouted(w, func(int, []float32) int { return c.Granularities() - 1 }, tokens, nil, nil, func(l int, in, relErr []float32) {
		errs = slices.Clone(relErr)
	})
	final := func(g int) []float32 {
		bb := NewBatch(c, 1, len(tokens))
		bb.Forward(w, c.Uniform(g), tokens, nil)
		return slices.Clone(bb.finalIn)
	}
	xl := final(c.Granularities() - 1)
	G, d := c.Granularities(), c.Dim
	for g := range G {
		xg := final(g)
		for r := range tokens {
			diff := make([]float32, d)
			for i := range diff {
				diff[i] = xl[r*d+i] - xg[r*d+i]
			}
			want := norm32(diff) / norm32(xl[r*d:(r+1)*d])
			if got := errs[r*G+g]; math.Abs(float64(got-want)) > 1e-4*float64(max(want, 1e-2)) {
				t.Errorf("row %d granularity %d: relErr %g, want %g", r, g, got, want)
			}
		}
	}
}

// Records drawn from a known law log e_g = a_g·n + b_g are fitted back.
func TestRouterFitRecoversLaw(t *testing.T) {
	c := forwardConfig()
	G, d := c.Granularities(), c.Dim
	r := NewRNG(11)
	law := make([]float64, (G-1)*(d+1))
	for i := range law {
		law[i] = 2*float64(r.Float32()) - 1
	}
	fit := NewRouterFit(c)
	const n = 400
	in, relErr := make([]float32, n*d), make([]float32, n*G)
	for row := range n {
		for i := range d {
			in[row*d+i] = 2*r.Float32() - 1
		}
		for g := range G - 1 {
			y := law[g*(d+1)+d]
			for i := range d {
				y += law[g*(d+1)+i] * float64(in[row*d+i])
			}
			relErr[row*G+g] = float32(math.Exp(y))
		}
	}
	for l := range c.Layers {
		fit.Add(l, in, relErr)
	}
	routers, err := fit.Solve(0)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range routers[1] {
		if math.Abs(float64(v)-law[i]) > 1e-3 {
			t.Fatalf("coefficient %d = %g; want %g", i, v, law[i])
		}
	}
	if _, err := NewRouterFit(c).Solve(0); err == nil {
		t.Error("Solve without records succeeded")
	}
}

func TestBudgetTableAscends(t *testing.T) {
	c := forwardConfig()
	r := NewRNG(3)
	preds := make([]float32, 300*(c.Granularities()-1))
	for i := range preds {
		preds[i] = 2*r.Float32() - 1
	}
	table := BudgetTable(c, preds, 16)
	if len(table) < 4 {
		t.Fatalf("table %v: fewer than 2 rows", table)
	}
	w, err := WithRouter(forwardWeights(c, 1), make([][]float32, c.Layers), table)
	if err == nil {
		err = w.CheckRouter()
	}
	if err == nil {
		t.Fatal("WithRouter accepted routers of the wrong size")
	}
	routers := make([][]float32, c.Layers)
	for l := range routers {
		routers[l] = make([]float32, (c.Granularities()-1)*(c.Dim+1))
	}
	if _, err := WithRouter(forwardWeights(c, 1), routers, table); err != nil {
		t.Errorf("table %v: %v", table, err)
	}
}
