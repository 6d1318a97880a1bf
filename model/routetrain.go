package model

import (
	"fmt"
	"math"
)

// Training the routers by gradient, the MatFormer frozen. The fitted routers
// (routefit.go) predict each width's loss from a regression of its output
// error; here the same routers are tuned on the loss itself:
//
//	J = mean over tokens of [ nll + e^τ · Σ_layers E_p[width_g / width_XL] ]
//
// the language-model loss plus λ·(expected FFN FLOPs), λ = e^τ per layer in
// units of XL's FFN, which is the Lagrangian RoutePick minimises at price τ.
// Each layer's choice is relaxed to a softmax over the granularities of the
// same costs RoutePick compares, measured in units of the price:
//
//	u_g = exp(s_g − τ) + width_g/width_XL   (XL: u = 1),   p = softmax(−u / T)
//
// so that as the temperature T falls, p tends to RoutePick's pick at τ, and
// a router trained this way is used exactly as a fitted one (one price per
// budget, through the budget table). The FFN output is Σ_g y_g·ffn_g with
// y = p (RouteSoft) or y = the hard pick (RouteStraightThrough: the forward
// runs what decoding runs, the backward pretends it ran p). The nested FFN
// makes ffn_g the sum of XL's down product over the first g+1 chunks of
// neurons, so one XL pass gives every width's output and the mixture is
// Σ_k m_k·chunk_k with m_k = Σ_{g≥k} y_g. The backward computes only
// activation gradients (the MatFormer is frozen) and the routers' gradients,
// including the path through later layers' router inputs, so for RouteSoft
// it is the exact gradient of J.

// RouteTrainMode says what the training forward runs.
type RouteTrainMode int

const (
	// RouteSoft runs the softmax mixture of the widths.
	RouteSoft RouteTrainMode = iota
	// RouteStraightThrough runs the hard pick and differentiates as RouteSoft.
	RouteStraightThrough
)

// RouteObjective is the price and relaxation of one training step.
type RouteObjective struct {
	Tau  float32 // price: the compute penalty is e^τ per layer and unit of XL's FFN
	Temp float32 // softmax temperature, in units of the price (> 0)
	Mode RouteTrainMode
}

// RouterTrainer runs the training forward and backward of routers over a
// frozen network, batch by batch.
type RouterTrainer struct {
	b      *Batch
	obj    RouteObjective
	chunks [][][]float32 // [layers][G][N][D] the down product of each granularity's added neurons
	probs  [][]float32   // [layers][N][G] p
	mixes  [][]float32   // [layers][N][G] m_k, the weight of chunk k in the output
	scores [][]float32   // [layers][N][G-1] s_g
	count  int           // rows with a target in the last Forward
	dGain  []float32     // [D] scratch: norm-gain gradients, discarded
	dRoute []float32     // [N][D] ∂J/∂(router input) through the scores
	ready  bool
}

// NewRouterTrainer allocates a trainer for batch sequences of seqLen tokens.
// It panics as NewBatch does.
func NewRouterTrainer(c Config, batch, seqLen int) *RouterTrainer {
	b := NewBatch(c, batch, seqLen)
	n, d, G := batch*seqLen, c.Dim, c.Granularities()
	t := &RouterTrainer{b: b, dGain: make([]float32, d), dRoute: make([]float32, n*d)}
	for range c.Layers {
		ch := make([][]float32, G)
		for g := range ch {
			ch[g] = make([]float32, n*d)
		}
		t.chunks = append(t.chunks, ch)
		t.probs = append(t.probs, make([]float32, n*G))
		t.mixes = append(t.mixes, make([]float32, n*G))
		t.scores = append(t.scores, make([]float32, n*(G-1)))
	}
	return t
}

