package model

import (
	"fmt"
	"math"
	"testing"
)

// tinyConfig is small enough that finite differences over every parameter run
// in a fraction of a second, and has every feature: two layers, two heads,
// four nested widths.
func tinyConfig() Config {
	return Config{Vocab: 11, Dim: 8, Layers: 2, Heads: 2, FFNWidths: NestedWidths(16),
		Context: 8, RopeTheta: 10000, NormEps: 1e-5}
}

func randomSlice(r *RNG, n int, scale float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = (2*r.Float32() - 1) * scale
	}
	return x
}

func randomTokens(r *RNG, n, vocab int) []int {
	t := make([]int, n)
	for i := range t {
		t[i] = int(r.Uint32() % uint32(vocab))
	}
	return t
}

// project is Σ out[i]·weights[i] in float64: a scalar loss whose gradient with
// respect to out is weights, used to test one op at a time.
func project(out, weights []float32) float64 {
	var s float64
	for i, v := range out {
		s += float64(v) * float64(weights[i])
	}
	return s
}

// checkGrad compares analytic ∂loss/∂x with central differences of loss,
// perturbing each x[i] by ±eps. The tolerance is absolute plus relative.
func checkGrad(t *testing.T, name string, x, analytic []float32, eps, tol float64, loss func() float64) {
	t.Helper()
	var worst float64
	for i := range x {
		orig := x[i]
		x[i] = orig + float32(eps)
		plus := loss()
		x[i] = orig - float32(eps)
		minus := loss()
		x[i] = orig
		numeric := (plus - minus) / (2 * eps)
		diff := math.Abs(numeric - float64(analytic[i]))
		worst = max(worst, diff/(tol*(1+math.Abs(numeric))))
		if diff > tol*(1+math.Abs(numeric)) {
			t.Errorf("%s[%d]: analytic %.6g, numeric %.6g", name, i, analytic[i], numeric)
			return
		}
	}
	t.Logf("%s: worst error %.2f of tolerance over %d elements", name, worst, len(x))
}

func TestRMSNormBackward(t *testing.T) {
	r := NewRNG(1)
	const rows, d = 3, 8
	x, gain, proj := randomSlice(r, rows*d, 2), randomSlice(r, d, 1.5), randomSlice(r, rows*d, 1)
	out, rstd := make([]float32, rows*d), make([]float32, rows)
	loss := func() float64 { rmsNormForward(out, rstd, x, gain, 1e-5); return project(out, proj) }
	loss()
	dx, dGain := make([]float32, rows*d), make([]float32, d)
	rmsNormBackward(dx, dGain, proj, x, rstd, gain)
	checkGrad(t, "x", x, dx, 1e-3, 2e-3, loss)
	checkGrad(t, "gain", gain, dGain, 1e-3, 2e-3, loss)
}

func TestRopeBackward(t *testing.T) {
	c := tinyConfig()
	r := NewRNG(2)
	const batch, seqLen = 2, 5
	cos, sin := make([]float32, c.Context*c.HeadDim()/2), make([]float32, c.Context*c.HeadDim()/2)
	RopeTable(c, cos, sin)
	x, proj := randomSlice(r, batch*seqLen*c.Dim, 1), randomSlice(r, batch*seqLen*c.Dim, 1)
	out := make([]float32, len(x))
	loss := func() float64 {
		copy(out, x)
		ropeForward(out, cos, sin, batch, seqLen, c.HeadDim())
		return project(out, proj)
	}
	dx := append([]float32(nil), proj...)
	ropeBackward(dx, cos, sin, batch, seqLen, c.HeadDim())
	checkGrad(t, "x", x, dx, 1e-3, 1e-3, loss)
}

