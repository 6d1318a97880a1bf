package model

import "math"

// State is one sequence being decoded: scratch activations and the KV cache.
// Reusing a State across steps is what makes decoding O(context) per token.
type State struct {
	x      []float32 // [dim] residual stream
	xb     []float32 // [dim] normed input / attention output
	xb2    []float32 // [dim] projection output
	q      []float32 // [dim] query
	hb     []float32 // [hidden] FFN gate activations
	hb2    []float32 // [hidden] FFN up activations
	att    []float32 // [heads][context] attention scores
	Logits []float32 // [vocab] output of the last Forward

	keyCache   []float32 // [layers][context][dim]
	valueCache []float32 // [layers][context][dim]
	ropeCos    []float32 // [context][headDim/2]
	ropeSin    []float32 // [context][headDim/2]
	many       []float32 // [tokens][vocab] logits of the last ForwardMany
	// manyScratch holds ForwardMany's activations: [tokens][4·dim + 2·hidden].
	manyScratch []float32
}

// NewState allocates the activations and KV cache for one sequence of up to
// c.Context tokens.
func NewState(c Config) *State {
	half := c.HeadDim() / 2
	s := &State{
		x: make([]float32, c.Dim), xb: make([]float32, c.Dim), xb2: make([]float32, c.Dim),
		q: make([]float32, c.Dim), hb: make([]float32, c.Hidden()), hb2: make([]float32, c.Hidden()),
		att:        make([]float32, c.Heads*c.Context),
		Logits:     make([]float32, c.Vocab),
		keyCache:   make([]float32, c.Layers*c.Context*c.Dim),
		valueCache: make([]float32, c.Layers*c.Context*c.Dim),
		ropeCos:    make([]float32, c.Context*half),
		ropeSin:    make([]float32, c.Context*half),
	}
	RopeTable(c, s.ropeCos, s.ropeSin)
	return s
}

// RopeTable fills cos and sin ([context][headDim/2]) with the rotary angles
// pos·θ^(-2i/headDim). They are computed in float64 once, so every backend that
// uploads this table rotates by exactly the same numbers.
func RopeTable(c Config, cos, sin []float32) {
	half := c.HeadDim() / 2
	for pos := 0; pos < c.Context; pos++ {
		for i := 0; i < half; i++ {
			freq := math.Pow(float64(c.RopeTheta), -float64(2*i)/float64(c.HeadDim()))
			angle := float64(pos) * freq
			cos[pos*half+i] = float32(math.Cos(angle))
			sin[pos*half+i] = float32(math.Sin(angle))
		}
	}
}

// Forward runs one token at position pos through the Mix and returns the logits
// ([vocab], valid until the next call). Positions 0…pos-1 must already be in the
// KV cache from earlier calls with the same State.
func Forward(w *Weights, s *State, mix Mix, token, pos int) []float32 {
	return forward(w, s, mix, nil, token, pos, nil)
}

// forward is Forward and ForwardRouted: each layer's FFN width comes from mix,
// or, when pick is set, from pick on the FFN input (recorded in picks when
// not nil). One body, so the two give the same bits for the same widths.
func forward(w *Weights, s *State, mix Mix, pick Picker, token, pos int, picks []int) []float32 {
	c := w.Config
	d, hd := c.Dim, c.HeadDim()
	copy(s.x, w.Embed[token*d:(token+1)*d])

	for l, layer := range w.Layers {
		// Attention: x += Wo · attend(rope(Wq·n), rope(Wk·n), Wv·n), n = rmsnorm(x).
		RMSNorm(s.xb, s.x, layer.AttnNorm, c.NormEps)
		cache := l * c.Context * d
		k := s.keyCache[cache+pos*d : cache+(pos+1)*d]
		v := s.valueCache[cache+pos*d : cache+(pos+1)*d]
		MatVec(s.q, layer.Query, s.xb)
		MatVec(k, layer.Key, s.xb)
		MatVec(v, layer.Value, s.xb)
		Rope(s.q, s.ropeCos[pos*hd/2:(pos+1)*hd/2], s.ropeSin[pos*hd/2:(pos+1)*hd/2], hd)
		Rope(k, s.ropeCos[pos*hd/2:(pos+1)*hd/2], s.ropeSin[pos*hd/2:(pos+1)*hd/2], hd)
		kern.Attention(s.xb, s.att, s.q, s.keyCache[cache:], s.valueCache[cache:], c.Heads, pos+1, c.Context, d)
		MatVec(s.xb2, layer.Output, s.xb)
		Add(s.x, s.xb2)

		// FFN, nested: only the first `width` neurons of this layer are used.
		// x += Σ_j<width silu(gate_j·n) · (up_j·n) · down_j, n = rmsnorm(x).
		RMSNorm(s.xb, s.x, layer.FFNNorm, c.NormEps)
		var g int
		if pick != nil {
			g = pick(l, s.xb)
			if picks != nil {
				picks[l] = g
			}
		} else {
			g = mix[l]
		}
		width := c.FFNWidths[g]
		gate, up := s.hb[:width], s.hb2[:width]
		MatVec(gate, layer.Gate[:width*d], s.xb)
		MatVec(up, layer.Up[:width*d], s.xb)
		SwiGLU(gate, gate, up)
		MatTVec(s.xb2, layer.Down[:width*d], gate)
		Add(s.x, s.xb2)
	}

	RMSNorm(s.x, s.x, w.FinalNorm, c.NormEps)
	MatVec(s.Logits, w.Head, s.x)
	return s.Logits
}

