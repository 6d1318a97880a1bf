//go:build goexperiment.simd && amd64

package model

import (
	"simd/archsimd"
	"sync"
	"unsafe"
)

// The avx2 set's products of decoding. They must give the reference's bits
// (dot4's order: four lanes of float32 products, each rounded before it is
// added, combined as (lane0 + lane2) + (lane1 + lane3)). A 4-wide vector is
// exactly those four lanes, so each row's sum is one Float32x4, multiplied
// then added (never FMA, which would round once instead of twice).
//
// The model these run is small (rows of 64 or 256), so what costs is not the
// arithmetic but everything around it: bounds checks, spilled registers,
// combining lanes one float at a time, and reading the weights again for
// every token. The loops below read through pointers checked once per call,
// keep eight independent sums in flight, combine four rows' lanes with
// vector shuffles, and in the batched products read each weight row once
// for all the tokens, two tokens to a 256-bit vector.

func load4(p unsafe.Pointer) archsimd.Float32x4 {
	return archsimd.LoadFloat32x4((*[4]float32)(p))
}

// dup4 is [v, v]: one group of four weights for two tokens at once.
func dup4(v archsimd.Float32x4) archsimd.Float32x8 {
	return archsimd.Float32x8{}.SetLo(v).SetHi(v)
}

// finish4x4 combines four rows' lanes: lane r of the result is (a_r[0] +
// a_r[2]) + (a_r[1] + a_r[3]), dot4's order, each addition the same float32
// operation. The tails (columns past the last group of four) are added after.
func finish4x4(a0, a1, a2, a3 archsimd.Float32x4) archsimd.Float32x4 {
	s01 := a0.SelectFromPair(0, 1, 4, 5, a1).Add(a0.SelectFromPair(2, 3, 6, 7, a1)) // [a0₀+a0₂, a0₁+a0₃, a1₀+a1₂, a1₁+a1₃]
	s23 := a2.SelectFromPair(0, 1, 4, 5, a3).Add(a2.SelectFromPair(2, 3, 6, 7, a3))
	return s01.AddPairs(s23)
}

// finish4x4Pairs is finish4x4 on each 128-bit half: a_r holds row r of two
// tokens, one per half; the halves of the result are the two tokens' rows.
func finish4x4Pairs(a0, a1, a2, a3 archsimd.Float32x8) archsimd.Float32x8 {
	s01 := a0.SelectFromPairGrouped(0, 1, 4, 5, a1).Add(a0.SelectFromPairGrouped(2, 3, 6, 7, a1))
	s23 := a2.SelectFromPairGrouped(0, 1, 4, 5, a3).Add(a2.SelectFromPairGrouped(2, 3, 6, 7, a3))
	return s01.AddPairsGrouped(s23)
}

// addTail adds the products past the last full group of four to s, one by
// one, as dot4 does.
func addTail(s float32, wTail, xTail []float32) float32 {
	for i, v := range wTail {
		s += float32(v * xTail[i])
	}
	return s
}

// matVecSIMD: out[r] = dot4(w[r·stride:][:len(x)], x), eight rows at a time.
func matVecSIMD(out, w, x []float32, stride int) {
	rows, cols := len(out), len(x)
	if rows == 0 {
		return
	}
	if len(w) < (rows-1)*stride+cols {
		panic("model: MatVec: matrix shorter than its shape")
	}
	full := cols &^ 3
	if full > 0 {
		wp, xp, op := unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), unsafe.Pointer(&out[0])
		rs := 4 * stride // bytes from one row to the next
		r := 0
		for ; r+8 <= rows; r += 8 {
			dotRows8(unsafe.Add(op, 4*r), unsafe.Add(wp, r*rs), rs, xp, 4*full)
		}
		for ; r+4 <= rows; r += 4 {
			dotRows4(unsafe.Add(op, 4*r), unsafe.Add(wp, r*rs), rs, xp, 4*full)
		}
		for ; r < rows; r++ {
			out[r] = dotRow(unsafe.Add(wp, r*rs), xp, 4*full)
		}
	} else {
		clear(out)
	}
	if full < cols {
		for r := range out {
			out[r] = addTail(out[r], w[r*stride+full:r*stride+cols], x[full:])
		}
	}
}

