package model

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// specWeights is a tiny random model whose FFN matters: the Down matrices are
// scaled up so that S and XL predict visibly different distributions.
func specWeights(t *testing.T) *Weights {
	t.Helper()
	c := Config{Vocab: 11, Dim: 16, Layers: 2, Heads: 2, FFNWidths: NestedWidths(64), Context: 24, RopeTheta: 10000, NormEps: 1e-5}
	w := NewWeights(c)
	w.InitRandom(3)
	for l := range w.Layers {
		for i := range w.Layers[l].Down {
			w.Layers[l].Down[i] *= 8
		}
	}
	for i := range w.Head {
		w.Head[i] *= 4
	}
	return w
}

// greedyDecode is the reference: the verifier alone, one Forward per token.
func greedyDecode(w *Weights, mix Mix, prompt []int, n int) []int {
	s := NewState(w.Config)
	var logits []float32
	for pos, tok := range prompt {
		logits = Forward(w, s, mix, tok, pos)
	}
	var out []int
	for pos := len(prompt); len(out) < n; pos++ {
		next := Argmax(logits)
		out = append(out, next)
		if pos == w.Config.Context {
			break
		}
		logits = Forward(w, s, mix, next, pos)
	}
	return out
}

func TestForwardManyMatchesForward(t *testing.T) {
	w := specWeights(t)
	c := w.Config
	tokens := []int{3, 1, 4, 1, 5, 9, 2, 6}
	for _, mix := range []Mix{c.Uniform(0), c.Uniform(3), {0, 3}} {
		one := NewState(c)
		want := make([]float32, 0, len(tokens)*c.Vocab)
		for pos, tok := range tokens {
			want = append(want, Forward(w, one, mix, tok, pos)...)
		}
		many := NewState(c)
		ForwardMany(w, many, mix, tokens[:3], 0)
		got := append([]float32(nil), ForwardMany(w, many, mix, tokens[3:], 3)...)
		for i, v := range got {
			if math.Float32bits(v) != math.Float32bits(want[3*c.Vocab+i]) {
				t.Fatalf("mix %v: ForwardMany logit %d = %v; Forward gives %v", mix, i, v, want[3*c.Vocab+i])
			}
		}
	}
}

// TestSpeculativeGreedyIsVerifierGreedy: whatever the draft, k and cache
// sharing, greedy speculative output is the verifier's greedy output.
func TestSpeculativeGreedyIsVerifierGreedy(t *testing.T) {
	w := specWeights(t)
	c := w.Config
	prompt := []int{2, 7, 1}
	want := greedyDecode(w, c.Uniform(3), prompt, 30)
	for _, draft := range []Mix{c.Uniform(0), c.Uniform(2), {3, 0}} {
		for _, k := range []int{1, 2, 4, 7} {
			for _, shared := range []bool{true, false} {
				sp := Speculator{Weights: w, Draft: draft, Verify: c.Uniform(3), K: k, Shared: shared}
				got, st := sp.Generate(prompt, 30)
				if !slices.Equal(got, want) {
					t.Fatalf("draft %v k %d shared %v: %v; verifier alone %v", draft, k, shared, got, want)
				}
				if st.Accepted > st.Proposed || st.Proposed > st.Rounds*k || st.Emitted != len(got) || st.Emitted > st.Proposed+st.Rounds {
					t.Errorf("draft %v k %d shared %v: stats %+v", draft, k, shared, st)
				}
			}
		}
	}
	// This S draft disagrees with XL sometimes, so not every proposal is kept.
	sp := Speculator{Weights: w, Draft: c.Uniform(0), Verify: c.Uniform(3), K: 4, Shared: true}
	if _, st := sp.Generate(prompt, 20); st.Accepted >= st.Proposed || st.AcceptanceRate() <= 0 {
		t.Errorf("S draft: accepted %d of %d proposed", st.Accepted, st.Proposed)
	}
	// A draft equal to the verifier is always accepted, also with its own
	// cache, which reads the prompt only when it first drafts: a wrong
	// position or token in that cache would change its logits.
	for _, shared := range []bool{true, false} {
		sp = Speculator{Weights: w, Draft: c.Uniform(3), Verify: c.Uniform(3), K: 4, Shared: shared}
		if _, st := sp.Generate(prompt, 20); st.Accepted != st.Proposed {
			t.Errorf("draft = verifier, shared %v: accepted %d of %d", shared, st.Accepted, st.Proposed)
		}
	}
}

