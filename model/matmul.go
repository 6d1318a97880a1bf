package model

import (
	"runtime"
	"sync"
)

// The plain-Go reference versions of the three batched matrix products of
// training (see Kernels). Each one is split across
// goroutines by output rows, so every output element is written by one
// goroutine and summed in one fixed order: the result does not depend on
// GOMAXPROCS, and a run is bit-for-bit reproducible.

// parallelFor calls fn on contiguous pieces [lo, hi) of [0, n), one per
// goroutine, up to runtime.GOMAXPROCS(0) of them, and waits for all.
func parallelFor(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		lo, hi := i*n/workers, (i+1)*n/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// matMulTGo sets out = x·Wᵀ: out [n][outDim], x [n][in], w [outDim][in] (an
// out-major matrix, as Query or Gate are stored). Each element is one dot
// product summed left to right over in.
func matMulTGo(out, x, w []float32, n, in, outDim int) {
	parallelFor(n, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*in : (r+1)*in]
			or := out[r*outDim : (r+1)*outDim]
			o := 0
			for ; o+4 <= outDim; o += 4 {
				w0 := w[o*in : (o+1)*in][:len(xr)]
				w1 := w[(o+1)*in : (o+2)*in][:len(xr)]
				w2 := w[(o+2)*in : (o+3)*in][:len(xr)]
				w3 := w[(o+3)*in : (o+4)*in][:len(xr)]
				var s0, s1, s2, s3 float32
				for i, v := range xr {
					s0 += v * w0[i]
					s1 += v * w1[i]
					s2 += v * w2[i]
					s3 += v * w3[i]
				}
				or[o], or[o+1], or[o+2], or[o+3] = s0, s1, s2, s3
			}
			for ; o < outDim; o++ {
				or[o] = dotGo(xr, w[o*in:(o+1)*in])
			}
		}
	})
}

// matMulAddGo adds x·W to out: out [n][outDim], x [n][in], w [in][outDim] (a
// neuron-major matrix such as Down, or an out-major one used backwards).
func matMulAddGo(out, x, w []float32, n, in, outDim int) {
	parallelFor(n, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*in : (r+1)*in]
			or := out[r*outDim : (r+1)*outDim]
			for i, a := range xr {
				if a == 0 {
					continue
				}
				row := w[i*outDim : (i+1)*outDim][:len(or)]
				for o := range or {
					or[o] += a * row[o]
				}
			}
		}
	})
}

// matTMulAddGo adds aᵀ·b to out, the weight gradient of a product: out
// [m][k], a [n][m], b [n][k]. Row i of out is Σ_r a[r][i]·b[r], summed over
// r in order; goroutines own blocks of rows of out.
func matTMulAddGo(out, a, b []float32, n, m, k int) {
	parallelFor((m+3)/4, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			i := 4 * blk
			if i+4 > m {
				for ; i < m; i++ {
					oi := out[i*k : (i+1)*k]
					for r := 0; r < n; r++ {
						if c := a[r*m+i]; c != 0 {
							br := b[r*k : (r+1)*k][:len(oi)]
							for j := range oi {
								oi[j] += c * br[j]
							}
						}
					}
				}
				continue
			}
			o0 := out[i*k : (i+1)*k]
			o1 := out[(i+1)*k : (i+2)*k][:len(o0)]
			o2 := out[(i+2)*k : (i+3)*k][:len(o0)]
			o3 := out[(i+3)*k : (i+4)*k][:len(o0)]
			for r := 0; r < n; r++ {
				ar := a[r*m+i : r*m+i+4]
				c0, c1, c2, c3 := ar[0], ar[1], ar[2], ar[3]
				br := b[r*k : (r+1)*k][:len(o0)]
				for j, v := range br {
					o0[j] += c0 * v
					o1[j] += c1 * v
					o2[j] += c2 * v
					o3[j] += c3 * v
				}
			}
		}
	})
}

// dotGo is Σ a[i]·b[i], summed left to right.
func dotGo(a, b []float32) float32 {
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// addScaledGo sets y += s·x.
func addScaledGo(y []float32, s float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += s * x[i]
	}
}
