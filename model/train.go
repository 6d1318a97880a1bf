package model

import "math"

// Training. Forward above runs one token at a time for decoding; training runs
// a whole batch of sequences at once, keeps every activation the backward pass
// needs, and then walks the network in reverse. Each op's backward sits next to
// its forward, llm.c style: read trainForward and trainBackward side by side.
//
// Shapes: B sequences of T tokens, N = B·T rows, D = Dim, W = the FFN width
// of the granularity a layer runs, V = Vocab, H = Heads, hd = D/H.

// Batch holds the activations of one training forward pass and the scratch
// its backward pass needs, sized once for B sequences of T tokens at the XL
// width so that the G granularities of a MatFormer step reuse it.
type Batch struct {
	Config Config
	B, T   int

	mix     Mix
	tokens  []int // [N] inputs
	targets []int // [N] next tokens; -1 means "no loss at this position"
	layers  []layerActs

	finalIn   []float32 // [N][D] residual stream after the last block
	finalNorm []float32 // [N][D]
	finalRstd []float32 // [N]
	logits    []float32 // [N][V]
	probs     []float32 // [N][V] softmax(logits), then ∂loss/∂logits in Backward
	nll       []float64 // [N] −log p(target) of the last Forward; 0 where the target is -1

	ropeCos, ropeSin []float32 // [Context][hd/2]

	// gradients of activations, reused layer after layer
	dResid   []float32 // [N][D] ∂loss/∂(residual stream) at the current point
	dNorm    []float32 // [N][D]
	dQ, dK   []float32 // [N][D]
	dV       []float32 // [N][D]
	dAttnOut []float32 // [N][D]
	dGate    []float32 // [N][Hidden]
	dUp      []float32 // [N][Hidden]
	dAct     []float32 // [N][Hidden]

	image imageScratch // a vision model's input and pooling (vision.go)
}

// layerActs are the saved activations of one block. The block's output is the
// next block's In (or Batch.finalIn).
type layerActs struct {
	in       []float32 // [N][D] residual stream entering the block
	attnNorm []float32 // [N][D] rmsnorm(in)
	attnRstd []float32 // [N] 1/rms of each row of in
	q, k, v  []float32 // [N][D] projections; q and k after RoPE
	att      []float32 // [B][H][T][T] attention probabilities; row t uses u ≤ t
	attnOut  []float32 // [N][D] heads concatenated, before Wo
	mid      []float32 // [N][D] residual stream after attention
	ffnNorm  []float32 // [N][D] rmsnorm(mid)
	ffnRstd  []float32 // [N]
	gate     []float32 // [N][W] gate pre-activations
	up       []float32 // [N][W]
	act      []float32 // [N][W] silu(gate)·up
}

// NewBatch allocates activations for batch sequences of seqLen tokens
// (seqLen ≤ c.Context). It panics on an invalid config or shape.
func NewBatch(c Config, batch, seqLen int) *Batch {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	if batch <= 0 || seqLen <= 0 || seqLen > c.Context {
		panic("model: batch shape out of range")
	}
	n, d, h, v := batch*seqLen, c.Dim, c.Hidden(), c.Vocab
	f := func(size int) []float32 { return make([]float32, size) }
	b := &Batch{
		Config: c, B: batch, T: seqLen,
		tokens: make([]int, n), targets: make([]int, n),
		layers:  make([]layerActs, c.Layers),
		finalIn: f(n * d), finalNorm: f(n * d), finalRstd: f(n),
		logits: f(n * v), probs: f(n * v),
		ropeCos: f(c.Context * c.HeadDim() / 2), ropeSin: f(c.Context * c.HeadDim() / 2),
		dResid: f(n * d), dNorm: f(n * d), dQ: f(n * d), dK: f(n * d), dV: f(n * d), dAttnOut: f(n * d),
		dGate: f(n * h), dUp: f(n * h), dAct: f(n * h),
	}
	for l := range b.layers {
		b.layers[l] = layerActs{
			in: f(n * d), attnNorm: f(n * d), attnRstd: f(n),
			q: f(n * d), k: f(n * d), v: f(n * d),
			att:     f(batch * c.Heads * seqLen * seqLen),
			attnOut: f(n * d), mid: f(n * d), ffnNorm: f(n * d), ffnRstd: f(n),
			gate: f(n * h), up: f(n * h), act: f(n * h),
		}
	}
	if im := c.Image; im != nil {
		b.image = imageScratch{
			patches: f(n * im.PatchLen()), labels: make([]int, batch),
			pooled: f(batch * d), pooledNorm: f(batch * d), pooledRstd: f(batch), dPooled: f(batch * d),
		}
		b.nll = make([]float64, batch)
	}
	RopeTable(c, b.ropeCos, b.ropeSin)
	return b
}