// TestSpeculativeSamplingDistribution draws many seeded two-token
// continuations and checks that each emitted token follows the verifier's
// distribution, not the draft's: the tokens are far enough apart (checked)
// that a wrong acceptance rule fails.
func TestSpeculativeSamplingDistribution(t *testing.T) {
	w := specWeights(t)
	c := w.Config
	prompt := []int{5, 3}
	verify, draft := c.Uniform(3), c.Uniform(0)
	dist := func(mix Mix, tokens []int) []float64 {
		s := NewState(c)
		var logits []float32
		for pos, tok := range tokens {
			logits = Forward(w, s, mix, tok, pos)
		}
		p := append([]float32(nil), logits...)
		Softmax(p)
		out := make([]float64, len(p))
		for i, v := range p {
			out[i] = float64(v)
		}
		return out
	}
	p1 := dist(verify, prompt)
	if tv := totalVariation(p1, dist(draft, prompt)); tv < 0.15 {
		t.Fatalf("draft and verifier too close for the test to discriminate: TV %.3f", tv)
	}
	p2 := make([]float64, c.Vocab) // P(second token) = Σ_a p1(a)·p(·|a)
	for a, pa := range p1 {
		for b, pb := range dist(verify, append(slices.Clone(prompt), a)) {
			p2[b] += pa * pb
		}
	}
	const draws = 20000
	n1, n2 := make([]float64, c.Vocab), make([]float64, c.Vocab)
	for _, k := range []int{1, 3} {
		clear(n1)
		clear(n2)
		for i := range draws {
			sp := Speculator{Weights: w, Draft: draft, Verify: verify, K: k, Shared: true, Temperature: 1, RNG: NewRNG(uint64(1000*k + i))}
			out, _ := sp.Generate(prompt, 2)
			n1[out[0]]++
			n2[out[1]]++
		}
		for i := range n1 {
			n1[i] /= draws
			n2[i] /= draws
		}
		for j, pair := range [][2][]float64{{n1, p1}, {n2, p2}} {
			if tv := totalVariation(pair[0], pair[1]); tv > 0.03 {
				t.Errorf("k %d, token %d: sampled distribution is %.3f (TV) from the verifier's\n got %s\nwant %s", k, j+1, tv, fmtDist(pair[0]), fmtDist(pair[1]))
			}
		}
	}
}

func totalVariation(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += math.Abs(a[i] - b[i])
	}
	return s / 2
}

func fmtDist(p []float64) string {
	s := ""
	for _, v := range p {
		s += fmt.Sprintf(" %.3f", v)
	}
	return s
}

// TestSpeculativeOtherDraftModel: an independently trained draft (other
// weights, same vocabulary) still gives the verifier's greedy output, with
// its own cache even when sharing is asked for.
func TestSpeculativeOtherDraftModel(t *testing.T) {
	w := specWeights(t)
	c := w.Config
	small := Config{Vocab: c.Vocab, Dim: 8, Layers: 1, Heads: 1, FFNWidths: []int{16}, Context: c.Context, RopeTheta: 10000, NormEps: 1e-5}
	dw := NewWeights(small)
	dw.InitRandom(5)
	prompt := []int{2, 7, 1}
	want := greedyDecode(w, c.Uniform(3), prompt, 20)
	for _, k := range []int{1, 3} {
		sp := Speculator{Weights: w, DraftWeights: dw, Draft: small.Uniform(0), Verify: c.Uniform(3), K: k, Shared: true}
		if v, d := sp.NewStates(); v == d {
			t.Fatalf("another model's draft shares the verifier's cache")
		}
		got, _ := sp.Generate(prompt, 20)
		if !slices.Equal(got, want) {
			t.Fatalf("k %d: %v; verifier alone %v", k, got, want)
		}
	}
}

// BenchmarkSpeculativeSteps times, at the shape of the model the speculate
// command measures (dim 64, FFN 256, 4 layers, vocab 1024), the pieces of a
// round against a plain step: a Forward of the verifier (XL) and of the S
// draft, a verifier pass over m positions, and a whole greedy round of k S
// drafts with the shared cache. All at position 64, rewound every time.
func BenchmarkSpeculativeSteps(b *testing.B) {
	c := Config{Vocab: 1024, Dim: 64, Layers: 4, Heads: 4, FFNWidths: NestedWidths(256), Context: 128, RopeTheta: 10000, NormEps: 1e-5}
	w := NewWeights(c)
	w.InitRandom(1)
	xl, s := c.Uniform(3), c.Uniform(0)
	const pos = 64
	tokens := make([]int, pos+8)
	for i := range tokens {
		tokens[i] = (i * 7919) % c.Vocab
	}
	state := NewState(c)
	ForwardMany(w, state, xl, tokens[:pos], 0)
	b.Run("Forward/XL", func(b *testing.B) {
		for b.Loop() {
			Forward(w, state, xl, tokens[pos], pos)
		}
	})
	b.Run("Forward/S", func(b *testing.B) {
		for b.Loop() {
			Forward(w, state, s, tokens[pos], pos)
		}
	})
	for _, m := range []int{2, 3, 5} {
		b.Run(fmt.Sprintf("ForwardMany/XL/m=%d", m), func(b *testing.B) {
			for b.Loop() {
				ForwardMany(w, state, xl, tokens[pos:pos+m], pos)
			}
		})
	}
	for _, k := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("Round/S/k=%d", k), func(b *testing.B) {
			sp := Speculator{Weights: w, Draft: s, Verify: xl, K: k, Shared: true}
			for b.Loop() {
				sp.Round(state, state, tokens[pos], pos, k)
			}
		})
	}
}