func TestAttentionBackward(t *testing.T) {
	for _, causal := range []bool{true, false} {
		r := NewRNG(3)
		const batch, seqLen, heads, headDim = 2, 5, 2, 4
		n, d := batch*seqLen, heads*headDim
		q, k, v := randomSlice(r, n*d, 1), randomSlice(r, n*d, 1), randomSlice(r, n*d, 1)
		proj := randomSlice(r, n*d, 1)
		out, att := make([]float32, n*d), make([]float32, batch*heads*seqLen*seqLen)
		loss := func() float64 {
			attentionForward(out, att, q, k, v, batch, seqLen, heads, headDim, causal)
			return project(out, proj)
		}
		loss()
		dq, dk, dv := make([]float32, n*d), make([]float32, n*d), make([]float32, n*d)
		attentionBackward(dq, dk, dv, proj, att, q, k, v, batch, seqLen, heads, headDim, causal)
		name := fmt.Sprintf("causal=%v ", causal)
		checkGrad(t, name+"q", q, dq, 1e-3, 2e-3, loss)
		checkGrad(t, name+"k", k, dk, 1e-3, 2e-3, loss)
		checkGrad(t, name+"v", v, dv, 1e-3, 2e-3, loss)
	}
}

func TestSwiGLUBackward(t *testing.T) {
	r := NewRNG(4)
	const n = 20
	gate, up, proj := randomSlice(r, n, 4), randomSlice(r, n, 2), randomSlice(r, n, 1)
	out := make([]float32, n)
	loss := func() float64 { SwiGLU(out, gate, up); return project(out, proj) }
	dGate, dUp := make([]float32, n), make([]float32, n)
	swiGLUBackward(dGate, dUp, proj, gate, up)
	checkGrad(t, "gate", gate, dGate, 1e-3, 1e-3, loss)
	checkGrad(t, "up", up, dUp, 1e-3, 1e-3, loss)
}

func TestCrossEntropyBackward(t *testing.T) {
	r := NewRNG(5)
	const rows, vocab = 4, 7
	logits := randomSlice(r, rows*vocab, 3)
	targets := []int{2, -1, 6, 0}
	probs := make([]float32, rows*vocab)
	loss := func() float64 {
		return crossEntropyForward(probs, logits, make([]float64, len(targets)), targets, vocab)
	}
	loss()
	crossEntropyBackward(probs, targets, vocab, 1)
	dLogits := append([]float32(nil), probs...)
	checkGrad(t, "logits", logits, dLogits, 1e-3, 1e-3, loss)
}

// TestMatMulBackward checks the two ways a weight matrix is used: x·Wᵀ
// (out-major, Query…Gate, Up, Head) and x·W (neuron-major Down).
func TestMatMulBackward(t *testing.T) {
	r := NewRNG(6)
	const n, in, out = 5, 7, 6 // not multiples of the 4-wide blocks
	x, w, proj := randomSlice(r, n*in, 1), randomSlice(r, out*in, 1), randomSlice(r, n*out, 1)
	y := make([]float32, n*out)

	lossT := func() float64 { matMulT(y, x, w, n, in, out); return project(y, proj) }
	dx, dw := make([]float32, n*in), make([]float32, out*in)
	matMulAdd(dx, proj, w, n, out, in)
	matTMulAdd(dw, proj, x, n, out, in)
	checkGrad(t, "x·Wᵀ: x", x, dx, 1e-2, 1e-3, lossT)
	checkGrad(t, "x·Wᵀ: W", w, dw, 1e-2, 1e-3, lossT)

	// w read as [in][out]
	loss := func() float64 { clear(y); matMulAdd(y, x, w, n, in, out); return project(y, proj) }
	dx, dw = make([]float32, n*in), make([]float32, out*in)
	matMulT(dx, proj, w, n, out, in)
	matTMulAdd(dw, x, proj, n, in, out)
	checkGrad(t, "x·W: x", x, dx, 1e-2, 1e-3, loss)
	checkGrad(t, "x·W: W", w, dw, 1e-2, 1e-3, loss)
}

