package model

// ForwardMany runs tokens at positions pos, pos+1, … through mix and returns
// their logits ([len(tokens)][vocab], valid until the next ForwardMany on s).
// It computes exactly what len(tokens) calls of Forward would, each token's
// arithmetic in the same order, but visits each weight row once for all the
// tokens: this is what makes checking a speculative draft of k tokens cost
// little more than one decode step on a memory-bound CPU. Positions 0…pos-1
// must be in the KV cache; entries from pos on are overwritten, so rewinding a
// sequence is decoding from an earlier pos.
func ForwardMany(w *Weights, s *State, mix Mix, tokens []int, pos int) []float32 {
	return forwardMany(w, s, mix, tokens, pos, true)
}

// ForwardManyLast is ForwardMany that returns the last token's logits only
// ([vocab], the bits of ForwardMany's last row; s.Logits, valid until the
// next Forward or ForwardManyLast on s), for a prompt, whose other
// positions' logits nobody reads: the output head is then one product
// instead of len(tokens), which is 15 % of the default model's XL work per
// prompt token and 39 % of S's.
func ForwardManyLast(w *Weights, s *State, mix Mix, tokens []int, pos int) []float32 {
	return forwardMany(w, s, mix, tokens, pos, false)
}

// forwardMany is ForwardMany, with logits for every token when all is set,
// else for the last one only.
func forwardMany(w *Weights, s *State, mix Mix, tokens []int, pos int, all bool) []float32 {
	c := w.Config
	n, d, hd := len(tokens), c.Dim, c.HeadDim()
	if n == 0 || pos < 0 || pos+n > c.Context {
		panic("model: ForwardMany: positions out of the context")
	}
	// Every buffer holds the n tokens' vectors one after the other: [n][size].
	// They are carved from one scratch slice kept in s, so that a prefill
	// does not leave garbage for the collector on every call.
	h := c.Hidden()
	if need := n * (4*d + 2*h); cap(s.manyScratch) < need {
		s.manyScratch = make([]float32, need)
	}
	buf := s.manyScratch
	carve := func(size int) []float32 {
		b := buf[:size:size]
		buf = buf[size:]
		return b
	}
	x, xb, xb2, q := carve(n*d), carve(n*d), carve(n*d), carve(n*d)
	gate, up := carve(n*h), carve(n*h)
	for r, tok := range tokens {
		copy(x[r*d:(r+1)*d], w.Embed[tok*d:(tok+1)*d])
	}

	for l, layer := range w.Layers {
		cache := l * c.Context * d
		keys := s.keyCache[cache+pos*d : cache+(pos+n)*d]     // [n][d]
		values := s.valueCache[cache+pos*d : cache+(pos+n)*d] // [n][d]
		kern.RMSNorm(xb, x, layer.AttnNorm, c.NormEps)
		kern.MatVecBatch(q, layer.Query, xb, n)
		kern.MatVecBatch(keys, layer.Key, xb, n)
		kern.MatVecBatch(values, layer.Value, xb, n)
		cos, sin := s.ropeCos[pos*hd/2:(pos+n)*hd/2], s.ropeSin[pos*hd/2:(pos+n)*hd/2]
		kern.Rope(q, cos, sin, hd)
		kern.Rope(keys, cos, sin, hd)
		for r := range n {
			// Every head of token r at position pos+r in one call, with the
			// scores in s.att as Forward keeps them.
			kern.Attention(xb[r*d:(r+1)*d], s.att, q[r*d:(r+1)*d], s.keyCache[cache:], s.valueCache[cache:], c.Heads, pos+r+1, c.Context, d)
		}
		kern.MatVecBatch(xb2, layer.Output, xb, n)
		kern.Add(x, xb2)
		kern.RMSNorm(xb, x, layer.FFNNorm, c.NormEps)

		width := c.FFNWidths[mix[l]]
		gw, uw := gate[:n*width], up[:n*width] // [n][width]
		kern.MatVecBatch(gw, layer.Gate[:width*d], xb, n)
		kern.MatVecBatch(uw, layer.Up[:width*d], xb, n)
		SwiGLU(gw, gw, uw)
		kern.MatTVecBatch(xb2, layer.Down[:width*d], gw, n)
		kern.Add(x, xb2)
	}

	if !all {
		last := x[(n-1)*d:]
		kern.RMSNorm(last, last, w.FinalNorm, c.NormEps)
		kern.MatVec(s.Logits, w.Head, last, d)
		return s.Logits
	}
	if cap(s.many) < n*c.Vocab {
		s.many = make([]float32, n*c.Vocab)
	}
	logits := s.many[:n*c.Vocab]
	kern.RMSNorm(x, x, w.FinalNorm, c.NormEps)
	kern.MatVecBatch(logits, w.Head, x, n)
	return logits
}
