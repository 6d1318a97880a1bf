// Package kernels is the SIMD companion of the module's CPU path: a small
// wasm module written in WAT with SIMD128 (kernels.wat, assembled into the
// committed kernels.wasm) that runs the products of decoding on the Go
// module's own memory, and, in the wasip1 build, the kernel set that calls
// it (model.Kernels named "simd").
//
// Go's wasm target emits no SIMD, so the hot loops of the module run 10–40×
// slower than they could. The module therefore imports the products from an
// import module named "kernels" (ImportModule). A host links it by
// instantiating Wasm with the Go module's exported memory as env.memory and
// forwarding each import to the export of the same name (host/kernels.go for
// wazero, web/src/kernels.js for the browser). A host that does not link it
// answers 0 to "version" and the module keeps the plain-Go reference set.
//
// Every kernel sums in the order the reference (model.GoKernels) does, so the
// two sets give bit-identical results and the same tokens.
package kernels

import _ "embed"

// Wasm is the companion module, assembled from kernels.wat by
// `wat2wasm kernels.wat -o kernels.wasm` (wabt); TestWasmUpToDate checks it.
//
//go:embed kernels.wasm
var Wasm []byte

// ImportModule is the name of the import module the Go module calls.
const ImportModule = "kernels"

// Version is what kernels.wasm's "version" export returns, and what the Go
// module expects from the "version" import; anything else (0 from a host that
// did not link the module) keeps the module on the plain-Go kernels.
const Version = 2

// Function is one import of ImportModule: every parameter is an i32 (a byte
// offset into the Go module's memory, or a count of float32 elements).
type Function struct {
	Name   string
	Params int
}

// Functions are the imports a host forwards to the export of the same name,
// besides "version" (no parameters, an i32 result).
var Functions = []Function{
	{"matvec", 6},   // (out, w, x, rows, cols, stride): out[r] = dot(w[r·stride…], x)
	{"matvec_t", 6}, // (out, w, x, n, k, stride): out[i] = Σ_j x[j]·w[j·stride+i]
	{"matmul", 6},   // (out, w, x, tokens, rows, cols): matvec for each token
	{"matmul_t", 6}, // (out, w, x, tokens, n, k): matvec_t for each token
	{"softmax", 2},  // (x, n): x = exp(x - max) / Σ exp(x - max)
	{"swiglu", 4},   // (out, gate, up, n): out[j] = g / (1 + exp(-g)) · up[j]
	{"rmsnorm", 6},  // (out, x, gain, n, d, eps bits): RMSNorm of each of n rows of d
	{"rope", 6},     // (x, cos, sin, n, d, headDim): rotate each head's pairs in each of n rows of d, row r's angles at r·headDim/2
	{"add", 3},      // (x, y, n): x[i] += y[i]
	{"scale", 3},    // (x, n, s bits): x[i] *= s
	{"argmax", 3},   // (out, x, n): *out = index of the largest x[i], lowest on ties
	// (out, att, q, keys, values, heads, n, attStride, stride, hd, s bits):
	// every head's attention over n cached positions
	{"attention", 11},
}
