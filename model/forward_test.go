package model

import (
	"math"
	"slices"
	"testing"
)

func forwardConfig() Config {
	return Config{Vocab: 64, Dim: 16, Layers: 2, Heads: 2, FFNWidths: NestedWidths(64), Context: 16, RopeTheta: 10000, NormEps: 1e-5}
}

func forwardWeights(c Config, seed uint64) *Weights {
	w := NewWeights(c)
	w.InitRandom(seed)
	return w
}

func logitsFor(w *Weights, mix Mix, tokens []int) []float32 {
	s := NewState(w.Config)
	var out []float32
	for pos, t := range tokens {
		out = Forward(w, s, mix, t, pos)
	}
	return slices.Clone(out)
}

func TestGranularitiesDiffer(t *testing.T) {
	c := forwardConfig()
	w := forwardWeights(c, 1)
	tokens := []int{3, 1, 4, 1, 5}
	var seen [][]float32
	for g := range c.Granularities() {
		l := logitsFor(w, c.Uniform(g), tokens)
		for h, prev := range seen {
			if maxAbsDiff(l, prev) < 1e-3 {
				t.Errorf("granularity %s logits equal %s's", c.GranularityName(g), c.GranularityName(h))
			}
		}
		seen = append(seen, l)
	}
	mixed := logitsFor(w, Mix{0, 3}, tokens)
	for g, l := range seen {
		if maxAbsDiff(mixed, l) < 1e-3 {
			t.Errorf("mix S,XL logits equal uniform %s's", c.GranularityName(g))
		}
	}
}

// TestNestedRowsOnly checks that granularity g reads only its prefix rows:
// scribbling on the rows beyond it changes nothing.
func TestNestedRowsOnly(t *testing.T) {
	c := forwardConfig()
	w := forwardWeights(c, 2)
	tokens := []int{7, 8, 9}
	want := logitsFor(w, c.Uniform(0), tokens)
	for _, l := range w.Layers {
		for _, m := range [][]float32{l.Gate, l.Up, l.Down} {
			for i := c.FFNWidths[0] * c.Dim; i < len(m); i++ {
				m[i] = float32(math.NaN())
			}
		}
	}
	if got := logitsFor(w, c.Uniform(0), tokens); !slices.Equal(got, want) {
		t.Fatal("S logits changed when rows beyond S changed")
	}
}

// TestKVCache checks decoding with the cache against recomputing attention
// from scratch with a naive reference written independently of Forward.
func TestKVCache(t *testing.T) {
	c := forwardConfig()
	w := forwardWeights(c, 3)
	tokens := []int{5, 6, 7, 8, 9, 10}
	mix := Mix{1, 2}
	got := logitsFor(w, mix, tokens)
	want := naiveForward(w, mix, tokens)
	if d := maxAbsDiff(got, want); d > 1e-4 {
		t.Fatalf("cached Forward vs naive: max |diff| = %g; want ≤ 1e-4", d)
	}
}