// RMSNorm sets out = x / rms(x) · gain over len(x) values, with the active
// kernel set. out may alias x.
func RMSNorm(out, x, gain []float32, eps float32) { kern.RMSNorm(out, x, gain[:len(x)], eps) }

// rmsNormGo is Kernels.RMSNorm in plain Go, the reference: rmsNormRow of each
// row of len(gain) values.
func rmsNormGo(out, x, gain []float32, eps float32) {
	d := len(gain)
	if d == 0 {
		return
	}
	for r := 0; r+d <= len(x); r += d {
		rmsNormRow(out[r:r+d], x[r:r+d], gain, eps)
	}
}

// rmsNormRow is one row of rmsNormGo. The sum of squares is summed left to
// right, each square rounded before it is added; then out[i] =
// (x[i]·inv)·gain[i].
func rmsNormRow(out, x, gain []float32, eps float32) {
	out, gain = out[:len(x)], gain[:len(x)]
	var ss float32
	for _, v := range x {
		ss += float32(v * v)
	}
	inv := 1 / sqrt32(ss/float32(len(x))+eps)
	for i, v := range x {
		out[i] = v * inv * gain[i]
	}
}

// attentionWith returns Kernels.Attention made of k's products: each head h
// of hd = len(q)/heads values attends at position n−1, att[t] =
// softmax_t(q·k_t / √hd) into att[h·attStride:][:n], out[h·hd:][:hd] =
// Σ_t att[t]·v_t, where q is q[h·hd:][:hd], k_t = keys[h·hd + t·stride:][:hd]
// and v_t likewise in values (the KV cache of one layer).
func attentionWith(k Kernels) func(out, att, q, keys, values []float32, heads, n, attStride, stride int) {
	return func(out, att, q, keys, values []float32, heads, n, attStride, stride int) {
		hd := len(q) / heads
		scale := 1 / sqrt32(float32(hd))
		for h := range heads {
			a := att[h*attStride : h*attStride+n]
			k.MatVec(a, keys[h*hd:], q[h*hd:(h+1)*hd], stride)
			k.Scale(a, scale)
			k.Softmax(a)
			k.MatTVec(out[h*hd:(h+1)*hd], values[h*hd:], a, stride)
		}
	}
}

// attentionGo is Kernels.Attention of the reference, GoKernels.
var attentionGo = attentionWith(Kernels{MatVec: matVecGo, Scale: scaleGo, Softmax: softmaxGo, MatTVec: matTVecGo})

// MatVec sets out = W·x for W [len(out)][len(x)], each row summed in the
// order of dot4 by the active kernel set.
func MatVec(out, w, x []float32) { kern.MatVec(out, w, x, len(x)) }

// MatTVec sets out = Wᵀ·x for W [len(x)][len(out)] (a neuron-major matrix),
// summed over the rows of W in order.
func MatTVec(out, w, x []float32) { kern.MatTVec(out, w, x, len(out)) }

// Dot is Σ a[i]·b[i] with the active kernel set (summed left to right by
// GoKernels).
func Dot(a, b []float32) float32 { return kern.Dot(a, b) }