// dotRows8 sets o[0…7] to the dot4 sums (without tails) of eight rows at w,
// rs bytes apart, with x, over the first n bytes (a multiple of 16).
func dotRows8(o, w unsafe.Pointer, rs int, x unsafe.Pointer, n int) {
	w1, w2, w3 := unsafe.Add(w, rs), unsafe.Add(w, 2*rs), unsafe.Add(w, 3*rs)
	w4, w5, w6, w7 := unsafe.Add(w, 4*rs), unsafe.Add(w, 5*rs), unsafe.Add(w, 6*rs), unsafe.Add(w, 7*rs)
	var a0, a1, a2, a3, a4, a5, a6, a7 archsimd.Float32x4
	for i := 0; i < n; i += 16 {
		xv := load4(unsafe.Add(x, i))
		a0 = a0.Add(load4(unsafe.Add(w, i)).Mul(xv))
		a1 = a1.Add(load4(unsafe.Add(w1, i)).Mul(xv))
		a2 = a2.Add(load4(unsafe.Add(w2, i)).Mul(xv))
		a3 = a3.Add(load4(unsafe.Add(w3, i)).Mul(xv))
		a4 = a4.Add(load4(unsafe.Add(w4, i)).Mul(xv))
		a5 = a5.Add(load4(unsafe.Add(w5, i)).Mul(xv))
		a6 = a6.Add(load4(unsafe.Add(w6, i)).Mul(xv))
		a7 = a7.Add(load4(unsafe.Add(w7, i)).Mul(xv))
	}
	finish4x4(a0, a1, a2, a3).Store((*[4]float32)(o))
	finish4x4(a4, a5, a6, a7).Store((*[4]float32)(unsafe.Add(o, 16)))
}

// dotRows4 is dotRows8 for four rows.
func dotRows4(o, w unsafe.Pointer, rs int, x unsafe.Pointer, n int) {
	w1, w2, w3 := unsafe.Add(w, rs), unsafe.Add(w, 2*rs), unsafe.Add(w, 3*rs)
	var a0, a1, a2, a3 archsimd.Float32x4
	for i := 0; i < n; i += 16 {
		xv := load4(unsafe.Add(x, i))
		a0 = a0.Add(load4(unsafe.Add(w, i)).Mul(xv))
		a1 = a1.Add(load4(unsafe.Add(w1, i)).Mul(xv))
		a2 = a2.Add(load4(unsafe.Add(w2, i)).Mul(xv))
		a3 = a3.Add(load4(unsafe.Add(w3, i)).Mul(xv))
	}
	finish4x4(a0, a1, a2, a3).Store((*[4]float32)(o))
}

// dotRow is one row's dot4 sum without its tail.
func dotRow(w, x unsafe.Pointer, n int) float32 {
	var a archsimd.Float32x4
	for i := 0; i < n; i += 16 {
		a = a.Add(load4(unsafe.Add(w, i)).Mul(load4(unsafe.Add(x, i))))
	}
	var l [4]float32
	a.Store(&l)
	return (l[0] + l[2]) + (l[1] + l[3])
}

// pairScratch holds matVecBatchSIMD's tokens, interleaved two by two.
var pairScratch = sync.Pool{New: func() any { return new([]float32) }}