// TestNetworkGradient checks ∂loss/∂w of the whole network against finite
// differences for every parameter, on a Mix that uses a different width in
// each layer, so that the unused FFN rows must get exactly zero gradient.
func TestNetworkGradient(t *testing.T) {
	c := tinyConfig()
	w := NewWeights(c)
	w.InitRandom(7)
	r := NewRNG(8)
	for i := range w.Data { // perturb the norm gains away from 1 too
		w.Data[i] += (2*r.Float32() - 1) * 0.1
	}
	const batch, seqLen = 2, 6
	tokens, targets := randomTokens(r, batch*seqLen, c.Vocab), randomTokens(r, batch*seqLen, c.Vocab)
	targets[3] = -1
	mix := Mix{1, 3}
	b := NewBatch(c, batch, seqLen)
	grad := NewWeights(c)
	b.Forward(w, mix, tokens, targets)
	b.Backward(w, grad, 1)
	loss := func() float64 { return b.Forward(w, mix, tokens, targets) }
	for _, tensor := range w.Tensors() {
		g, _ := grad.Tensor(tensor.Name)
		checkGrad(t, tensor.Name, tensor.Data, g.Data, 1e-2, 2e-3, loss)
	}
	unused := grad.Layers[0].Gate[c.FFNWidths[1]*c.Dim:]
	for i, v := range unused {
		if v != 0 {
			t.Fatalf("layer 0 gate row %d beyond width %d has gradient %g; want 0", c.FFNWidths[1]+i/c.Dim, c.FFNWidths[1], v)
		}
	}
}