// Logits returns the logits of the last Forward, [B·T][V].
func (b *Batch) Logits() []float32 { return b.logits }

// Forward runs tokens ([B][T], each sequence starting at position 0) through
// mix and returns the mean cross-entropy (nats per token) of targets ([B][T];
// -1 skips a position). With targets nil it computes logits only and returns 0.
func (b *Batch) Forward(w *Weights, mix Mix, tokens, targets []int) float64 {
	c := b.Config
	n, d := b.B*b.T, c.Dim
	if len(tokens) != n || (targets != nil && len(targets) != n) {
		panic("model: Batch.Forward: tokens and targets must be [B][T]")
	}
	if c.Image != nil {
		panic("model: Batch.Forward on a vision model (use ForwardImages)")
	}
	if err := c.CheckMix(mix); err != nil {
		panic(err)
	}
	b.mix = append(b.mix[:0], mix...)
	copy(b.tokens, tokens)
	for r, tok := range tokens {
		copy(b.layers[0].in[r*d:(r+1)*d], w.Embed[tok*d:(tok+1)*d])
	}
	for l := range w.Layers {
		out := b.finalIn
		if l+1 < c.Layers {
			out = b.layers[l+1].in
		}
		b.blockForward(&w.Layers[l], &b.layers[l], c.FFNWidths[mix[l]], out)
	}
	rmsNormForward(b.finalNorm, b.finalRstd, b.finalIn, w.FinalNorm, c.NormEps)
	matMulT(b.logits, b.finalNorm, w.Head, n, d, c.Vocab)
	if targets == nil {
		for r := range b.targets {
			b.targets[r] = -1
		}
		return 0
	}
	copy(b.targets, targets)
	if cap(b.nll) < n {
		b.nll = make([]float64, n)
	}
	b.nll = b.nll[:n]
	return crossEntropyForward(b.probs, b.logits, b.nll, targets, c.Vocab)
}

// NLL returns the cross-entropy of each position of the last Forward, [B·T]
// (0 where the target was -1): what a caller sums, in position order, for a
// total that does not depend on how positions were grouped into batches.
func (b *Batch) NLL() []float64 { return b.nll }

// attentionHalf is a block's first half: mid = in + attn(rmsnorm(in)).
func (b *Batch) attentionHalf(layer *Layer, a *layerActs) {
	c := b.Config
	n, d := b.B*b.T, c.Dim
	rmsNormForward(a.attnNorm, a.attnRstd, a.in, layer.AttnNorm, c.NormEps)
	matMulT(a.q, a.attnNorm, layer.Query, n, d, d)
	matMulT(a.k, a.attnNorm, layer.Key, n, d, d)
	matMulT(a.v, a.attnNorm, layer.Value, n, d, d)
	causal := c.Image == nil // a language model attends to the past; an image encoder to every patch
	if causal {
		ropeForward(a.q, b.ropeCos, b.ropeSin, b.B, b.T, c.HeadDim())
		ropeForward(a.k, b.ropeCos, b.ropeSin, b.B, b.T, c.HeadDim())
	}
	attentionForward(a.attnOut, a.att, a.q, a.k, a.v, b.B, b.T, c.Heads, c.HeadDim(), causal)
	matMulT(a.mid, a.attnOut, layer.Output, n, d, d)
	Add(a.mid, a.in)
}

// blockForward: out = mid + ffn(rmsnorm(mid)), mid = in + attn(rmsnorm(in)).
func (b *Batch) blockForward(layer *Layer, a *layerActs, width int, out []float32) {
	c := b.Config
	n, d := b.B*b.T, c.Dim
	b.attentionHalf(layer, a)

	rmsNormForward(a.ffnNorm, a.ffnRstd, a.mid, layer.FFNNorm, c.NormEps)
	gate, up, act := a.gate[:n*width], a.up[:n*width], a.act[:n*width]
	matMulT(gate, a.ffnNorm, layer.Gate[:width*d], n, d, width)
	matMulT(up, a.ffnNorm, layer.Up[:width*d], n, d, width)
	SwiGLU(act, gate, up)
	clear(out)
	matMulAdd(out, act, layer.Down[:width*d], n, width, d)
	Add(out, a.mid)
}