// matVecBatchSIMD is matVecSIMD for n tokens, every weight row read once for
// all of them. The tokens go two to a 256-bit vector: their inputs are
// interleaved group by group ([x_a[4g:4g+4], x_b[4g:4g+4]]), and each group
// of four weights is duplicated into both halves, so one multiply and one
// add advance two tokens' dot4 lanes, each half exactly as matVecSIMD would.
func matVecBatchSIMD(out, w, x []float32, n int) {
	if n <= 0 {
		return
	}
	rows, cols := len(out)/n, len(x)/n
	if rows == 0 {
		return
	}
	if len(w) < rows*cols {
		panic("model: MatVecBatch: matrix shorter than its shape")
	}
	groups := cols / 4
	if n == 1 || groups == 0 {
		for t := range n {
			matVecSIMD(out[t*rows:(t+1)*rows], w, x[t*cols:(t+1)*cols], cols)
		}
		return
	}
	pairs := (n + 1) / 2
	sp := pairScratch.Get().(*[]float32)
	if cap(*sp) < pairs*8*groups {
		*sp = make([]float32, pairs*8*groups)
	}
	xi := (*sp)[:pairs*8*groups] // [pairs][groups][8]
	for p := range pairs {
		a := x[2*p*cols : 2*p*cols+4*groups]
		dst := xi[p*8*groups : (p+1)*8*groups]
		if 2*p+1 < n {
			b := x[(2*p+1)*cols : (2*p+1)*cols+4*groups]
			for g := range groups {
				copy(dst[8*g:8*g+4], a[4*g:4*g+4])
				copy(dst[8*g+4:8*g+8], b[4*g:4*g+4])
			}
		} else {
			for g := range groups {
				copy(dst[8*g:8*g+4], a[4*g:4*g+4])
				clear(dst[8*g+4 : 8*g+8])
			}
		}
	}
	wp, xp, op := unsafe.Pointer(&w[0]), unsafe.Pointer(&xi[0]), unsafe.Pointer(&out[0])
	rs, ts, ps := 4*cols, 4*rows, 32*groups // bytes per weight row, per token of out, per pair of xi
	r := 0
	for ; r+4 <= rows; r += 4 {
		wr, or := unsafe.Add(wp, r*rs), unsafe.Add(op, 4*r)
		p := 0
		for ; p+2 <= pairs; p += 2 {
			pairs2Rows4(unsafe.Add(or, 2*p*ts), ts, min(n-2*p, 4), wr, rs, unsafe.Add(xp, p*ps), unsafe.Add(xp, (p+1)*ps), groups)
		}
		if p < pairs {
			if r+8 <= rows && p == 0 {
				// Only one pair (two tokens, a k = 1 verify): eight rows
				// at a time, for eight sums in flight.
				pairs1Rows8(or, ts, n, wr, rs, xp, groups)
				r += 4
				continue
			}
			pairs1Rows4(unsafe.Add(or, 2*p*ts), ts, n-2*p, wr, rs, unsafe.Add(xp, p*ps), groups)
		}
	}
	pairScratch.Put(sp)
	if r < rows {
		for t := range n {
			matVecSIMD(out[t*rows+r:(t+1)*rows], w[r*cols:], x[t*cols:(t+1)*cols], cols)
		}
	}
	if full := 4 * groups; full < cols {
		for t := range n {
			xt := x[t*cols+full : (t+1)*cols]
			for q := range r {
				out[t*rows+q] = addTail(out[t*rows+q], w[q*cols+full:(q+1)*cols], xt)
			}
		}
	}
}

