//go:build goexperiment.simd && amd64

package model

import (
	"simd/archsimd"
	"sync"
	"unsafe"
)

// The "avx2" kernel set: 8-wide FMA with Go's simd/archsimd (built with
// GOEXPERIMENT=simd, used when the CPU has AVX2 and FMA).
//
// All three batched products are one kernel, gemmAcc: out[i][j] += Σ_t
// a(i,t)·b[t][j], where a is read through two strides so that x, or the
// transpose of a, needs no copy. MatMulT, whose weights are out-major, copies
// W transposed first (a small cost next to the product). gemmAcc keeps a
// 4-row × 16-column block of out in eight vector registers while it walks t,
// and visits t and j in cache-sized panels. Every element is updated by the
// same sequence of fused multiply-adds in increasing t whatever the block
// shape, panel or goroutine, so results are reproducible.

func init() {
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		registerKernels(Kernels{
			Name:       "avx2",
			MatMulT:    matMulTSIMD,
			MatMulAdd:  matMulAddSIMD,
			MatTMulAdd: matTMulAddSIMD,
			Dot:        dotSIMD,
			AddScaled:  addScaledSIMD,
			Softmax:    softmaxSIMD,

			MatVec:       matVecSIMD,
			MatTVec:      matTVecSIMD,
			MatVecBatch:  matVecBatchSIMD,
			MatTVecBatch: matTVecBatchSIMD,
			SwiGLU:       swiGLUSIMD,
		}, true)
	}
}

const (
	panelDepth = 128 // t per panel: a 128 × 512 panel of b is 256 KiB
	panelWidth = 512 // j per panel
)

var transposeScratch = sync.Pool{New: func() any { return new([]float32) }}

func matMulTSIMD(out, x, w []float32, n, in, outDim int) {
	checkLen(out, n*outDim)
	checkLen(x, n*in)
	checkLen(w, outDim*in)
	p := transposeScratch.Get().(*[]float32)
	if cap(*p) < in*outDim {
		*p = make([]float32, in*outDim)
	}
	wt := (*p)[:in*outDim] // [in][outDim]
	for o := range outDim {
		row := w[o*in : (o+1)*in]
		for i, v := range row {
			wt[i*outDim+o] = v
		}
	}
	clear(out[:n*outDim])
	gemmAcc(out, outDim, x, in, 1, wt, outDim, n, outDim, in)
	transposeScratch.Put(p)
}

func matMulAddSIMD(out, x, w []float32, n, in, outDim int) {
	checkLen(out, n*outDim)
	checkLen(x, n*in)
	checkLen(w, in*outDim)
	gemmAcc(out, outDim, x, in, 1, w, outDim, n, outDim, in)
}

func matTMulAddSIMD(out, a, b []float32, n, m, k int) {
	checkLen(out, m*k)
	checkLen(a, n*m)
	checkLen(b, n*k)
	gemmAcc(out, k, a, 1, m, b, k, m, k, n)
}

func checkLen(s []float32, n int) {
	if len(s) < n {
		panic("model: matrix shorter than its shape")
	}
}

// gemmAcc adds to out [rows][cols] (row stride ldo) the product of a(i,t) =
// a[i·aRow + t·aT] and b [depth][cols] (row stride ldb). The callers have
// checked every slice against its shape; the kernels below read through
// unchecked pointers.
func gemmAcc(out []float32, ldo int, a []float32, aRow, aT int, b []float32, ldb int, rows, cols, depth int) {
	if rows == 0 || cols == 0 || depth == 0 {
		return
	}
	op, ap, bp := unsafe.Pointer(&out[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0])
	parallelFor((rows+3)/4, func(lo, hi int) {
		for t0 := 0; t0 < depth; t0 += panelDepth {
			nt := min(panelDepth, depth-t0)
			for j0 := 0; j0 < cols; j0 += panelWidth {
				j1 := min(j0+panelWidth, cols)
				for blk := lo; blk < hi; blk++ {
					i0 := 4 * blk
					nr := min(4, rows-i0)
					for j := j0; j < j1; {
						o := unsafe.Add(op, 4*(i0*ldo+j))
						x := unsafe.Add(ap, 4*(i0*aRow+t0*aT))
						y := unsafe.Add(bp, 4*(t0*ldb+j))
						switch {
						case j+16 <= j1 && nr == 4:
							kernel4x16(o, ldo, x, aRow, aT, y, ldb, nt)
							j += 16
						case j+8 <= j1:
							for r := range nr {
								kernel1x8(unsafe.Add(o, 4*r*ldo), unsafe.Add(x, 4*r*aRow), aT, y, ldb, nt)
							}
							j += 8
						default:
							for r := range nr {
								row := out[(i0+r)*ldo+j : (i0+r)*ldo+j1]
								kernel1xPart(row, unsafe.Add(x, 4*r*aRow), aT, b[t0*ldb+j:], ldb, nt)
							}
							j = j1
						}
					}
				}
			}
		}
	})
}