// Forward runs tokens ([B][T]) through w with routers ([layers][G-1][dim+1])
// relaxed as obj says, and returns the mean cross-entropy of targets ([B][T],
// −1 skips a position) and the mean expected FFN share (E_p[width]/width_XL
// over layers and the rows with a target). The objective J is
// loss + e^τ·layers·share.
func (t *RouterTrainer) Forward(w *Weights, routers [][]float32, obj RouteObjective, tokens, targets []int) (loss, share float64, err error) {
	b := t.b
	c := b.Config
	n, d, hidden, G := b.B*b.T, c.Dim, c.Hidden(), c.Granularities()
	if len(tokens) != n || len(targets) != n {
		return 0, 0, fmt.Errorf("model: router training: tokens and targets must be [%d][%d]", b.B, b.T)
	}
	if len(routers) != c.Layers {
		return 0, 0, fmt.Errorf("model: router training: %d routers for %d layers", len(routers), c.Layers)
	}
	for l, r := range routers {
		if len(r) != (G-1)*(d+1) {
			return 0, 0, fmt.Errorf("model: router training: router of layer %d has %d values, want %d", l, len(r), (G-1)*(d+1))
		}
	}
	if !(obj.Temp > 0) || math.IsInf(float64(obj.Temp), 0) || math.IsNaN(float64(obj.Tau)) || math.IsInf(float64(obj.Tau), 0) {
		return 0, 0, fmt.Errorf("model: router training: price %g and temperature %g must be finite, the temperature above 0", obj.Tau, obj.Temp)
	}
	t.obj = obj
	t.count = 0
	for _, tg := range targets {
		if tg >= 0 {
			t.count++
		}
	}
	for r, tok := range tokens {
		copy(b.layers[0].in[r*d:(r+1)*d], w.Embed[tok*d:(tok+1)*d])
	}
	packed := make([]float32, n*hidden)
	u := make([]float32, G)
	y := make([]float32, G)
	var shareSum float64
	for l := range w.Layers {
		layer, a := &w.Layers[l], &b.layers[l]
		out := b.finalIn
		if l+1 < c.Layers {
			out = b.layers[l+1].in
		}
		b.attentionHalf(layer, a)
		rmsNormForward(a.ffnNorm, a.ffnRstd, a.mid, layer.FFNNorm, c.NormEps)
		matMulT(a.gate, a.ffnNorm, layer.Gate, n, d, hidden)
		matMulT(a.up, a.ffnNorm, layer.Up, n, d, hidden)
		SwiGLU(a.act, a.gate, a.up)
		lo := 0
		for g, hi := range c.FFNWidths {
			cw := hi - lo
			for r := range n {
				copy(packed[r*cw:(r+1)*cw], a.act[r*hidden+lo:r*hidden+hi])
			}
			clear(t.chunks[l][g])
			matMulAdd(t.chunks[l][g], packed[:n*cw], layer.Down[lo*d:hi*d], n, cw, d)
			lo = hi
		}
		router := routers[l]
		for r := range n {
			nr := a.ffnNorm[r*d : (r+1)*d]
			s := t.scores[l][r*(G-1) : (r+1)*(G-1)]
			for g := range G - 1 {
				row := router[g*(d+1) : (g+1)*(d+1)]
				s[g] = Dot(row[:d], nr) + row[d]
				u[g] = float32(math.Exp(float64(s[g]-obj.Tau))) + float32(c.FFNWidths[g])/float32(hidden)
			}
			u[G-1] = 1
			p := t.probs[l][r*G : (r+1)*G]
			for g := range G {
				p[g] = -u[g] / obj.Temp
			}
			Softmax(p)
			if obj.Mode == RouteStraightThrough {
				clear(y)
				y[pickScores(s, obj.Tau, c.FFNWidths)] = 1
			} else {
				copy(y, p)
			}
			m := t.mixes[l][r*G : (r+1)*G]
			var acc float32
			for k := G - 1; k >= 0; k-- {
				acc += y[k]
				m[k] = acc
			}
			o := out[r*d : (r+1)*d]
			copy(o, a.mid[r*d:(r+1)*d])
			for k := range G {
				if m[k] != 0 {
					kern.AddScaled(o, m[k], t.chunks[l][k][r*d:(r+1)*d])
				}
			}
			if targets[r] >= 0 {
				for g := range G {
					shareSum += float64(p[g]) * float64(c.FFNWidths[g]) / float64(hidden)
				}
			}
		}
	}
	rmsNormForward(b.finalNorm, b.finalRstd, b.finalIn, w.FinalNorm, c.NormEps)
	matMulT(b.logits, b.finalNorm, w.Head, n, d, c.Vocab)
	copy(b.targets, targets)
	if cap(b.nll) < n {
		b.nll = make([]float64, n)
	}
	b.nll = b.nll[:n]
	loss = crossEntropyForward(b.probs, b.logits, b.nll, targets, c.Vocab)
	t.ready = true
	if t.count == 0 {
		return loss, 0, nil
	}
	return loss, shareSum / float64(t.count*c.Layers), nil
}

