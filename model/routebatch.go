package model

import "math"

// The batched routed forward: what the routing experiment evaluates and fits
// routers on. It is Batch.Forward with a granularity per row and layer. Each
// layer computes the XL gate and up products for every row and the down
// product in G chunks, one per granularity's added neurons; granularity g's
// output is the sum of chunks 0…g (the nested FFN makes the narrower outputs
// partial sums of XL's), so one pass gives every width's output and error.
// Decoding (ForwardRouted) computes only the width picked; the two agree to
// float32 rounding, not bit for bit (the chunks sum in another order).

// RouteTrace receives, for layer l, the FFN inputs of every row (in, [N][D])
// and how far each granularity's FFN output is from XL's, relative to the
// residual stream the FFN adds to (relErr, [N][G]: ‖ffn_XL − ffn_g‖ /
// ‖mid + ffn_XL‖, 0 for XL). The slices are valid during the call only.
type RouteTrace func(l int, in, relErr []float32)

// ForwardRouted runs tokens ([B][T]) with the granularity of each layer
// picked per row from its FFN input, and returns the mean cross-entropy of
// targets as Forward does (targets nil: logits only, 0). picks ([N][layers],
// nil: not recorded) receives each row's granularities; trace (nil: none) sees
// every layer's inputs and errors. The batch cannot be used for Backward
// afterwards.
func (b *Batch) ForwardRouted(w *Weights, pick Picker, tokens, targets []int, picks []int, trace RouteTrace) float64 {
	c := b.Config
	n, d, hidden, G := b.B*b.T, c.Dim, c.Hidden(), c.Granularities()
	if len(tokens) != n || (targets != nil && len(targets) != n) || (picks != nil && len(picks) != n*c.Layers) {
		panic("model: Batch.ForwardRouted: tokens, targets and picks must be [B][T]")
	}
	for r, tok := range tokens {
		copy(b.layers[0].in[r*d:(r+1)*d], w.Embed[tok*d:(tok+1)*d])
	}
	chunks := make([][]float32, G) // [G][N][D] the down product of granularity g's added neurons
	for g := range chunks {
		chunks[g] = make([]float32, n*d)
	}
	packed := make([]float32, n*hidden) // [N][chunk width] one chunk of act, rows contiguous
	relErr := make([]float32, n*G)      // [N][G]
	tail := make([]float32, d)          // [D]
	for l := range w.Layers {
		layer, a := &w.Layers[l], &b.layers[l]
		out := b.finalIn
		if l+1 < c.Layers {
			out = b.layers[l+1].in
		}
		b.attentionHalf(layer, a)

		rmsNormForward(a.ffnNorm, a.ffnRstd, a.mid, layer.FFNNorm, c.NormEps)
		gate, up, act := a.gate[:n*hidden], a.up[:n*hidden], a.act[:n*hidden]
		matMulT(gate, a.ffnNorm, layer.Gate, n, d, hidden)
		matMulT(up, a.ffnNorm, layer.Up, n, d, hidden)
		SwiGLU(act, gate, up)
		lo := 0
		for g, hi := range c.FFNWidths {
			cw := hi - lo
			for r := range n {
				copy(packed[r*cw:(r+1)*cw], act[r*hidden+lo:r*hidden+hi])
			}
			clear(chunks[g])
			matMulAdd(chunks[g], packed[:n*cw], layer.Down[lo*d:hi*d], n, cw, d)
			lo = hi
		}

		for r := range n {
			o := out[r*d : (r+1)*d]
			mid := a.mid[r*d : (r+1)*d]
			if trace != nil {
				// Errors: the chunks above g, summed from the top down.
				clear(tail)
				for g := G - 1; g >= 0; g-- {
					relErr[r*G+g] = norm32(tail)
					Add(tail, chunks[g][r*d:(r+1)*d])
				}
				Add(tail, mid)
				full := norm32(tail)
				for g := range G {
					relErr[r*G+g] /= full
				}
			}
			z := pick(l, a.ffnNorm[r*d:(r+1)*d])
			if picks != nil {
				picks[r*c.Layers+l] = z
			}
			copy(o, mid)
			for g := 0; g <= z; g++ {
				Add(o, chunks[g][r*d:(r+1)*d])
			}
		}
		if trace != nil {
			trace(l, a.ffnNorm[:n*d], relErr)
		}
	}
	rmsNormForward(b.finalNorm, b.finalRstd, b.finalIn, w.FinalNorm, c.NormEps)
	matMulT(b.logits, b.finalNorm, w.Head, n, d, c.Vocab)
	if targets == nil {
		return 0
	}
	copy(b.targets, targets)
	if cap(b.nll) < n {
		b.nll = make([]float64, n)
	}
	b.nll = b.nll[:n]
	return crossEntropyForward(b.probs, b.logits, b.nll, targets, c.Vocab)
}

// norm32 is the Euclidean norm of x, summed in float64.
func norm32(x []float32) float32 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return float32(math.Sqrt(s))
}