// pairs2Rows4 sets four rows (weights at w, rs bytes apart) for the tokens of
// two interleaved pairs (at xa and xb): token t's rows go to o + t·ts, for
// the first nt (3 or 4) tokens. Sums are without their tails.
func pairs2Rows4(o unsafe.Pointer, ts, nt int, w unsafe.Pointer, rs int, xa, xb unsafe.Pointer, groups int) {
	w1, w2, w3 := unsafe.Add(w, rs), unsafe.Add(w, 2*rs), unsafe.Add(w, 3*rs)
	var a0, a1, a2, a3, b0, b1, b2, b3 archsimd.Float32x8
	g := 0
	for ; g+2 <= groups; g += 2 {
		wo, xo := 16*g, 32*g
		xa0, xb0 := load8(unsafe.Add(xa, xo)), load8(unsafe.Add(xb, xo))
		xa1, xb1 := load8(unsafe.Add(xa, xo+32)), load8(unsafe.Add(xb, xo+32))
		v := load8(unsafe.Add(w, wo)) // groups g and g+1 of the row
		d := v.Select128FromPair(0, 0, v)
		a0, b0 = a0.Add(d.Mul(xa0)), b0.Add(d.Mul(xb0))
		d = v.Select128FromPair(1, 1, v)
		a0, b0 = a0.Add(d.Mul(xa1)), b0.Add(d.Mul(xb1))
		v = load8(unsafe.Add(w1, wo))
		d = v.Select128FromPair(0, 0, v)
		a1, b1 = a1.Add(d.Mul(xa0)), b1.Add(d.Mul(xb0))
		d = v.Select128FromPair(1, 1, v)
		a1, b1 = a1.Add(d.Mul(xa1)), b1.Add(d.Mul(xb1))
		v = load8(unsafe.Add(w2, wo))
		d = v.Select128FromPair(0, 0, v)
		a2, b2 = a2.Add(d.Mul(xa0)), b2.Add(d.Mul(xb0))
		d = v.Select128FromPair(1, 1, v)
		a2, b2 = a2.Add(d.Mul(xa1)), b2.Add(d.Mul(xb1))
		v = load8(unsafe.Add(w3, wo))
		d = v.Select128FromPair(0, 0, v)
		a3, b3 = a3.Add(d.Mul(xa0)), b3.Add(d.Mul(xb0))
		d = v.Select128FromPair(1, 1, v)
		a3, b3 = a3.Add(d.Mul(xa1)), b3.Add(d.Mul(xb1))
	}
	if g < groups {
		wo, xo := 16*g, 32*g
		xa0, xb0 := load8(unsafe.Add(xa, xo)), load8(unsafe.Add(xb, xo))
		d := dup4(load4(unsafe.Add(w, wo)))
		a0, b0 = a0.Add(d.Mul(xa0)), b0.Add(d.Mul(xb0))
		d = dup4(load4(unsafe.Add(w1, wo)))
		a1, b1 = a1.Add(d.Mul(xa0)), b1.Add(d.Mul(xb0))
		d = dup4(load4(unsafe.Add(w2, wo)))
		a2, b2 = a2.Add(d.Mul(xa0)), b2.Add(d.Mul(xb0))
		d = dup4(load4(unsafe.Add(w3, wo)))
		a3, b3 = a3.Add(d.Mul(xa0)), b3.Add(d.Mul(xb0))
	}
	sa, sb := finish4x4Pairs(a0, a1, a2, a3), finish4x4Pairs(b0, b1, b2, b3)
	sa.GetLo().Store((*[4]float32)(o))
	sa.GetHi().Store((*[4]float32)(unsafe.Add(o, ts)))
	sb.GetLo().Store((*[4]float32)(unsafe.Add(o, 2*ts)))
	if nt > 3 {
		sb.GetHi().Store((*[4]float32)(unsafe.Add(o, 3*ts)))
	}
}