// naiveForward runs the whole sequence without a cache, in float64, and
// returns the last position's logits.
func naiveForward(w *Weights, mix Mix, tokens []int) []float32 {
	c := w.Config
	d, hd, n := c.Dim, c.HeadDim(), len(tokens)
	x := make([][]float64, n)
	for p, t := range tokens {
		x[p] = make([]float64, d)
		for i := range d {
			x[p][i] = float64(w.Embed[t*d+i])
		}
	}
	norm := func(v []float64, g []float32) []float64 {
		var ss float64
		for _, a := range v {
			ss += a * a
		}
		inv := 1 / math.Sqrt(ss/float64(len(v))+float64(c.NormEps))
		out := make([]float64, len(v))
		for i := range v {
			out[i] = v[i] * inv * float64(g[i])
		}
		return out
	}
	mat := func(m []float32, v []float64, rows int) []float64 {
		out := make([]float64, rows)
		for r := range rows {
			for i := range v {
				out[r] += float64(m[r*len(v)+i]) * v[i]
			}
		}
		return out
	}
	rope := func(v []float64, pos int) {
		for h := 0; h < d; h += hd {
			for i := 0; i < hd/2; i++ {
				theta := float64(pos) * math.Pow(float64(c.RopeTheta), -float64(2*i)/float64(hd))
				a, b := v[h+2*i], v[h+2*i+1]
				v[h+2*i] = a*math.Cos(theta) - b*math.Sin(theta)
				v[h+2*i+1] = a*math.Sin(theta) + b*math.Cos(theta)
			}
		}
	}
	for l, layer := range w.Layers {
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for p := range n {
			h := norm(x[p], layer.AttnNorm)
			q[p], k[p], v[p] = mat(layer.Query, h, d), mat(layer.Key, h, d), mat(layer.Value, h, d)
			rope(q[p], p)
			rope(k[p], p)
		}
		for p := range n {
			att := make([]float64, d)
			for head := 0; head < c.Heads; head++ {
				o := head * hd
				scores := make([]float64, p+1)
				var maxS float64 = math.Inf(-1)
				for t := 0; t <= p; t++ {
					for i := range hd {
						scores[t] += q[p][o+i] * k[t][o+i]
					}
					scores[t] /= math.Sqrt(float64(hd))
					maxS = math.Max(maxS, scores[t])
				}
				var sum float64
				for t := range scores {
					scores[t] = math.Exp(scores[t] - maxS)
					sum += scores[t]
				}
				for t := range scores {
					for i := range hd {
						att[o+i] += scores[t] / sum * v[t][o+i]
					}
				}
			}
			proj := mat(layer.Output, att, d)
			for i := range d {
				x[p][i] += proj[i]
			}
			h := norm(x[p], layer.FFNNorm)
			width := c.FFNWidths[mix[l]]
			for j := range width {
				var g, u float64
				for i := range d {
					g += float64(layer.Gate[j*d+i]) * h[i]
					u += float64(layer.Up[j*d+i]) * h[i]
				}
				act := g / (1 + math.Exp(-g)) * u
				for i := range d {
					x[p][i] += act * float64(layer.Down[j*d+i])
				}
			}
		}
	}
	last := norm(x[n-1], w.FinalNorm)
	out64 := mat(w.Head, last, c.Vocab)
	out := make([]float32, len(out64))
	for i, v := range out64 {
		out[i] = float32(v)
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestParseMix(t *testing.T) {
	c := forwardConfig()
	tests := []struct {
		spec string
		want Mix
		err  bool
	}{
		{"S", Mix{0, 0}, false},
		{"xl", Mix{3, 3}, false},
		{"S,XL", Mix{0, 3}, false},
		{" M , L ", Mix{1, 2}, false},
		{"S,M,L", nil, true},
		{"XXL", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := c.ParseMix(tt.spec)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("ParseMix(%q) = %v, %v; want %v, error %v", tt.spec, got, err, tt.want, tt.err)
		}
	}
}

func TestSamplerDeterministic(t *testing.T) {
	logits := []float32{0.1, 2, 1.5, -1, 0.3, 1.9}
	draw := func(seed uint64) []int {
		s := Sampler{Temperature: 0.9, TopK: 4, TopP: 0.9, RNG: NewRNG(seed)}
		var out []int
		for range 20 {
			out = append(out, s.Sample(slices.Clone(logits)))
		}
		return out
	}
	a, b, c := draw(1), draw(1), draw(2)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different draws: %v vs %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 1 and 2 drew the same 20 tokens: %v", a)
	}
	for _, id := range a {
		if id == 3 || id == 0 {
			t.Fatalf("drew token %d, outside the top-k/top-p set", id)
		}
	}
	if g := (&Sampler{}).Sample(slices.Clone(logits)); g != 1 {
		t.Fatalf("greedy Sample = %d; want 1", g)
	}
}

func TestTokenizerRoundTrip(t *testing.T) {
	tok := Tokenizer{Merges: [][2]int{{'t', 'h'}, {256, 'e'}, {' ', 257}}}
	text := []byte("the theme of the other \xff\x00 thesis")
	ids := tok.Encode(text)
	if got := tok.Decode(ids); string(got) != string(text) {
		t.Fatalf("Decode(Encode(%q)) = %q", text, got)
	}
	if len(ids) >= len(text) {
		t.Fatalf("Encode did not merge: %d ids for %d bytes", len(ids), len(text))
	}
}

func TestPenalize(t *testing.T) {
	logits := []float32{2, -2, 1, 0.5}
	Penalize(logits, []int{0, 1, 0, 9, -1}, 2)
	want := []float32{1, -4, 1, 0.5}
	for i := range want {
		if logits[i] != want[i] {
			t.Fatalf("Penalize = %v; want %v", logits, want)
		}
	}
	Penalize(logits, []int{2}, 1)
	if logits[2] != 1 {
		t.Fatalf("Penalize with penalty 1 changed logits: %v", logits)
	}
}

// TestForwardManyLast: ForwardManyLast gives the bits of ForwardMany's last
// row and leaves the same KV cache (the next step's logits agree too).
func TestForwardManyLast(t *testing.T) {
	c := forwardConfig()
	w := forwardWeights(c, 7)
	tokens := []int{3, 1, 4, 1, 5, 9, 2}
	for _, mix := range []Mix{c.Uniform(0), c.Uniform(len(c.FFNWidths) - 1)} {
		all, last := NewState(c), NewState(c)
		ForwardMany(w, all, mix, tokens[:2], 0)
		ForwardManyLast(w, last, mix, tokens[:2], 0)
		want := ForwardMany(w, all, mix, tokens[2:], 2)[(len(tokens)-3)*c.Vocab:]
		got := ForwardManyLast(w, last, mix, tokens[2:], 2)
		if len(got) != c.Vocab {
			t.Fatalf("mix %v: ForwardManyLast gave %d logits; want %d", mix, len(got), c.Vocab)
		}
		for i, v := range got {
			if math.Float32bits(v) != math.Float32bits(want[i]) {
				t.Fatalf("mix %v: ForwardManyLast logit %d = %v; ForwardMany's last row has %v", mix, i, v, want[i])
			}
		}
		want = append([]float32(nil), Forward(w, all, mix, 6, len(tokens))...)
		got = Forward(w, last, mix, 6, len(tokens))
		for i, v := range got {
			if math.Float32bits(v) != math.Float32bits(want[i]) {
				t.Fatalf("mix %v: after ForwardManyLast, the next step's logit %d = %v; after ForwardMany %v", mix, i, v, want[i])
			}
		}
	}
}