// Backward adds scale · ∂loss/∂w to grad, where loss is the value the last
// Forward returned (which must have had targets). grad has w's config; Data
// holds the running sum over calls, so the G granularities of a MatFormer step
// accumulate into one gradient.
func (b *Batch) Backward(w, grad *Weights, scale float32) {
	c := b.Config
	n, d, v := b.B*b.T, c.Dim, c.Vocab
	crossEntropyBackward(b.probs, b.targets, v, scale)
	dLogits := b.probs
	matTMulAdd(grad.Head, dLogits, b.finalNorm, n, v, d)
	clear(b.dNorm)
	matMulAdd(b.dNorm, dLogits, w.Head, n, v, d)
	clear(b.dResid)
	rmsNormBackward(b.dResid, grad.FinalNorm, b.dNorm, b.finalIn, b.finalRstd, w.FinalNorm)

	for l := c.Layers - 1; l >= 0; l-- {
		b.blockBackward(&w.Layers[l], &grad.Layers[l], &b.layers[l], c.FFNWidths[b.mix[l]])
	}
	for r, tok := range b.tokens {
		Add(grad.Embed[tok*d:(tok+1)*d], b.dResid[r*d:(r+1)*d])
	}
}

// blockBackward turns dResid = ∂loss/∂out into ∂loss/∂in, adding the block's
// parameter gradients to g. It mirrors blockForward from the bottom up.
func (b *Batch) blockBackward(layer, g *Layer, a *layerActs, width int) {
	c := b.Config
	n, d := b.B*b.T, c.Dim

	// FFN. out = mid + act·Down, so ∂mid gets dResid directly (kept in dResid).
	act, dAct := a.act[:n*width], b.dAct[:n*width]
	dGate, dUp := b.dGate[:n*width], b.dUp[:n*width]
	matTMulAdd(g.Down[:width*d], act, b.dResid, n, width, d)
	matMulT(dAct, b.dResid, layer.Down[:width*d], n, d, width)
	swiGLUBackward(dGate, dUp, dAct, a.gate[:n*width], a.up[:n*width])
	matTMulAdd(g.Gate[:width*d], dGate, a.ffnNorm, n, width, d)
	matTMulAdd(g.Up[:width*d], dUp, a.ffnNorm, n, width, d)
	clear(b.dNorm)
	matMulAdd(b.dNorm, dGate, layer.Gate[:width*d], n, width, d)
	matMulAdd(b.dNorm, dUp, layer.Up[:width*d], n, width, d)
	rmsNormBackward(b.dResid, g.FFNNorm, b.dNorm, a.mid, a.ffnRstd, layer.FFNNorm)

	// Attention. mid = in + attnOut·Woᵀ, so ∂in gets dResid directly.
	matTMulAdd(g.Output, b.dResid, a.attnOut, n, d, d)
	clear(b.dAttnOut)
	matMulAdd(b.dAttnOut, b.dResid, layer.Output, n, d, d)
	causal := c.Image == nil
	attentionBackward(b.dQ, b.dK, b.dV, b.dAttnOut, a.att, a.q, a.k, a.v, b.B, b.T, c.Heads, c.HeadDim(), causal)
	if causal {
		ropeBackward(b.dQ, b.ropeCos, b.ropeSin, b.B, b.T, c.HeadDim())
		ropeBackward(b.dK, b.ropeCos, b.ropeSin, b.B, b.T, c.HeadDim())
	}
	matTMulAdd(g.Query, b.dQ, a.attnNorm, n, d, d)
	matTMulAdd(g.Key, b.dK, a.attnNorm, n, d, d)
	matTMulAdd(g.Value, b.dV, a.attnNorm, n, d, d)
	clear(b.dNorm)
	matMulAdd(b.dNorm, b.dQ, layer.Query, n, d, d)
	matMulAdd(b.dNorm, b.dK, layer.Key, n, d, d)
	matMulAdd(b.dNorm, b.dV, layer.Value, n, d, d)
	rmsNormBackward(b.dResid, g.AttnNorm, b.dNorm, a.in, a.attnRstd, layer.AttnNorm)
}

// TrainingFLOPs is the number of floating-point operations (multiply and add
// count one each) of one Forward + Backward of batch sequences of seqLen
// tokens through mix: 3× the forward matmuls, plus attention.
func TrainingFLOPs(c Config, mix Mix, batch, seqLen int) float64 {
	n, d := float64(batch*seqLen), float64(c.Dim)
	params := float64(c.Vocab) * d // head
	for _, g := range mix {
		params += 4*d*d + 3*d*float64(c.FFNWidths[g])
	}
	attn := float64(c.Layers) * float64(batch) * float64(seqLen*(seqLen+1)/2) * 4 * d // q·k and p·v
	return 3 * (2*n*params + attn)
}

