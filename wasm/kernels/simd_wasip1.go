//go:build wasip1

package kernels

import (
	"math"
	"unsafe"

	"github.com/matedge/matedge/model"
)

// The "simd" kernel set: model.GoKernels with the products of decoding, the
// softmax, the SwiGLU and the glue of a decode step and of ForwardMany
// (RMSNorm, Rope and Add over one row or many, Scale, Argmax, Attention) done
// by kernels.wasm through the host. It is registered, and preferred, when the
// host linked the companion module (the "version" import says so).

//go:wasmimport kernels version
func version() int32

//go:wasmimport kernels matvec
func matvec(out, w, x unsafe.Pointer, rows, cols, stride int32)

//go:wasmimport kernels matvec_t
func matvecT(out, w, x unsafe.Pointer, n, k, stride int32)

//go:wasmimport kernels matmul
func matmul(out, w, x unsafe.Pointer, tokens, rows, cols int32)

//go:wasmimport kernels matmul_t
func matmulT(out, w, x unsafe.Pointer, tokens, n, k int32)

//go:wasmimport kernels softmax
func softmax(x unsafe.Pointer, n int32)

//go:wasmimport kernels swiglu
func swiglu(out, gate, up unsafe.Pointer, n int32)

//go:wasmimport kernels rmsnorm
func rmsnorm(out, x, gain unsafe.Pointer, n, d int32, eps uint32)

//go:wasmimport kernels rope
func rope(x, cos, sin unsafe.Pointer, n, d, headDim int32)

//go:wasmimport kernels add
func add(x, y unsafe.Pointer, n int32)

//go:wasmimport kernels scale
func scale(x unsafe.Pointer, n int32, s uint32)

//go:wasmimport kernels argmax
func argmax(out, x unsafe.Pointer, n int32)

//go:wasmimport kernels attention
func attention(out, att, q, keys, values unsafe.Pointer, heads, n, attStride, stride, hd int32, s uint32)

func init() {
	if version() != Version {
		return
	}
	set := model.GoKernels
	set.Name = "simd"
	set.MatVec, set.MatTVec = matVec, matTVec
	set.MatVecBatch, set.MatTVecBatch = matVecBatch, matTVecBatch
	set.Softmax, set.SwiGLU = softmaxSIMD, swiGLU
	set.RMSNorm, set.Add, set.Scale, set.Rope, set.Argmax = rmsNorm, addSIMD, scaleSIMD, ropeSIMD, argmaxSIMD
	set.Attention = attentionSIMD
	model.RegisterKernels(set, true)
}

// Each wrapper checks the shapes against the slices (the kernel reads memory
// directly, so a short slice would read past it silently) and passes the
// addresses of the first elements.

func matVec(out, w, x []float32, stride int) {
	rows, cols := len(out), len(x)
	if rows == 0 {
		return
	}
	if cols == 0 {
		clear(out)
		return
	}
	if stride < cols || len(w) < (rows-1)*stride+cols {
		panic("kernels: MatVec: matrix shorter than its shape")
	}
	matvec(unsafe.Pointer(&out[0]), unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), int32(rows), int32(cols), int32(stride))
}

func matTVec(out, w, x []float32, stride int) {
	n, k := len(out), len(x)
	if n == 0 {
		return
	}
	if k == 0 {
		clear(out)
		return
	}
	if stride < n || len(w) < (k-1)*stride+n {
		panic("kernels: MatTVec: matrix shorter than its shape")
	}
	matvecT(unsafe.Pointer(&out[0]), unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), int32(n), int32(k), int32(stride))
}

func matVecBatch(out, w, x []float32, n int) {
	if n <= 0 || len(out) == 0 {
		return
	}
	rows, cols := len(out)/n, len(x)/n
	if cols == 0 {
		clear(out)
		return
	}
	if len(out) != n*rows || len(x) != n*cols || len(w) < rows*cols {
		panic("kernels: MatVecBatch: slices do not match the shape")
	}
	matmul(unsafe.Pointer(&out[0]), unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), int32(n), int32(rows), int32(cols))
}

