package model

// The plain-Go reference versions of the products of decoding (see Kernels).
// Vector units sum a dot product in several lanes at once; so that a vector
// version can give the very same bits, the reference sums in the order of a
// four-lane vector unit, dot4. The conversions float32(a*b) round each
// product before it is added: Go may otherwise fuse a multiply and an add
// on some machines, and a wasm SIMD128 unit has no fused multiply-add.

// dot4 is Σ a[i]·b[i] over len(a) (len(b) ≥ len(a)) in four lanes: lane l
// sums the products i ≡ l (mod 4), i < len(a)&^3, in increasing i from 0;
// the lanes are combined as (lane0 + lane2) + (lane1 + lane3), and the last
// len(a) mod 4 products are added one by one.
func dot4(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		a4, b4 := (*[4]float32)(a[i:i+4]), (*[4]float32)(b[i:i+4]) // one bounds check each
		s0 += float32(a4[0] * b4[0])
		s1 += float32(a4[1] * b4[1])
		s2 += float32(a4[2] * b4[2])
		s3 += float32(a4[3] * b4[3])
	}
	s := (s0 + s2) + (s1 + s3)
	for ; i < n; i++ {
		s += float32(a[i] * b[i])
	}
	return s
}

// sum4 is Σ x[i] in the order of dot4: four lanes, combined as (lane0 +
// lane2) + (lane1 + lane3), then the last len(x) mod 4 one by one.
func sum4(x []float32) float32 {
	n := len(x)
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		x4 := (*[4]float32)(x[i : i+4])
		s0 += x4[0]
		s1 += x4[1]
		s2 += x4[2]
		s3 += x4[3]
	}
	s := (s0 + s2) + (s1 + s3)
	for ; i < n; i++ {
		s += x[i]
	}
	return s
}

// matVecGo sets out[r] = dot4(w[r·stride:][:len(x)], x).
func matVecGo(out, w, x []float32, stride int) {
	cols := len(x)
	if len(out) > 0 && len(w) < (len(out)-1)*stride+cols {
		panic("model: MatVec: matrix shorter than its shape")
	}
	for r := range out {
		out[r] = dot4(w[r*stride:r*stride+cols], x)
	}
}

// matTVecGo sets out[i] = Σ_j x[j]·w[j·stride+i], summed over j in order from 0.
func matTVecGo(out, w, x []float32, stride int) {
	n := len(out)
	if len(x) > 0 && len(w) < (len(x)-1)*stride+n {
		panic("model: MatTVec: matrix shorter than its shape")
	}
	clear(out)
	for j, xj := range x {
		row := w[j*stride : j*stride+n]
		for i, v := range row {
			out[i] += float32(xj * v)
		}
	}
}

// matVecBatchGo is matVecGo for each of n tokens: out [n][rows], x [n][cols].
func matVecBatchGo(out, w, x []float32, n int) {
	if n <= 0 {
		return
	}
	rows, cols := len(out)/n, len(x)/n
	for t := range n {
		matVecGo(out[t*rows:(t+1)*rows], w, x[t*cols:(t+1)*cols], cols)
	}
}

// matTVecBatchGo is matTVecGo for each of n tokens: out [n][cols], x [n][k].
func matTVecBatchGo(out, w, x []float32, n int) { eachToken(matTVecGo, out, w, x, n) }

// eachToken runs a MatTVec for each of n tokens in turn: out [n][cols],
// x [n][k], W [k][cols].
func eachToken(matTVec func(out, w, x []float32, stride int), out, w, x []float32, n int) {
	if n <= 0 {
		return
	}
	cols, k := len(out)/n, len(x)/n
	for t := range n {
		matTVec(out[t*cols:(t+1)*cols], w, x[t*k:(t+1)*k], cols)
	}
}