func load8(p unsafe.Pointer) archsimd.Float32x8 {
	return archsimd.LoadFloat32x8((*[8]float32)(p))
}

func bcast(p unsafe.Pointer) archsimd.Float32x8 {
	return archsimd.BroadcastFloat32x8(*(*float32)(p))
}

// kernel4x16 updates a 4 × 16 block of out from nt steps of t.
func kernel4x16(o unsafe.Pointer, ldo int, a unsafe.Pointer, aRow, aT int, b unsafe.Pointer, ldb, nt int) {
	ro, ra, sa, sb := 4*ldo, 4*aRow, 4*aT, 4*ldb
	o1, o2, o3 := unsafe.Add(o, ro), unsafe.Add(o, 2*ro), unsafe.Add(o, 3*ro)
	c00, c01 := load8(o), load8(unsafe.Add(o, 32))
	c10, c11 := load8(o1), load8(unsafe.Add(o1, 32))
	c20, c21 := load8(o2), load8(unsafe.Add(o2, 32))
	c30, c31 := load8(o3), load8(unsafe.Add(o3, 32))
	a1, a2, a3 := unsafe.Add(a, ra), unsafe.Add(a, 2*ra), unsafe.Add(a, 3*ra)
	for range nt {
		b0, b1 := load8(b), load8(unsafe.Add(b, 32))
		x := bcast(a)
		c00, c01 = b0.MulAdd(x, c00), b1.MulAdd(x, c01)
		x = bcast(a1)
		c10, c11 = b0.MulAdd(x, c10), b1.MulAdd(x, c11)
		x = bcast(a2)
		c20, c21 = b0.MulAdd(x, c20), b1.MulAdd(x, c21)
		x = bcast(a3)
		c30, c31 = b0.MulAdd(x, c30), b1.MulAdd(x, c31)
		a, a1, a2, a3 = unsafe.Add(a, sa), unsafe.Add(a1, sa), unsafe.Add(a2, sa), unsafe.Add(a3, sa)
		b = unsafe.Add(b, sb)
	}
	c00.Store((*[8]float32)(o))
	c01.Store((*[8]float32)(unsafe.Add(o, 32)))
	c10.Store((*[8]float32)(o1))
	c11.Store((*[8]float32)(unsafe.Add(o1, 32)))
	c20.Store((*[8]float32)(o2))
	c21.Store((*[8]float32)(unsafe.Add(o2, 32)))
	c30.Store((*[8]float32)(o3))
	c31.Store((*[8]float32)(unsafe.Add(o3, 32)))
}

// kernel1x8 updates 8 elements of one row of out.
func kernel1x8(o unsafe.Pointer, a unsafe.Pointer, aT int, b unsafe.Pointer, ldb, nt int) {
	sa, sb := 4*aT, 4*ldb
	c := load8(o)
	for range nt {
		c = load8(b).MulAdd(bcast(a), c)
		a, b = unsafe.Add(a, sa), unsafe.Add(b, sb)
	}
	c.Store((*[8]float32)(o))
}

// kernel1xPart updates the last len(row) < 8 elements of one row of out;
// b starts at the same column.
func kernel1xPart(row []float32, a unsafe.Pointer, aT int, b []float32, ldb, nt int) {
	sa := 4 * aT
	c := archsimd.LoadFloat32x8SlicePart(row)
	for t := range nt {
		c = archsimd.LoadFloat32x8SlicePart(b[t*ldb:t*ldb+len(row)]).MulAdd(bcast(a), c)
		a = unsafe.Add(a, sa)
	}
	c.StoreSlicePart(row)
}