// Backward adds ∂J/∂routers of the last Forward to grad ([layers][G-1][dim+1]).
func (t *RouterTrainer) Backward(w *Weights, routers, grad [][]float32) {
	if !t.ready {
		panic("model: RouterTrainer.Backward without a Forward")
	}
	t.ready = false
	b := t.b
	c := b.Config
	n, d, v, hidden, G := b.B*b.T, c.Dim, c.Vocab, c.Hidden(), c.Granularities()
	obj := t.obj
	price := float32(0)
	if t.count > 0 {
		price = float32(math.Exp(float64(obj.Tau)) / float64(t.count))
	}
	crossEntropyBackward(b.probs, b.targets, v, 1)
	clear(b.dNorm)
	matMulAdd(b.dNorm, b.probs, w.Head, n, v, d)
	clear(b.dResid)
	rmsNormBackward(b.dResid, t.dGain, b.dNorm, b.finalIn, b.finalRstd, w.FinalNorm)

	dp := make([]float32, G)
	e := make([]float32, G)
	for l := c.Layers - 1; l >= 0; l-- {
		layer, a := &w.Layers[l], &b.layers[l]
		router, gr := routers[l], grad[l]
		// The routing: dJ/dy_g = dResid·ffn_g, ffn_g = Σ_{k≤g} chunk_k.
		for r := range n {
			dr := b.dResid[r*d : (r+1)*d]
			p := t.probs[l][r*G : (r+1)*G]
			s := t.scores[l][r*(G-1) : (r+1)*(G-1)]
			var cum float32
			for k := range G {
				e[k] = Dot(dr, t.chunks[l][k][r*d:(r+1)*d])
				cum += e[k]
				dp[k] = cum
				if b.targets[r] >= 0 {
					dp[k] += price * float32(c.FFNWidths[k]) / float32(hidden)
				}
			}
			var mean float32
			for g := range G {
				mean += p[g] * dp[g]
			}
			nr := a.ffnNorm[r*d : (r+1)*d]
			dn := t.dRoute[r*d : (r+1)*d]
			clear(dn)
			for g := range G - 1 {
				du := -p[g] * (dp[g] - mean) / obj.Temp
				ds := du * float32(math.Exp(float64(s[g]-obj.Tau)))
				if ds == 0 {
					continue
				}
				row := router[g*(d+1) : (g+1)*(d+1)]
				kern.AddScaled(gr[g*(d+1):g*(d+1)+d], ds, nr)
				gr[g*(d+1)+d] += ds
				kern.AddScaled(dn, ds, row[:d])
			}
		}
		// The FFN: out = mid + Σ_k m_k·chunk_k, so ∂act in chunk k is m_k·(dResid·Downᵀ).
		matMulT(b.dAct, b.dResid, layer.Down, n, d, hidden)
		for r := range n {
			m := t.mixes[l][r*G : (r+1)*G]
			lo := 0
			for k, hi := range c.FFNWidths {
				row := b.dAct[r*hidden+lo : r*hidden+hi]
				if m[k] != 1 {
					for j := range row {
						row[j] *= m[k]
					}
				}
				lo = hi
			}
		}
		swiGLUBackward(b.dGate, b.dUp, b.dAct, a.gate, a.up)
		copy(b.dNorm, t.dRoute)
		matMulAdd(b.dNorm, b.dGate, layer.Gate, n, hidden, d)
		matMulAdd(b.dNorm, b.dUp, layer.Up, n, hidden, d)
		rmsNormBackward(b.dResid, t.dGain, b.dNorm, a.mid, a.ffnRstd, layer.FFNNorm)

		// Attention, as blockBackward without the parameter gradients.
		clear(b.dAttnOut)
		matMulAdd(b.dAttnOut, b.dResid, layer.Output, n, d, d)
		attentionBackward(b.dQ, b.dK, b.dV, b.dAttnOut, a.att, a.q, a.k, a.v, b.B, b.T, c.Heads, c.HeadDim(), true)
		ropeBackward(b.dQ, b.ropeCos, b.ropeSin, b.B, b.T, c.HeadDim())
		ropeBackward(b.dK, b.ropeCos, b.ropeSin, b.B, b.T, c.HeadDim())
		clear(b.dNorm)
		matMulAdd(b.dNorm, b.dQ, layer.Query, n, d, d)
		matMulAdd(b.dNorm, b.dK, layer.Key, n, d, d)
		matMulAdd(b.dNorm, b.dV, layer.Value, n, d, d)
		rmsNormBackward(b.dResid, t.dGain, b.dNorm, a.in, a.attnRstd, layer.AttnNorm)
	}
}