// pairs1Rows8 is pairs1Rows4 for eight rows.
func pairs1Rows8(o unsafe.Pointer, ts, nt int, w unsafe.Pointer, rs int, xa unsafe.Pointer, groups int) {
	w1, w2, w3 := unsafe.Add(w, rs), unsafe.Add(w, 2*rs), unsafe.Add(w, 3*rs)
	w4, w5, w6, w7 := unsafe.Add(w, 4*rs), unsafe.Add(w, 5*rs), unsafe.Add(w, 6*rs), unsafe.Add(w, 7*rs)
	var a0, a1, a2, a3, a4, a5, a6, a7 archsimd.Float32x8
	g := 0
	for ; g+2 <= groups; g += 2 {
		wo, xo := 16*g, 32*g
		x0, x1 := load8(unsafe.Add(xa, xo)), load8(unsafe.Add(xa, xo+32))
		v := load8(unsafe.Add(w, wo))
		a0 = a0.Add(v.Select128FromPair(0, 0, v).Mul(x0)).Add(v.Select128FromPair(1, 1, v).Mul(x1))
		v = load8(unsafe.Add(w1, wo))
		a1 = a1.Add(v.Select128FromPair(0, 0, v).Mul(x0)).Add(v.Select128FromPair(1, 1, v).Mul(x1))
		v = load8(unsafe.Add(w2, wo))
		a2 = a2.Add(v.Select128FromPair(0, 0, v).Mul(x0)).Add(v.Select128FromPair(1, 1, v).Mul(x1))
		v = load8(unsafe.Add(w3, wo))
		a3 = a3.Add(v.Select128FromPair(0, 0, v).Mul(x0)).Add(v.Select128FromPair(1, 1, v).Mul(x1))
		v = load8(unsafe.Add(w4, wo))
		a4 = a4.Add(v.Select128FromPair(0, 0, v).Mul(x0)).Add(v.Select128FromPair(1, 1, v).Mul(x1))
		v = load8(unsafe.Add(w5, wo))
		a5 = a5.Add(v.Select128FromPair(0, 0, v).Mul(x0)).Add(v.Select128FromPair(1, 1, v).Mul(x1))
		v = load8(unsafe.Add(w6, wo))
		a6 = a6.Add(v.Select128FromPair(0, 0, v).Mul(x0)).Add(v.Select128FromPair(1, 1, v).Mul(x1))
		v = load8(unsafe.Add(w7, wo))
		a7 = a7.Add(v.Select128FromPair(0, 0, v).Mul(x0)).Add(v.Select128FromPair(1, 1, v).Mul(x1))
	}
	if g < groups {
		wo, xo := 16*g, 32*g
		x0 := load8(unsafe.Add(xa, xo))
		a0 = a0.Add(dup4(load4(unsafe.Add(w, wo))).Mul(x0))
		a1 = a1.Add(dup4(load4(unsafe.Add(w1, wo))).Mul(x0))
		a2 = a2.Add(dup4(load4(unsafe.Add(w2, wo))).Mul(x0))
		a3 = a3.Add(dup4(load4(unsafe.Add(w3, wo))).Mul(x0))
		a4 = a4.Add(dup4(load4(unsafe.Add(w4, wo))).Mul(x0))
		a5 = a5.Add(dup4(load4(unsafe.Add(w5, wo))).Mul(x0))
		a6 = a6.Add(dup4(load4(unsafe.Add(w6, wo))).Mul(x0))
		a7 = a7.Add(dup4(load4(unsafe.Add(w7, wo))).Mul(x0))
	}
	s, s2 := finish4x4Pairs(a0, a1, a2, a3), finish4x4Pairs(a4, a5, a6, a7)
	s.GetLo().Store((*[4]float32)(o))
	s2.GetLo().Store((*[4]float32)(unsafe.Add(o, 16)))
	if nt > 1 {
		s.GetHi().Store((*[4]float32)(unsafe.Add(o, ts)))
		s2.GetHi().Store((*[4]float32)(unsafe.Add(o, ts+16)))
	}
}