// ---- ops: each forward with its backward ----

// rmsNormForward sets out[r] = x[r] · rstd[r] · gain for each row r of x
// ([N][D]), rstd[r] = 1/√(mean(x[r]²) + eps), computed as RMSNorm does.
func rmsNormForward(out, rstd, x, gain []float32, eps float32) {
	d := len(gain)
	for r := range rstd {
		row := x[r*d : (r+1)*d]
		var ss float32
		for _, v := range row {
			ss += v * v
		}
		inv := 1 / sqrt32(ss/float32(d)+eps)
		rstd[r] = inv
		o := out[r*d : (r+1)*d]
		for i, v := range row {
			o[i] = v * inv * gain[i]
		}
	}
}

// rmsNormBackward adds ∂loss/∂x to dx and ∂loss/∂gain to dGain, given
// dOut = ∂loss/∂out. With y_i = x_i·r·g_i and r = (mean x² + eps)^-½:
// ∂x_j = r·(g_j·dy_j − x_j·r²/D · Σ_i dy_i·g_i·x_i).
func rmsNormBackward(dx, dGain, dOut, x, rstd, gain []float32) {
	d := len(gain)
	for r, inv := range rstd {
		row, dy, dxr := x[r*d:(r+1)*d], dOut[r*d:(r+1)*d], dx[r*d:(r+1)*d]
		var dot float32
		for i, v := range row {
			dot += dy[i] * gain[i] * v
		}
		k := dot * inv * inv / float32(d)
		for i, v := range row {
			dxr[i] += inv * (gain[i]*dy[i] - v*k)
			dGain[i] += dy[i] * v * inv
		}
	}
}

// ropeForward rotates each head of each row of x ([B][T][D]) by its position
// t, as Rope does for one token.
func ropeForward(x, cos, sin []float32, batch, seqLen, headDim int) {
	half := headDim / 2
	d := len(x) / (batch * seqLen)
	for r := 0; r < batch*seqLen; r++ {
		t := r % seqLen
		Rope(x[r*d:(r+1)*d], cos[t*half:(t+1)*half], sin[t*half:(t+1)*half], headDim)
	}
}

// ropeBackward turns ∂loss/∂(rotated x) into ∂loss/∂x in place: the rotation
// is orthogonal, so its gradient is the rotation by the opposite angle.
func ropeBackward(dx, cos, sin []float32, batch, seqLen, headDim int) {
	half := headDim / 2
	d := len(dx) / (batch * seqLen)
	for r := 0; r < batch*seqLen; r++ {
		t := r % seqLen
		row, c, s := dx[r*d:(r+1)*d], cos[t*half:(t+1)*half], sin[t*half:(t+1)*half]
		for h := 0; h < d; h += headDim {
			for i := 0; i < half; i++ {
				a, b := row[h+2*i], row[h+2*i+1]
				row[h+2*i] = a*c[i] + b*s[i]
				row[h+2*i+1] = -a*s[i] + b*c[i]
			}
		}
	}
}

// attentionForward is multi-head attention over q, k, v ([B][T][D]):
// att[b][h][t][u] = softmax_u≤t(q_t·k_u/√hd), out_t = Σ_u att[t][u]·v_u when
// causal, and softmax over every u < T when not (an image's patches).
// Each (sequence, head) pair is independent and runs on its own goroutine.
func attentionForward(out, att, q, k, v []float32, batch, seqLen, heads, headDim int, causal bool) {
	d := heads * headDim
	scale := 1 / sqrt32(float32(headDim))
	parallelFor(batch*heads, func(lo, hi int) {
		for bh := lo; bh < hi; bh++ {
			b, h := bh/heads, bh%heads
			base, col := b*seqLen*d, h*headDim
			for t := 0; t < seqLen; t++ {
				qt := q[base+t*d+col : base+t*d+col+headDim]
				row := att[(bh*seqLen+t)*seqLen : (bh*seqLen+t+1)*seqLen]
				span := seqLen
				if causal {
					span = t + 1
				}
				for u := 0; u < span; u++ {
					row[u] = Dot(qt, k[base+u*d+col:base+u*d+col+headDim]) * scale
				}
				Softmax(row[:span])
				clear(row[span:])
				o := out[base+t*d+col : base+t*d+col+headDim]
				clear(o)
				for u, p := range row[:span] {
					kern.AddScaled(o, p, v[base+u*d+col:base+u*d+col+headDim])
				}
			}
		}
	})
}

