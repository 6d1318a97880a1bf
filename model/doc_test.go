package model_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/matedge/matedge/model"
)

// docVariant selects a deliberate deviation from doc.go, to show that the
// test can tell the conventions apart.
type docVariant struct {
	ropeHalves bool // pair x[i] with x[i+head_dim/2] (the Hugging Face layout)
	epsOutside bool // x / (rms + ε)
	noScale    bool // attention scores without 1/√head_dim
	siluOnUp   bool // silu(up)·gate
}

// docForward is the network exactly as doc.go writes it, in float64, with
// nothing from package model but the weights' named views.
func docForward(w *model.Weights, mix model.Mix, tokens []int, v docVariant) [][]float64 {
	c := w.Config
	d, hd := c.Dim, c.Dim/c.Heads
	get := func(name string) []float64 {
		t, ok := w.Tensor(name)
		if !ok {
			panic(name)
		}
		out := make([]float64, len(t.Data))
		for i, x := range t.Data {
			out[i] = float64(x)
		}
		return out
	}
	matvec := func(m []float64, x []float64, rows int) []float64 { // [rows][len(x)] · x
		y := make([]float64, rows)
		for i := range y {
			for j, xj := range x {
				y[i] += m[i*len(x)+j] * xj
			}
		}
		return y
	}
	rmsnorm := func(x, gain []float64) []float64 {
		var ms float64
		for _, xi := range x {
			ms += xi * xi
		}
		ms /= float64(len(x))
		div := math.Sqrt(ms + float64(c.NormEps))
		if v.epsOutside {
			div = math.Sqrt(ms) + float64(c.NormEps)
		}
		out := make([]float64, len(x))
		for i := range x {
			out[i] = x[i] / div * gain[i]
		}
		return out
	}
	rope := func(x []float64, p int) {
		for h := 0; h < len(x); h += hd {
			for i := 0; i < hd/2; i++ {
				angle := float64(p) * math.Pow(float64(c.RopeTheta), -float64(2*i)/float64(hd))
				// float32 rounding of cos and sin, as doc.go says
				cos, sin := float64(float32(math.Cos(angle))), float64(float32(math.Sin(angle)))
				a, b := h+2*i, h+2*i+1
				if v.ropeHalves {
					a, b = h+i, h+i+hd/2
				}
				x[a], x[b] = x[a]*cos-x[b]*sin, x[a]*sin+x[b]*cos
			}
		}
	}
	embed, head, finalNorm := get("embed"), get("head"), get("final_norm")
	type cache struct{ keys, values [][]float64 }
	caches := make([]cache, c.Layers)
	var all [][]float64
	for p, t := range tokens {
		x := append([]float64(nil), embed[t*d:(t+1)*d]...)
		for l := range c.Layers {
			pre := fmt.Sprintf("layers.%d.", l)
			n := rmsnorm(x, get(pre+"attn_norm"))
			q, k, val := matvec(get(pre+"query"), n, d), matvec(get(pre+"key"), n, d), matvec(get(pre+"value"), n, d)
			rope(q, p)
			rope(k, p)
			caches[l].keys = append(caches[l].keys, k)
			caches[l].values = append(caches[l].values, val)
			o := make([]float64, d)
			for h := range c.Heads {
				s := make([]float64, p+1)
				maxS := math.Inf(-1)
				for u := range s {
					for i := h * hd; i < (h+1)*hd; i++ {
						s[u] += q[i] * caches[l].keys[u][i]
					}
					if !v.noScale {
						s[u] /= math.Sqrt(float64(hd))
					}
					maxS = math.Max(maxS, s[u])
				}
				var sum float64
				for u := range s {
					s[u] = math.Exp(s[u] - maxS)
					sum += s[u]
				}
				for u := range s {
					for i := h * hd; i < (h+1)*hd; i++ {
						o[i] += s[u] / sum * caches[l].values[u][i]
					}
				}
			}
			for i, y := range matvec(get(pre+"output"), o, d) {
				x[i] += y
			}
			n = rmsnorm(x, get(pre+"ffn_norm"))
			gate, up, down := get(pre+"ffn_gate"), get(pre+"ffn_up"), get(pre+"ffn_down")
			for j := range c.FFNWidths[mix[l]] {
				var zg, zu float64
				for i := range d {
					zg += gate[j*d+i] * n[i]
					zu += up[j*d+i] * n[i]
				}
				if v.siluOnUp {
					zg, zu = zu, zg
				}
				g := zg / (1 + math.Exp(-zg)) * zu
				for i := range d {
					x[i] += g * down[j*d+i]
				}
			}
		}
		all = append(all, matvec(head, rmsnorm(x, finalNorm), c.Vocab))
	}
	return all
}

// TestDocNetwork checks model/doc.go's description of the network against
// Forward: interleaved RoPE pairs with frequency θ^(−2i/head_dim), ε inside
// the square root, 1/√head_dim, silu(gate)·up, no biases, a final RMSNorm and
// an untied head. The config makes each convention matter: a large ε, a small
// θ, norm gains that are not one.
func TestDocNetwork(t *testing.T) {
	c := model.Config{Vocab: 50, Dim: 16, Layers: 2, Heads: 2, FFNWidths: model.NestedWidths(64),
		Context: 8, RopeTheta: 10, NormEps: 0.5}
	w := model.NewWeights(c)
	w.InitRandom(11)
	rng := model.NewRNG(12)
	for _, tensor := range w.Tensors() {
		if len(tensor.Shape) == 1 { // norm gains in [0.5, 1.5)
			for i := range tensor.Data {
				tensor.Data[i] = 0.5 + rng.Float32()
			}
		}
		if tensor.Name == "embed" { // a residual stream large enough for ε to matter both ways
			for i := range tensor.Data {
				tensor.Data[i] *= 4
			}
		}
	}
	tokens := []int{3, 41, 7, 7, 19, 0, 33, 12}
	gap := func(mix model.Mix, v docVariant) float64 {
		want := docForward(w, mix, tokens, v)
		s := model.NewState(c)
		worst := 0.0
		for p, tok := range tokens {
			for i, l := range model.Forward(w, s, mix, tok, p) {
				worst = math.Max(worst, math.Abs(float64(l)-want[p][i]))
			}
		}
		return worst
	}
	for _, mix := range []model.Mix{c.Uniform(0), c.Uniform(3), {1, 3}} {
		g := gap(mix, docVariant{})
		if g > 1e-4 {
			t.Errorf("mix %v: Forward and doc.go's network differ by %g in a logit", mix, g)
		}
		t.Logf("mix %v: largest logit difference %.2g", mix, g)
	}
	for name, v := range map[string]docVariant{
		"rotating halves": {ropeHalves: true}, "ε outside the root": {epsOutside: true}, "no 1/√head_dim": {noScale: true},
		"silu on up": {siluOnUp: true},
	} {
		g := gap(c.Uniform(3), v)
		if g < 1e-2 {
			t.Errorf("%s gives logits within %g of Forward: the test cannot tell that convention", name, g)
		}
		t.Logf("%s: largest logit difference %.2g", name, g)
	}
}
