package model

import (
	"fmt"
	"sort"
)

// Kernels are the hot loops of the CPU path: the three batched products of
// training, the dot product, scaled add and softmax of attention, and the
// matrix–vector products and SwiGLU of decoding. Everything else in this
// package is written once, in plain Go; these have faster versions where the
// machine allows (vector units, a SIMD companion module), and every version
// is tested against the plain-Go reference, GoKernels.
//
// Each version sums every output element in one fixed order that does not
// depend on how work is split between goroutines, so a training run is
// bit-for-bit reproducible on a given machine and kernel set. The training
// products of different sets round differently (they agree to float32
// rounding); the products of decoding below are bit-identical in every set
// (avx2 keeps its own Softmax, which agrees to rounding).
type Kernels struct {
	Name string

	// MatMulT sets out = x·Wᵀ: out [n][outDim], x [n][in], w [outDim][in].
	MatMulT func(out, x, w []float32, n, in, outDim int)
	// MatMulAdd adds x·W to out: out [n][outDim], x [n][in], w [in][outDim].
	MatMulAdd func(out, x, w []float32, n, in, outDim int)
	// MatTMulAdd adds aᵀ·b to out: out [m][k], a [n][m], b [n][k].
	MatTMulAdd func(out, a, b []float32, n, m, k int)
	// Dot returns Σ a[i]·b[i] over len(a) (len(b) ≥ len(a)).
	Dot func(a, b []float32) float32
	// AddScaled sets y += s·x over len(y) (len(x) ≥ len(y)).
	AddScaled func(y []float32, s float32, x []float32)
	// Softmax replaces x by exp(x − max) / Σ exp(x − max). The reference sums
	// in dot4's order and uses exp32, so that the module's SIMD set gives its
	// bits; the avx2 set's differs by rounding.
	Softmax func(x []float32)

	// The products of decoding (Forward, ForwardMany). Every version gives
	// bit-identical results to the reference, because each output element is
	// summed in one order that vector units can follow (see dot4): the same
	// prompt and seed give the same tokens whatever set a host runs.

	// MatVec sets out[r] = dot4(w[r·stride:][:len(x)], x) for r < len(out):
	// W [len(out)][stride], of which the first len(x) columns are used.
	MatVec func(out, w, x []float32, stride int)
	// MatTVec sets out[i] = Σ_j x[j]·w[j·stride+i] for i < len(out), summed
	// over j in increasing order from 0: Wᵀ·x for W [len(x)][stride].
	MatTVec func(out, w, x []float32, stride int)
	// MatVecBatch is MatVec for n tokens at once: out [n][rows], x [n][cols],
	// W [rows][cols], with rows = len(out)/n and cols = len(x)/n.
	MatVecBatch func(out, w, x []float32, n int)
	// MatTVecBatch is MatTVec for n tokens at once: out [n][cols], x [n][k],
	// W [k][cols], with cols = len(out)/n and k = len(x)/n.
	MatTVecBatch func(out, w, x []float32, n int)
	// SwiGLU sets out[j] = gate[j] / (1 + exp32(−gate[j])) · up[j] over
	// len(gate); out may alias gate.
	SwiGLU func(out, gate, up []float32)

	// The rest of a decode step (Forward's glue) and of a pass over several
	// tokens (ForwardMany), bit-identical in every set like the products
	// above: each is elementwise, or sums in the one order its reference
	// states. RMSNorm and Rope work row by row, so that one call serves a
	// step (one row) and a pass (a row per token).

	// RMSNorm sets out = x / rms(x) · gain for each row of len(gain) values
	// of x and out (see rmsNormGo); out may alias x.
	RMSNorm func(out, x, gain []float32, eps float32)
	// Add sets x += y over len(x).
	Add func(x, y []float32)
	// Scale sets x *= s.
	Scale func(x []float32, s float32)
	// Rope rotates the pairs of every head of each of the len(cos)/(headDim/2)
	// rows of x ([rows][len(x)/rows]), row r by the angles at cos[r·headDim/2:]
	// and sin[r·headDim/2:] (see ropeGo).
	Rope func(x, cos, sin []float32, headDim int)
	// Argmax returns the index of the largest value, the lowest on ties
	// (see Argmax for NaN).
	Argmax func(x []float32) int
	// Attention is every head's attention at position n−1 (see
	// attentionWith): the set's own MatVec, Scale, Softmax and MatTVec, in
	// one call.
	Attention func(out, att, q, keys, values []float32, heads, n, attStride, stride int)
}