// attentionBackward sets dq, dk, dv from dOut = ∂loss/∂out. With s = q·k/√hd
// and p = softmax(s): ∂p[u] = dOut_t·v_u, ∂v_u += p[u]·dOut_t,
// ∂s[u] = p[u]·(∂p[u] − Σ p·∂p), ∂q_t += ∂s[u]·k_u/√hd, ∂k_u += ∂s[u]·q_t/√hd.
// A goroutine owns one (sequence, head) pair, so it alone writes those columns.
func attentionBackward(dq, dk, dv, dOut, att, q, k, v []float32, batch, seqLen, heads, headDim int, causal bool) {
	d := heads * headDim
	scale := 1 / sqrt32(float32(headDim))
	parallelFor(batch*heads, func(lo, hi int) {
		dp := make([]float32, seqLen)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/heads, bh%heads
			base, col := b*seqLen*d, h*headDim
			for t := 0; t < seqLen; t++ {
				clear(dq[base+t*d+col : base+t*d+col+headDim])
				clear(dk[base+t*d+col : base+t*d+col+headDim])
				clear(dv[base+t*d+col : base+t*d+col+headDim])
			}
			for t := 0; t < seqLen; t++ {
				span := seqLen
				if causal {
					span = t + 1
				}
				row := att[(bh*seqLen+t)*seqLen : (bh*seqLen+t)*seqLen+span]
				dot := dOut[base+t*d+col : base+t*d+col+headDim]
				var sum float32
				for u, p := range row {
					off := base + u*d + col
					dp[u] = Dot(dot, v[off:off+headDim])
					sum += p * dp[u]
					kern.AddScaled(dv[off:off+headDim], p, dot)
				}
				qt := q[base+t*d+col : base+t*d+col+headDim]
				dqt := dq[base+t*d+col : base+t*d+col+headDim]
				for u, p := range row {
					ds := p * (dp[u] - sum) * scale
					off := base + u*d + col
					kern.AddScaled(dqt, ds, k[off:off+headDim])
					kern.AddScaled(dk[off:off+headDim], ds, qt)
				}
			}
		}
	})
}

// swiGLUBackward sets dGate and dUp from dAct for act = silu(gate)·up:
// ∂up = dAct·silu(gate), ∂gate = dAct·up·σ(gate)·(1 + gate·(1 − σ(gate))).
func swiGLUBackward(dGate, dUp, dAct, gate, up []float32) {
	for j, g := range gate {
		sig := 1 / (1 + exp32(-g))
		dUp[j] = dAct[j] * g * sig
		dGate[j] = dAct[j] * up[j] * sig * (1 + g*(1-sig))
	}
}

// crossEntropyForward sets probs = softmax(logits) row by row ([N][V]) and
// nll[r] = −log probs[r][targets[r]] (0 where the target is -1), and returns
// the mean of nll over rows whose target is not -1, summed in float64 in row
// order. Rows are independent and shared out between goroutines.
func crossEntropyForward(probs, logits []float32, nll []float64, targets []int, vocab int) float64 {
	clear(nll)
	parallelFor(len(targets), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := probs[r*vocab : (r+1)*vocab]
			copy(row, logits[r*vocab:(r+1)*vocab])
			Softmax(row)
			if target := targets[r]; target >= 0 {
				nll[r] = -math.Log(float64(max(row[target], math.SmallestNonzeroFloat32)))
			}
		}
	})
	var sum float64
	var count int
	for r, target := range targets {
		if target >= 0 {
			sum += nll[r]
			count++
		}
	}
	if count == 0 {
		return 0
	}
	return sum / float64(count)
}

// crossEntropyBackward turns probs into ∂(scale·loss)/∂logits in place:
// (probs − onehot(target))·scale/count, and zero for rows without a target.
func crossEntropyBackward(probs []float32, targets []int, vocab int, scale float32) {
	count := 0
	for _, t := range targets {
		if t >= 0 {
			count++
		}
	}
	k := scale / float32(max(count, 1))
	for r, target := range targets {
		row := probs[r*vocab : (r+1)*vocab]
		if target < 0 {
			clear(row)
			continue
		}
		row[target]--
		for i := range row {
			row[i] *= k
		}
	}
}