func matTVecBatch(out, w, x []float32, n int) {
	if n <= 0 || len(out) == 0 {
		return
	}
	cols, k := len(out)/n, len(x)/n
	if k == 0 {
		clear(out)
		return
	}
	if len(out) != n*cols || len(x) != n*k || len(w) < k*cols {
		panic("kernels: MatTVecBatch: slices do not match the shape")
	}
	matmulT(unsafe.Pointer(&out[0]), unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), int32(n), int32(cols), int32(k))
}

func softmaxSIMD(x []float32) {
	if len(x) == 0 {
		return
	}
	softmax(unsafe.Pointer(&x[0]), int32(len(x)))
}

func swiGLU(out, gate, up []float32) {
	n := len(gate)
	if n == 0 {
		return
	}
	if len(out) < n || len(up) < n {
		panic("kernels: SwiGLU: out or up shorter than gate")
	}
	swiglu(unsafe.Pointer(&out[0]), unsafe.Pointer(&gate[0]), unsafe.Pointer(&up[0]), int32(n))
}

func rmsNorm(out, x, gain []float32, eps float32) {
	d := len(gain)
	if d == 0 || len(x) < d {
		return
	}
	n := len(x) / d
	if len(out) < n*d {
		panic("kernels: RMSNorm: out shorter than x")
	}
	rmsnorm(unsafe.Pointer(&out[0]), unsafe.Pointer(&x[0]), unsafe.Pointer(&gain[0]), int32(n), int32(d), math.Float32bits(eps))
}

func addSIMD(x, y []float32) {
	n := len(x)
	if n == 0 {
		return
	}
	if len(y) < n {
		panic("kernels: Add: y shorter than x")
	}
	add(unsafe.Pointer(&x[0]), unsafe.Pointer(&y[0]), int32(n))
}

func scaleSIMD(x []float32, s float32) {
	if len(x) == 0 {
		return
	}
	scale(unsafe.Pointer(&x[0]), int32(len(x)), math.Float32bits(s))
}

func ropeSIMD(x, cos, sin []float32, headDim int) {
	half := headDim / 2
	if half == 0 || len(cos) < half || len(x) == 0 {
		return
	}
	n := len(cos) / half
	d := len(x) / n
	if len(sin) < n*half || d == 0 || d%headDim != 0 {
		panic("kernels: Rope: x, cos and sin do not match the shape")
	}
	rope(unsafe.Pointer(&x[0]), unsafe.Pointer(&cos[0]), unsafe.Pointer(&sin[0]), int32(n), int32(d), int32(headDim))
}

// argmaxOut receives argmax's answer: a package variable, so that no call
// allocates (the module runs on one thread).
var argmaxOut int32

func argmaxSIMD(x []float32) int {
	if len(x) == 0 {
		return 0
	}
	argmax(unsafe.Pointer(&argmaxOut), unsafe.Pointer(&x[0]), int32(len(x)))
	return int(argmaxOut)
}

func attentionSIMD(out, att, q, keys, values []float32, heads, n, attStride, stride int) {
	if heads <= 0 || n <= 0 || len(q) < heads {
		panic("kernels: Attention: no heads or no positions")
	}
	hd := len(q) / heads
	last := (n-1)*stride + heads*hd // elements of keys and values read
	if len(out) < heads*hd || attStride < n || len(att) < (heads-1)*attStride+n || stride < heads*hd || len(keys) < last || len(values) < last {
		panic("kernels: Attention: slices shorter than the shape")
	}
	s := 1 / float32(math.Sqrt(float64(float32(hd))))
	attention(unsafe.Pointer(&out[0]), unsafe.Pointer(&att[0]), unsafe.Pointer(&q[0]), unsafe.Pointer(&keys[0]), unsafe.Pointer(&values[0]),
		int32(heads), int32(n), int32(attStride), int32(stride), int32(hd), math.Float32bits(s))
}