// GoKernels is the plain-Go reference: portable, and what the wasm module runs
// when its host does not link the SIMD companion (wasm/kernels).
var GoKernels = Kernels{
	Name:       "go",
	MatMulT:    matMulTGo,
	MatMulAdd:  matMulAddGo,
	MatTMulAdd: matTMulAddGo,
	Dot:        dotGo,
	AddScaled:  addScaledGo,
	Softmax:    softmaxGo,

	MatVec:       matVecGo,
	MatTVec:      matTVecGo,
	MatVecBatch:  matVecBatchGo,
	MatTVecBatch: matTVecBatchGo,
	SwiGLU:       swiGLUGo,

	RMSNorm: rmsNormGo,
	Add:     addGo,
	Scale:   scaleGo,
	Rope:    ropeGo,
	Argmax:  argmaxGo,

	Attention: attentionGo,
}

// kernelSets holds every kernel set this build and this CPU can run, by name;
// faster sets register themselves from init when the hardware has what they
// need. kern is the one in use.
var (
	kernelSets = map[string]Kernels{"go": GoKernels}
	kern       = GoKernels
)

// RegisterKernels adds a kernel set, made preferred (used from now on) if
// preferred is true. The module's SIMD companion (wasm/kernels) registers
// itself this way when its host linked it. A set that leaves a product nil
// gets the reference's.
func RegisterKernels(k Kernels, preferred bool) { registerKernels(k, preferred) }

func registerKernels(k Kernels, preferred bool) {
	if k.MatVec == nil {
		k.MatVec = GoKernels.MatVec
	}
	if k.MatTVec == nil {
		k.MatTVec = GoKernels.MatTVec
	}
	if k.MatVecBatch == nil {
		k.MatVecBatch = GoKernels.MatVecBatch
	}
	if k.MatTVecBatch == nil {
		k.MatTVecBatch = GoKernels.MatTVecBatch
	}
	if k.SwiGLU == nil {
		k.SwiGLU = GoKernels.SwiGLU
	}
	if k.RMSNorm == nil {
		k.RMSNorm = GoKernels.RMSNorm
	}
	if k.Add == nil {
		k.Add = GoKernels.Add
	}
	if k.Scale == nil {
		k.Scale = GoKernels.Scale
	}
	if k.Rope == nil {
		k.Rope = GoKernels.Rope
	}
	if k.Argmax == nil {
		k.Argmax = GoKernels.Argmax
	}
	if k.Attention == nil {
		k.Attention = attentionWith(k) // its own products and softmax (avx2's softmax is its own)
	}
	kernelSets[k.Name] = k
	if preferred {
		kern = k
	}
}

// AvailableKernels lists the kernel sets this build can run on this CPU.
func AvailableKernels() []string {
	names := make([]string, 0, len(kernelSets))
	for name := range kernelSets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ActiveKernels returns the kernel set in use.
func ActiveKernels() Kernels { return kern }

// UseKernels switches the kernel set ("go", or a name from AvailableKernels).
// It is not safe to call while a forward or backward pass is running.
func UseKernels(name string) error {
	k, ok := kernelSets[name]
	if !ok {
		return fmt.Errorf("model: kernel set %q is not available in this build on this CPU (have %v)", name, AvailableKernels())
	}
	kern = k
	return nil
}

func matMulT(out, x, w []float32, n, in, outDim int) { kern.MatMulT(out, x, w, n, in, outDim) }
func matMulAdd(out, x, w []float32, n, in, outDim int) {
	kern.MatMulAdd(out, x, w, n, in, outDim)
}
func matTMulAdd(out, a, b []float32, n, m, k int) { kern.MatTMulAdd(out, a, b, n, m, k) }