// pairs1Rows4 is pairs2Rows4 for one pair (nt = 1 or 2 tokens).
func pairs1Rows4(o unsafe.Pointer, ts, nt int, w unsafe.Pointer, rs int, xa unsafe.Pointer, groups int) {
	w1, w2, w3 := unsafe.Add(w, rs), unsafe.Add(w, 2*rs), unsafe.Add(w, 3*rs)
	var a0, a1, a2, a3 archsimd.Float32x8
	g := 0
	for ; g+2 <= groups; g += 2 {
		wo, xo := 16*g, 32*g
		x0, x1 := load8(unsafe.Add(xa, xo)), load8(unsafe.Add(xa, xo+32))
		v0, v1, v2, v3 := load8(unsafe.Add(w, wo)), load8(unsafe.Add(w1, wo)), load8(unsafe.Add(w2, wo)), load8(unsafe.Add(w3, wo))
		a0 = a0.Add(v0.Select128FromPair(0, 0, v0).Mul(x0))
		a1 = a1.Add(v1.Select128FromPair(0, 0, v1).Mul(x0))
		a2 = a2.Add(v2.Select128FromPair(0, 0, v2).Mul(x0))
		a3 = a3.Add(v3.Select128FromPair(0, 0, v3).Mul(x0))
		a0 = a0.Add(v0.Select128FromPair(1, 1, v0).Mul(x1))
		a1 = a1.Add(v1.Select128FromPair(1, 1, v1).Mul(x1))
		a2 = a2.Add(v2.Select128FromPair(1, 1, v2).Mul(x1))
		a3 = a3.Add(v3.Select128FromPair(1, 1, v3).Mul(x1))
	}
	if g < groups {
		wo, xo := 16*g, 32*g
		x0 := load8(unsafe.Add(xa, xo))
		a0 = a0.Add(dup4(load4(unsafe.Add(w, wo))).Mul(x0))
		a1 = a1.Add(dup4(load4(unsafe.Add(w1, wo))).Mul(x0))
		a2 = a2.Add(dup4(load4(unsafe.Add(w2, wo))).Mul(x0))
		a3 = a3.Add(dup4(load4(unsafe.Add(w3, wo))).Mul(x0))
	}
	s := finish4x4Pairs(a0, a1, a2, a3)
	s.GetLo().Store((*[4]float32)(o))
	if nt > 1 {
		s.GetHi().Store((*[4]float32)(unsafe.Add(o, ts)))
	}
}

// matTVecSIMD: out[i] = Σ_j x[j]·w[j·stride+i] in increasing j. Every
// element is its own sum, so eight go in a vector, and a block of up to 64
// columns stays in registers while j runs.
func matTVecSIMD(out, w, x []float32, stride int) {
	n := len(out)
	if len(x) == 0 || n == 0 {
		clear(out)
		return
	}
	if len(w) < (len(x)-1)*stride+n {
		panic("model: MatTVec: matrix shorter than its shape")
	}
	tvecColumns(unsafe.Pointer(&out[0]), unsafe.Pointer(&w[0]), 4*stride, x, n&^7)
	if full := n &^ 7; full < n {
		for i := full; i < n; i++ {
			var s float32
			for j, xj := range x {
				s += float32(xj * w[j*stride+i])
			}
			out[i] = s
		}
	}
}