// Add sets x += y, with the active kernel set.
func Add(x, y []float32) { kern.Add(x, y) }

// addGo is Add in plain Go: the reference.
func addGo(x, y []float32) {
	y = y[:len(x)]
	for i := range x {
		x[i] += y[i]
	}
}

// scaleGo sets x *= s: the reference of Kernels.Scale.
func scaleGo(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

// Rope rotates each consecutive pair (x[2i], x[2i+1]) of every head of size
// headDim by the angle whose cos and sin ([headDim/2]) are given, with the
// active kernel set.
func Rope(x, cos, sin []float32, headDim int) {
	kern.Rope(x, cos[:headDim/2], sin[:headDim/2], headDim)
}

// ropeGo is Kernels.Rope in plain Go, the reference: ropeRow of each of the
// len(cos)/(headDim/2) rows of x with its own angles.
func ropeGo(x, cos, sin []float32, headDim int) {
	half := headDim / 2
	if half == 0 || len(cos) < half {
		return
	}
	rows := len(cos) / half
	d := len(x) / rows
	for r := range rows {
		ropeRow(x[r*d:(r+1)*d], cos[r*half:(r+1)*half], sin[r*half:(r+1)*half], headDim)
	}
}

// ropeRow is one row of ropeGo. Each product is rounded before the sum (no
// fused multiply-add): (a·cos − b·sin, a·sin + b·cos).
func ropeRow(x, cos, sin []float32, headDim int) {
	half := headDim / 2
	cos, sin = cos[:half], sin[:half]
	for h := 0; h < len(x); h += headDim {
		p := x[h : h+2*half]
		for i, c := range cos {
			s := sin[i]
			a, b := p[2*i], p[2*i+1]
			p[2*i] = float32(a*c) - float32(b*s)
			p[2*i+1] = float32(a*s) + float32(b*c)
		}
	}
}

// Softmax replaces x by exp(x - max) / Σ exp(x - max), with the active
// kernel set.
func Softmax(x []float32) { kern.Softmax(x) }

// softmaxGo is Softmax in plain Go: the reference. The sum is summed in the
// four-lane order of dot4 (sum4), so that a vector version gives the same bits.
func softmaxGo(x []float32) {
	maxv := x[0]
	for _, v := range x[1:] {
		maxv = max(maxv, v)
	}
	for i, v := range x {
		x[i] = exp32(v - maxv)
	}
	sum := sum4(x)
	for i := range x {
		x[i] /= sum
	}
}

// SwiGLU sets out[j] = silu(gate[j]) · up[j], silu(z) = z / (1 + e^-z), with
// the active kernel set. out may alias gate.
func SwiGLU(out, gate, up []float32) { kern.SwiGLU(out, gate, up) }

// swiGLUGo is SwiGLU in plain Go: the reference.
func swiGLUGo(out, gate, up []float32) {
	up = up[:len(gate)]
	out = out[:len(gate)]
	for j, g := range gate {
		out[j] = g / (1 + exp32(-g)) * up[j]
	}
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// exp32 is e^x in float32, to about 2 ulp: x = n·ln 2 + r with n the integer
// nearest x·log₂e, e^r by Cephes' expf polynomial, 2^n put into the exponent
// bits. Each step is one float32 operation, rounded (no fused multiply-add), in
// the order the SIMD kernels follow ($exp in wasm/kernels/kernels.wat), so both
// give the same bits. x < −87.3 gives 0 (e^x is not a normal float32 there,
// and e^−∞ is 0); x > 88.3 gives e^88.3 ≈ 2.2e38; NaN stays NaN.
func exp32(x float32) float32 {
	under := x < -87.3
	x = max(min(x, 88.3), -87.3)
	n := float32(math.RoundToEven(float64(x * 1.44269504088896341)))
	r := x - float32(n*0.693359375)
	r -= float32(n * -2.12194440e-4)
	p := float32(1.9875691500e-4)
	p = float32(p*r) + 1.3981999507e-3
	p = float32(p*r) + 8.3334519073e-3
	p = float32(p*r) + 4.1665795894e-2
	p = float32(p*r) + 1.6666665459e-1
	p = float32(p*r) + 5.0000001201e-1
	y := float32(p*float32(r*r)) + r
	y++
	y *= math.Float32frombits(uint32(int32(n)+127) << 23)
	if under {
		return 0
	}
	return y
}
