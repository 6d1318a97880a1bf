package planner

import "math"

// terms is how many terms FitGPUDecode fits: per byte, per step, per
// dispatch, per row.
const terms = 4

// DecodeSample is one measured decode step: how long it took, what it read
// and computed, and how many GPU dispatches it recorded (GPUDispatches).
type DecodeSample struct {
	Seconds    float64
	Work       Work
	Dispatches int   // GPUDispatches
	Rows       int64 // MatrixRows
}

// FitGPUDecode fits the GPU's step time, t = overhead + dispatches·cost +
// rows·cost + bytes/rate, to samples by least squares on the relative error (a sample
// of 10 ms counts as much as one of 100 ms), with no term negative: when the
// best fit wants a negative overhead or dispatch cost, that term is left out
// and the rest fitted again. The samples should differ in dispatches as well
// as in bytes (two model shapes, two widths each): on a software GPU such as
// lavapipe a small kernel costs far more than its bytes, so one rate and one
// overhead fitted on one shape mispredicts a model of another. Within one
// shape bytes and rows grow together (every FFN row is dim long); two
// shapes of different dims tell them apart, and their fixed parts tell the
// overhead from the dispatches. GFLOPs is set
// so high that the arithmetic never decides a step (decode on a GPU is
// bound by its bytes and launches). ok is false when the samples fit no
// positive rate (none, or a time not positive).
func FitGPUDecode(samples []DecodeSample) (b Benchmark, ok bool) {
	if len(samples) == 0 {
		return Benchmark{}, false
	}
	flopsPerByte := 0.0
	for _, s := range samples {
		if !(s.Seconds > 0) || s.Work.Bytes <= 0 || s.Dispatches < 0 || s.Rows < 0 {
			return Benchmark{}, false
		}
		flopsPerByte = max(flopsPerByte, float64(s.Work.FLOPs)/float64(s.Work.Bytes))
	}
	// Terms: seconds per byte (always), fixed seconds, seconds per
	// dispatch, seconds per row; every subset of the last three is tried.
	features := func(s DecodeSample) [terms]float64 {
		return [terms]float64{float64(s.Work.Bytes), 1, float64(s.Dispatches), float64(s.Rows)}
	}
	best, bestErr := [terms]float64{}, math.Inf(1)
	for subset := range 1 << (terms - 1) {
		use := [terms]bool{true}
		for k := 1; k < terms; k++ {
			use[k] = subset&(1<<(k-1)) != 0
		}
		x, good := fitRelative(samples, features, use)
		if !good {
			continue
		}
		if e := relativeError(samples, features, x); e < bestErr {
			best, bestErr = x, e
		}
	}
	if math.IsInf(bestErr, 1) {
		return Benchmark{}, false
	}
	gbps := 1 / best[0] / 1e9
	return Benchmark{
		Backend:            BackendGPU,
		GBps:               gbps,
		GFLOPs:             gbps * max(flopsPerByte, 1),
		StepOverheadMicros: best[1] * 1e6,
		DispatchMicros:     best[2] * 1e6,
		RowNanos:           best[3] * 1e9,
	}, true
}

// fitRelative solves min Σ (Σ_k x_k f_k(s) / t_s − 1)² over the terms in
// use (the others stay 0): linear least squares on features scaled by
// 1/t. good is false when the system is singular or a coefficient comes
// out negative (the per-byte one must be positive).
func fitRelative(samples []DecodeSample, features func(DecodeSample) [terms]float64, use [terms]bool) (x [terms]float64, good bool) {
	var idx []int
	for k, u := range use {
		if u {
			idx = append(idx, k)
		}
	}
	n := len(idx)
	if len(samples) < n {
		return x, false
	}
	// Each column is scaled to a largest entry of 1 (bytes are ~1e7 times
	// a dispatch count), so that the pivots compare like with like.
	var scale [terms]float64
	for _, s := range samples {
		f := features(s)
		for _, a := range idx {
			scale[a] = max(scale[a], f[a]/s.Seconds)
		}
	}
	for _, a := range idx {
		if !(scale[a] > 0) {
			return x, false
		}
	}
	// Normal equations A·y = r, augmented as rows of [A | r].
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, n+1)
	}
	for _, s := range samples {
		f := features(s)
		for i, a := range idx {
			fa := f[a] / s.Seconds / scale[a]
			for j, b := range idx {
				m[i][j] += fa * f[b] / s.Seconds / scale[b]
			}
			m[i][n] += fa
		}
	}
	// Gauss–Jordan with partial pivoting; n ≤ terms.
	for col := range n {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(m[r][col]) > math.Abs(m[p][col]) {
				p = r
			}
		}
		m[col], m[p] = m[p], m[col]
		if math.Abs(m[col][col]) < 1e-9 {
			return x, false
		}
		for r := range n {
			if r == col {
				continue
			}
			f := m[r][col] / m[col][col]
			for c := col; c <= n; c++ {
				m[r][c] -= f * m[col][c]
			}
		}
	}
	for i, a := range idx {
		x[a] = m[i][n] / m[i][i] / scale[a]
		if !(x[a] >= 0) || (a == 0 && !(x[a] > 0)) {
			return x, false
		}
	}
	return x, true
}

// relativeError is Σ (predicted/measured − 1)² of x over samples.
func relativeError(samples []DecodeSample, features func(DecodeSample) [terms]float64, x [terms]float64) float64 {
	e := 0.0
	for _, s := range samples {
		f := features(s)
		r := -1.0
		for k := range terms {
			r += x[k] * f[k] / s.Seconds
		}
		e += r * r
	}
	return e
}
