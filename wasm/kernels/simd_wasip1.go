//go:build wasip1

package kernels

import (
	"math"
	"unsafe"

	"github.com/matedge/matedge/model"
)

// The "simd" kernel set: model.GoKernels with the products of decoding, the
// softmax, the SwiGLU and the element-wise steps of ForwardMany (norms,
// rotary embedding, residual adds) done by kernels.wasm through the host. It is registered, and preferred, when the
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
func rope(x, cos, sin unsafe.Pointer, n, d, half int32)

//go:wasmimport kernels add
func add(x, y unsafe.Pointer, n int32)

func init() {
	if version() != Version {
		return
	}
	set := model.GoKernels
	set.Name = "simd"
	set.MatVec, set.MatTVec = matVec, matTVec
	set.MatVecBatch, set.MatTVecBatch = matVecBatch, matTVecBatch
	set.Softmax, set.SwiGLU = softmaxSIMD, swiGLU
	set.RMSNormRows, set.RopeRows, set.AddRows = rmsNormRows, ropeRows, addRows
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

func rmsNormRows(out, x, gain []float32, eps float32) {
	d := len(gain)
	if d == 0 || len(x) < d {
		return
	}
	n := len(x) / d
	if len(out) < n*d {
		panic("kernels: RMSNormRows: out shorter than x")
	}
	rmsnorm(unsafe.Pointer(&out[0]), unsafe.Pointer(&x[0]), unsafe.Pointer(&gain[0]), int32(n), int32(d), math.Float32bits(eps))
}

func ropeRows(x, cos, sin []float32, headDim int) {
	half := headDim / 2
	if half == 0 || len(cos) < half {
		return
	}
	n := len(cos) / half
	d := len(x) / n
	if len(sin) < n*half || d == 0 || d%headDim != 0 {
		panic("kernels: RopeRows: x, cos and sin do not match the shape")
	}
	rope(unsafe.Pointer(&x[0]), unsafe.Pointer(&cos[0]), unsafe.Pointer(&sin[0]), int32(n), int32(d), int32(half))
}

func addRows(x, y []float32) {
	if len(x) == 0 {
		return
	}
	if len(y) < len(x) {
		panic("kernels: AddRows: y shorter than x")
	}
	add(unsafe.Pointer(&x[0]), unsafe.Pointer(&y[0]), int32(len(x)))
}