// TestBatchForwardMatchesForward runs the same sequences through the batched
// training forward and through the one-token decoder with its KV cache.
func TestBatchForwardMatchesForward(t *testing.T) {
	c := tinyConfig()
	c.Vocab, c.Dim, c.Heads, c.FFNWidths, c.Context = 40, 16, 4, NestedWidths(64), 12
	w := NewWeights(c)
	w.InitRandom(9)
	const batch, seqLen = 3, 12
	tokens := randomTokens(NewRNG(10), batch*seqLen, c.Vocab)
	b := NewBatch(c, batch, seqLen)
	for _, mix := range []Mix{c.Uniform(0), c.Uniform(3), {0, 3}, {2, 1}} {
		b.Forward(w, mix, tokens, nil)
		for seq := 0; seq < batch; seq++ {
			s := NewState(c)
			for pos := 0; pos < seqLen; pos++ {
				r := seq*seqLen + pos
				want := Forward(w, s, mix, tokens[r], pos)
				got := b.Logits()[r*c.Vocab : (r+1)*c.Vocab]
				for i := range want {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("mix %v seq %d pos %d: logit[%d] = %g; Forward gives %g", mix, seq, pos, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestGradientSumsObjective checks that the joint MatFormer gradient is the
// weighted sum of the per-granularity gradients.
func TestGradientSumsObjective(t *testing.T) {
	c := tinyConfig()
	w := NewWeights(c)
	w.InitRandom(11)
	r := NewRNG(12)
	tokens, targets := randomTokens(r, 12, c.Vocab), randomTokens(r, 12, c.Vocab)
	b := NewBatch(c, 2, 6)
	weights := []float32{0.5, 1, 0, 2}
	joint := NewWeights(c)
	losses := b.Gradient(w, joint, MatFormerObjective(c, weights), tokens, targets)
	sum := make([]float64, len(w.Data))
	for g, k := range weights {
		single := NewWeights(c)
		loss := b.Gradient(w, single, Objective{Mixes: []Mix{c.Uniform(g)}, Weights: []float32{k}}, tokens, targets)
		if loss[0] != losses[g] {
			t.Errorf("granularity %d: loss %g alone, %g in the joint step", g, loss[0], losses[g])
		}
		for i, v := range single.Data {
			sum[i] += float64(v)
		}
	}
	for i, v := range joint.Data {
		if math.Abs(float64(v)-sum[i]) > 1e-6 {
			t.Fatalf("joint gradient[%d] = %g; sum of parts %g", i, v, sum[i])
		}
	}
}

// TestBatchDeterministic: the same step twice gives bit-identical gradients.
func TestBatchDeterministic(t *testing.T) {
	c := tinyConfig()
	w := NewWeights(c)
	w.InitRandom(13)
	r := NewRNG(14)
	tokens, targets := randomTokens(r, 16, c.Vocab), randomTokens(r, 16, c.Vocab)
	b := NewBatch(c, 2, 8)
	g1, g2 := NewWeights(c), NewWeights(c)
	b.Gradient(w, g1, MatFormerObjective(c, nil), tokens, targets)
	b.Gradient(w, g2, MatFormerObjective(c, nil), tokens, targets)
	for i := range g1.Data {
		if math.Float32bits(g1.Data[i]) != math.Float32bits(g2.Data[i]) {
			t.Fatalf("gradient[%d] = %g, then %g", i, g1.Data[i], g2.Data[i])
		}
	}
}

func TestScheduleAndClip(t *testing.T) {
	s := Schedule{Peak: 1e-3, Min: 1e-4, Warmup: 10, Total: 110}
	for _, tc := range []struct {
		step int
		want float32
	}{{0, 1e-4}, {9, 1e-3}, {60, 5.5e-4}, {110, 1e-4}, {500, 1e-4}} {
		if got := s.At(tc.step); math.Abs(float64(got-tc.want)) > 1e-9 {
			t.Errorf("Schedule.At(%d) = %g; want %g", tc.step, got, tc.want)
		}
	}
	g := []float32{3, 4}
	if norm := ClipGradNorm(g, 1); norm != 5 || math.Abs(float64(g[0]-0.6)) > 1e-7 || math.Abs(float64(g[1]-0.8)) > 1e-7 {
		t.Errorf("ClipGradNorm([3 4], 1) = %g, %v; want 5, [0.6 0.8]", norm, g)
	}
}

// TestAdamWLearns fits a tiny network to one batch: the loss must fall far.
func TestAdamWLearns(t *testing.T) {
	c := tinyConfig()
	w := NewWeights(c)
	w.InitRandom(15)
	r := NewRNG(16)
	tokens, targets := randomTokens(r, 16, c.Vocab), randomTokens(r, 16, c.Vocab)
	b := NewBatch(c, 2, 8)
	grad := NewWeights(c)
	opt := NewAdamW(len(w.Data))
	obj := MatFormerObjective(c, nil)
	first := b.Gradient(w, grad, obj, tokens, targets)
	var last []float64
	for range 200 {
		last = b.Gradient(w, grad, obj, tokens, targets)
		ClipGradNorm(grad.Data, 1)
		opt.Update(w, grad, 1e-2)
	}
	for g := range last {
		if last[g] > first[g]/3 {
			t.Errorf("granularity %d: loss %.3f after 200 steps, started at %.3f", g, last[g], first[g])
		}
	}
}

// BenchmarkBatchGradient times one MatFormer training step of the default
// model's config with every kernel set available, side by side.
func BenchmarkBatchGradient(b *testing.B) {
	c := Config{Vocab: 2048, Dim: 128, Layers: 4, Heads: 4, FFNWidths: NestedWidths(512),
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
	w := NewWeights(c)
	w.InitRandom(1)
	r := NewRNG(2)
	const batch, seqLen = 4, 256
	tokens, targets := randomTokens(r, batch*seqLen, c.Vocab), randomTokens(r, batch*seqLen, c.Vocab)
	bt := NewBatch(c, batch, seqLen)
	grad := NewWeights(c)
	obj := MatFormerObjective(c, nil)
	defer UseKernels(ActiveKernels().Name)
	for _, name := range AvailableKernels() {
		b.Run(name, func(b *testing.B) {
			if err := UseKernels(name); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				bt.Gradient(w, grad, obj, tokens, targets)
			}
			b.ReportMetric(float64(b.N*batch*seqLen)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(obj.FLOPs(c, batch, seqLen)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
