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
	c := w.Config
	n, d, hd := len(tokens), c.Dim, c.HeadDim()
	if n == 0 || pos < 0 || pos+n > c.Context {
		panic("model: ForwardMany: positions out of the context")
	}
	rows := func(size int) [][]float32 {
		r := make([][]float32, n)
		for i := range r {
			r[i] = make([]float32, size)
		}
		return r
	}
	x, xb, xb2, q := rows(d), rows(d), rows(d), rows(d)
	gate, up := rows(c.Hidden()), rows(c.Hidden())
	for r, tok := range tokens {
		copy(x[r], w.Embed[tok*d:(tok+1)*d])
	}
	scale := 1 / sqrt32(float32(hd))
	att := make([]float32, pos+n)

	for l, layer := range w.Layers {
		cache := l * c.Context * d
		keys, values := make([][]float32, n), make([][]float32, n)
		for r := range tokens {
			p := pos + r
			keys[r] = s.keyCache[cache+p*d : cache+(p+1)*d]
			values[r] = s.valueCache[cache+p*d : cache+(p+1)*d]
			RMSNorm(xb[r], x[r], layer.AttnNorm, c.NormEps)
		}
		matVecRows(q, layer.Query, xb)
		matVecRows(keys, layer.Key, xb)
		matVecRows(values, layer.Value, xb)
		for r := range tokens {
			p := pos + r
			Rope(q[r], s.ropeCos[p*hd/2:(p+1)*hd/2], s.ropeSin[p*hd/2:(p+1)*hd/2], hd)
			Rope(keys[r], s.ropeCos[p*hd/2:(p+1)*hd/2], s.ropeSin[p*hd/2:(p+1)*hd/2], hd)
		}
		for r := range tokens {
			p := pos + r
			for h := 0; h < c.Heads; h++ {
				qh := q[r][h*hd : (h+1)*hd]
				a := att[:p+1]
				for t := range a {
					a[t] = Dot(qh, s.keyCache[cache+t*d+h*hd:cache+t*d+(h+1)*hd]) * scale
				}
				Softmax(a)
				out := xb[r][h*hd : (h+1)*hd]
				clear(out)
				for t, v := range a {
					kern.AddScaled(out, v, s.valueCache[cache+t*d+h*hd:cache+t*d+(h+1)*hd])
				}
			}
		}
		matVecRows(xb2, layer.Output, xb)
		for r := range tokens {
			Add(x[r], xb2[r])
			RMSNorm(xb[r], x[r], layer.FFNNorm, c.NormEps)
		}

		width := c.FFNWidths[mix[l]]
		gw, uw := make([][]float32, n), make([][]float32, n)
		for r := range tokens {
			gw[r], uw[r] = gate[r][:width], up[r][:width]
		}
		matVecRows(gw, layer.Gate[:width*d], xb)
		matVecRows(uw, layer.Up[:width*d], xb)
		for r := range tokens {
			SwiGLU(gw[r], gw[r], uw[r])
		}
		matTVecRows(xb2, layer.Down[:width*d], gw)
		for r := range tokens {
			Add(x[r], xb2[r])
		}
	}

	if cap(s.many) < n*c.Vocab {
		s.many = make([]float32, n*c.Vocab)
	}
	logits := s.many[:n*c.Vocab]
	for r := range tokens {
		RMSNorm(x[r], x[r], w.FinalNorm, c.NormEps)
	}
	out := make([][]float32, n)
	for r := range out {
		out[r] = logits[r*c.Vocab : (r+1)*c.Vocab]
	}
	matVecRows(out, w.Head, x)
	return logits
}

// matVecRows sets out[r] = W·x[r] for every r, as MatVec does row by row,
// visiting each row of W once.
func matVecRows(out [][]float32, w []float32, x [][]float32) {
	n := len(x[0])
	for i := range out[0] {
		wi := w[i*n : (i+1)*n]
		for r := range x {
			out[r][i] = Dot(wi, x[r])
		}
	}
}

// matTVecRows sets out[r] = Wᵀ·x[r] for every r, as MatTVec does, visiting
// each row of W once.
func matTVecRows(out [][]float32, w []float32, x [][]float32) {
	n := len(out[0])
	for r := range out {
		clear(out[r])
	}
	for j := range x[0] {
		row := w[j*n : (j+1)*n]
		for r := range x {
			kern.AddScaled(out[r], x[r][j], row)
		}
	}
}
