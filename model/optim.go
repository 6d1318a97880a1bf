package model

import "math"

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), applied to
// all of a Weights' parameters as one vector. Matrices decay; norm gains do not.
type AdamW struct {
	Beta1, Beta2 float32
	Eps          float32
	WeightDecay  float32

	Step int       // updates applied so far
	M    []float32 // first moment, parallel to Weights.Data
	V    []float32 // second moment, parallel to Weights.Data
}

// NewAdamW returns an optimizer for n parameters with the usual settings for
// small language models: β = (0.9, 0.95), ε = 1e-8, weight decay 0.1.
func NewAdamW(n int) *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1,
		M: make([]float32, n), V: make([]float32, n)}
}

// Update takes one step of size lr on w against grad (same config).
func (o *AdamW) Update(w, grad *Weights, lr float32) {
	o.Step++
	c1 := 1 - float32(math.Pow(float64(o.Beta1), float64(o.Step)))
	c2 := 1 - float32(math.Pow(float64(o.Beta2), float64(o.Step)))
	off := 0
	grads := grad.Tensors()
	for ti, t := range w.Tensors() {
		decay := float32(0)
		if len(t.Shape) == 2 {
			decay = o.WeightDecay
		}
		g := grads[ti].Data
		m, v := o.M[off:off+len(t.Data)], o.V[off:off+len(t.Data)]
		for i, p := range t.Data {
			m[i] = o.Beta1*m[i] + (1-o.Beta1)*g[i]
			v[i] = o.Beta2*v[i] + (1-o.Beta2)*g[i]*g[i]
			update := (m[i] / c1) / (sqrt32(v[i]/c2) + o.Eps)
			t.Data[i] = p - lr*(update+decay*p)
		}
		off += len(t.Data)
	}
}

// Schedule is the learning rate at a step: linear warmup from 0 to Peak over
// Warmup steps, then a cosine from Peak down to Min at step Total.
type Schedule struct {
	Peak, Min     float32
	Warmup, Total int
}

// At returns the learning rate for step (0-based).
func (s Schedule) At(step int) float32 {
	if step < s.Warmup {
		return s.Peak * float32(step+1) / float32(s.Warmup)
	}
	if step >= s.Total {
		return s.Min
	}
	progress := float64(step-s.Warmup) / float64(max(s.Total-s.Warmup, 1))
	return s.Min + (s.Peak-s.Min)*float32(0.5*(1+math.Cos(math.Pi*progress)))
}

// ClipGradNorm scales grad so that its L2 norm is at most maxNorm (no-op for
// maxNorm ≤ 0) and returns the norm before clipping, summed in float64.
func ClipGradNorm(grad []float32, maxNorm float32) float64 {
	var ss float64
	for _, g := range grad {
		ss += float64(g) * float64(g)
	}
	norm := math.Sqrt(ss)
	if maxNorm > 0 && norm > float64(maxNorm) {
		k := float32(float64(maxNorm) / norm)
		for i := range grad {
			grad[i] *= k
		}
	}
	return norm
}