// tvecColumns sets the first n (a multiple of 8) columns of out = Wᵀ·x, W's
// rows rs bytes apart.
func tvecColumns(o, w unsafe.Pointer, rs int, x []float32, n int) {
	i := 0
	for ; i+64 <= n; i += 64 {
		var c0, c1, c2, c3, c4, c5, c6, c7 archsimd.Float32x8
		row := unsafe.Add(w, 4*i)
		for _, xj := range x {
			xv := archsimd.BroadcastFloat32x8(xj)
			c0 = c0.Add(load8(row).Mul(xv))
			c1 = c1.Add(load8(unsafe.Add(row, 32)).Mul(xv))
			c2 = c2.Add(load8(unsafe.Add(row, 64)).Mul(xv))
			c3 = c3.Add(load8(unsafe.Add(row, 96)).Mul(xv))
			c4 = c4.Add(load8(unsafe.Add(row, 128)).Mul(xv))
			c5 = c5.Add(load8(unsafe.Add(row, 160)).Mul(xv))
			c6 = c6.Add(load8(unsafe.Add(row, 192)).Mul(xv))
			c7 = c7.Add(load8(unsafe.Add(row, 224)).Mul(xv))
			row = unsafe.Add(row, rs)
		}
		oi := unsafe.Add(o, 4*i)
		c0.Store((*[8]float32)(oi))
		c1.Store((*[8]float32)(unsafe.Add(oi, 32)))
		c2.Store((*[8]float32)(unsafe.Add(oi, 64)))
		c3.Store((*[8]float32)(unsafe.Add(oi, 96)))
		c4.Store((*[8]float32)(unsafe.Add(oi, 128)))
		c5.Store((*[8]float32)(unsafe.Add(oi, 160)))
		c6.Store((*[8]float32)(unsafe.Add(oi, 192)))
		c7.Store((*[8]float32)(unsafe.Add(oi, 224)))
	}
	for ; i+16 <= n; i += 16 {
		var c0, c1 archsimd.Float32x8
		row := unsafe.Add(w, 4*i)
		for _, xj := range x {
			xv := archsimd.BroadcastFloat32x8(xj)
			c0 = c0.Add(load8(row).Mul(xv))
			c1 = c1.Add(load8(unsafe.Add(row, 32)).Mul(xv))
			row = unsafe.Add(row, rs)
		}
		c0.Store((*[8]float32)(unsafe.Add(o, 4*i)))
		c1.Store((*[8]float32)(unsafe.Add(o, 4*i+32)))
	}
	for ; i < n; i += 8 {
		var c archsimd.Float32x8
		row := unsafe.Add(w, 4*i)
		for _, xj := range x {
			c = c.Add(load8(row).Mul(archsimd.BroadcastFloat32x8(xj)))
			row = unsafe.Add(row, rs)
		}
		c.Store((*[8]float32)(unsafe.Add(o, 4*i)))
	}
}

// matTVecBatchSIMD is matTVecSIMD for n tokens, four at a time: each 16
// columns of a weight row are loaded once for the four tokens' sums.
func matTVecBatchSIMD(out, w, x []float32, n int) {
	if n <= 0 {
		return
	}
	cols, k := len(out)/n, len(x)/n
	if k == 0 || cols == 0 {
		clear(out)
		return
	}
	if len(w) < k*cols {
		panic("model: MatTVecBatch: matrix shorter than its shape")
	}
	t := 0
	if block := cols &^ 15; block > 0 {
		wp, op := unsafe.Pointer(&w[0]), unsafe.Pointer(&out[0])
		for ; t+4 <= n; t += 4 {
			x0, x1, x2, x3 := x[t*k:(t+1)*k], x[(t+1)*k : (t+2)*k][:k], x[(t+2)*k : (t+3)*k][:k], x[(t+3)*k : (t+4)*k][:k]
			for i := 0; i < block; i += 16 {
				var a0, a1, b0, b1, c0, c1, d0, d1 archsimd.Float32x8
				row := unsafe.Add(wp, 4*i)
				for j, xj := range x0 {
					v0, v1 := load8(row), load8(unsafe.Add(row, 32))
					s := archsimd.BroadcastFloat32x8(xj)
					a0, a1 = a0.Add(v0.Mul(s)), a1.Add(v1.Mul(s))
					s = archsimd.BroadcastFloat32x8(x1[j])
					b0, b1 = b0.Add(v0.Mul(s)), b1.Add(v1.Mul(s))
					s = archsimd.BroadcastFloat32x8(x2[j])
					c0, c1 = c0.Add(v0.Mul(s)), c1.Add(v1.Mul(s))
					s = archsimd.BroadcastFloat32x8(x3[j])
					d0, d1 = d0.Add(v0.Mul(s)), d1.Add(v1.Mul(s))
					row = unsafe.Add(row, 4*cols)
				}
				o := unsafe.Add(op, 4*(t*cols+i))
				a0.Store((*[8]float32)(o))
				a1.Store((*[8]float32)(unsafe.Add(o, 32)))
				o = unsafe.Add(o, 4*cols)
				b0.Store((*[8]float32)(o))
				b1.Store((*[8]float32)(unsafe.Add(o, 32)))
				o = unsafe.Add(o, 4*cols)
				c0.Store((*[8]float32)(o))
				c1.Store((*[8]float32)(unsafe.Add(o, 32)))
				o = unsafe.Add(o, 4*cols)
				d0.Store((*[8]float32)(o))
				d1.Store((*[8]float32)(unsafe.Add(o, 32)))
			}
			if block < cols { // the last columns, token by token
				for q := t; q < t+4; q++ {
					matTVecTail(out[q*cols:(q+1)*cols], w, x[q*k:(q+1)*k], cols, block)
				}
			}
		}
	}
	for ; t < n; t++ {
		matTVecSIMD(out[t*cols:(t+1)*cols], w, x[t*k:(t+1)*k], cols)
	}
}