// dotSIMD sums a[i]·b[i] in eight lanes (lane l takes i ≡ l mod 8, the tail
// zero-padded), then adds the lanes in order.
func dotSIMD(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var acc archsimd.Float32x8
	i := 0
	if n >= 8 {
		ap, bp := unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0])
		for ; i+8 <= n; i += 8 {
			acc = load8(unsafe.Add(ap, 4*i)).MulAdd(load8(unsafe.Add(bp, 4*i)), acc)
		}
	}
	if i < n {
		acc = archsimd.LoadFloat32x8SlicePart(a[i:]).MulAdd(archsimd.LoadFloat32x8SlicePart(b[i:]), acc)
	}
	var lanes [8]float32
	acc.Store(&lanes)
	return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

// addScaledSIMD sets y += s·x with one fused multiply-add per element.
func addScaledSIMD(y []float32, s float32, x []float32) {
	n := len(y)
	x = x[:n]
	sv := archsimd.BroadcastFloat32x8(s)
	i := 0
	if n >= 8 {
		yp, xp := unsafe.Pointer(&y[0]), unsafe.Pointer(&x[0])
		for ; i+8 <= n; i += 8 {
			p := (*[8]float32)(unsafe.Add(yp, 4*i))
			load8(unsafe.Add(xp, 4*i)).MulAdd(sv, archsimd.LoadFloat32x8(p)).Store(p)
		}
	}
	if i < n {
		archsimd.LoadFloat32x8SlicePart(x[i:]).MulAdd(sv, archsimd.LoadFloat32x8SlicePart(y[i:])).StoreSlicePart(y[i:])
	}
}

// exp8 is e^x lane by lane, to about 2 ulp: x = n·ln2 + r with |r| ≤ ln2/2,
// e^r by Cephes' expf polynomial, 2^n put into the exponent bits. x is clamped
// to [−87.3, 88.3], where e^x is a normal float32.
func exp8(x archsimd.Float32x8) archsimd.Float32x8 {
	x = x.Max(archsimd.BroadcastFloat32x8(-87.3)).Min(archsimd.BroadcastFloat32x8(88.3))
	n := x.Mul(archsimd.BroadcastFloat32x8(1.44269504088896341)).RoundToEven()
	r := n.MulAdd(archsimd.BroadcastFloat32x8(-0.693359375), x)
	r = n.MulAdd(archsimd.BroadcastFloat32x8(2.12194440e-4), r)
	p := archsimd.BroadcastFloat32x8(1.9875691500e-4)
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1.3981999507e-3))
	p = p.Mul(r).Add(archsimd.BroadcastFloat32x8(8.3334519073e-3))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(4.1665795894e-2))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1.6666665459e-1))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(5.0000001201e-1))
	p = p.MulAdd(r.Mul(r), r).Add(archsimd.BroadcastFloat32x8(1))
	pow2 := n.ConvertToInt32().Add(archsimd.BroadcastInt32x8(127)).ShiftAllLeft(23).AsFloat32x8()
	return p.Mul(pow2)
}

// softmaxSIMD is Softmax with exp8 on whole vectors (exp32 on the tail) and
// one multiplication by 1/Σ.
func softmaxSIMD(x []float32) {
	n, full := len(x), len(x)&^7
	maxv := x[0]
	if full > 0 {
		m := archsimd.LoadFloat32x8Slice(x)
		for i := 8; i < full; i += 8 {
			m = m.Max(archsimd.LoadFloat32x8Slice(x[i:]))
		}
		var lanes [8]float32
		m.Store(&lanes)
		for _, v := range lanes {
			maxv = max(maxv, v)
		}
	}
	for _, v := range x[full:] {
		maxv = max(maxv, v)
	}
	mv := archsimd.BroadcastFloat32x8(maxv)
	var sv archsimd.Float32x8
	for i := 0; i < full; i += 8 {
		e := exp8(archsimd.LoadFloat32x8Slice(x[i:]).Sub(mv))
		e.StoreSlice(x[i:])
		sv = sv.Add(e)
	}
	var lanes [8]float32
	sv.Store(&lanes)
	sum := ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
	for i := full; i < n; i++ {
		x[i] = exp32(x[i] - maxv)
		sum += x[i]
	}
	inv := archsimd.BroadcastFloat32x8(1 / sum)
	for i := 0; i < full; i += 8 {
		archsimd.LoadFloat32x8Slice(x[i:]).Mul(inv).StoreSlice(x[i:])
	}
	for i := full; i < n; i++ {
		x[i] *= 1 / sum
	}
}