// matTVecTail sets out[i] for from ≤ i < len(out) as matTVecSIMD would.
func matTVecTail(out, w, x []float32, stride, from int) {
	n := len(out)
	if full := n &^ 7; full > from {
		tvecColumns(unsafe.Pointer(&out[from]), unsafe.Pointer(&w[from]), 4*stride, x, full-from)
		from = full
	}
	for i := from; i < n; i++ {
		var s float32
		for j, xj := range x {
			s += float32(xj * w[j*stride+i])
		}
		out[i] = s
	}
}

// swiGLUSIMD is swiGLUGo eight elements at a time: exp32's steps, each the
// same rounded float32 operation (multiply, then add: no fused
// multiply-add), so the bits are the reference's.
func swiGLUSIMD(out, gate, up []float32) {
	n := len(gate)
	up, out = up[:n], out[:n]
	full := n &^ 7
	one := archsimd.BroadcastFloat32x8(1)
	for i := 0; i < full; i += 8 {
		g := archsimd.LoadFloat32x8((*[8]float32)(gate[i : i+8]))
		u := archsimd.LoadFloat32x8((*[8]float32)(up[i : i+8]))
		e := exp32x8(g.Mul(archsimd.BroadcastFloat32x8(-1)))
		g.Div(one.Add(e)).Mul(u).Store((*[8]float32)(out[i : i+8]))
	}
	for j := full; j < n; j++ {
		g := gate[j]
		out[j] = g / (1 + exp32(-g)) * up[j]
	}
}

// exp32x8 is exp32 lane by lane, the same operations in the same order (not
// exp8, which fuses multiply-adds).
func exp32x8(x archsimd.Float32x8) archsimd.Float32x8 {
	keep := x.GreaterEqual(archsimd.BroadcastFloat32x8(-87.3)) // exp32 gives 0 below (a NaN lane gives 0 too, and SwiGLU still NaN)
	x = x.Min(archsimd.BroadcastFloat32x8(88.3)).Max(archsimd.BroadcastFloat32x8(-87.3))
	n := x.Mul(archsimd.BroadcastFloat32x8(1.44269504088896341)).RoundToEven()
	r := x.Sub(n.Mul(archsimd.BroadcastFloat32x8(0.693359375)))
	r = r.Sub(n.Mul(archsimd.BroadcastFloat32x8(-2.12194440e-4)))
	p := archsimd.BroadcastFloat32x8(1.9875691500e-4)
	p = p.Mul(r).Add(archsimd.BroadcastFloat32x8(1.3981999507e-3))
	p = p.Mul(r).Add(archsimd.BroadcastFloat32x8(8.3334519073e-3))
	p = p.Mul(r).Add(archsimd.BroadcastFloat32x8(4.1665795894e-2))
	p = p.Mul(r).Add(archsimd.BroadcastFloat32x8(1.6666665459e-1))
	p = p.Mul(r).Add(archsimd.BroadcastFloat32x8(5.0000001201e-1))
	y := p.Mul(r.Mul(r)).Add(r).Add(archsimd.BroadcastFloat32x8(1))
	pow2 := n.ConvertToInt32().Add(archsimd.BroadcastInt32x8(127)).ShiftAllLeft(23).AsFloat32x8()
	return y.Mul(pow2).Masked(keep)
}
