package shaders

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/matedge/matedge/webgpu"
)

// The kernel table. Each kernel is a Def: its file, workgroup size and
// constants, an arguments struct and its grid rule, stated once here.
//
// An arguments struct lists the kernel's parameters (int for a u32, float32
// for an f32), in the order of its uniform, and its storage buffers
// (webgpu.Buffer), in binding order: inputs first, outputs last. A field's
// WGSL name is its Go name in snake case (HeadDim → head_dim, KVOffset →
// kv_offset): Program writes the Params struct from the parameters, and
// TestTable checks that every buffer is the kernel file's binding of that
// name and every p.field the file reads is a parameter. Variants that share
// a layout (matvec, matvec4, matvec_f16, …) share a struct and differ in
// file and grid.
//
// A call site fills the struct and gets a Dispatch, grid included:
//
//	shaders.RoPE.Call(shaders.RoPEArgs{N: d, HeadDim: hd, Rows: rows, Pos: pos, CosTable: cos, SinTable: sin, X: q})
//
// Elementwise kernels spread their workgroups over x and y (Groups); row
// kernels run one workgroup per row.

// EmbedArgs: out[i] = table[tokens[token_offset+i] - first_row] for count
// tokens, for the tokens whose row is in this slab of vocab rows.
type EmbedArgs struct {
	Dim, Count, Vocab, TokenOffset, FirstRow int
	Table, Tokens, Out                       webgpu.Buffer
}

// RMSNormArgs: out[r] = rmsnorm(x[r]) · gain for rows rows of n.
type RMSNormArgs struct {
	N, Rows      int
	Eps          float32
	X, Gain, Out webgpu.Buffer
}

// AddRMSNormArgs: x[r] += y[r], then out[r] = rmsnorm(x[r]) · gain.
type AddRMSNormArgs struct {
	N, Rows         int
	Eps             float32
	Y, Gain, X, Out webgpu.Buffer
}

// MatVecArgs: one matrix [rows][cols] from w_offset times one vector from
// x_offset (matvec*), or its transpose (matvec_t*), into out from out_offset.
type MatVecArgs struct {
	Rows, Cols, WOffset, XOffset, OutOffset int
	W, X, Out                               webgpu.Buffer
}

// MatMulArgs: a matrix times tokens vectors (matmul*), or its transpose
// (matmul_t).
type MatMulArgs struct {
	Rows, Cols, Tokens, WOffset, XOffset, OutOffset int
	W, X, Out                                       webgpu.Buffer
}

// RoutedArgs: a routed variant of matvec*, matvec_t* or matmul* (token
// routing, RouteArgs): the plain kernel's arguments (tokens is 1 for the
// matvecs), but token t runs only the rows below its own FFN width,
// widths[width_offset + t·width_stride] (a row count, on the device), of the
// rows first_row … first_row+rows that w holds. rows is the most any token
// may run, and sizes the grid and out's stride (matmul). The widths buffer
// comes after the output, against the order of the other kernels, because
// the variant shares the plain kernel's file (routed.wgsl).
type RoutedArgs struct {
	Rows, Cols, Tokens, WOffset, XOffset, OutOffset, FirstRow, WidthOffset, WidthStride int
	W, X, Out, Widths                                                                   webgpu.Buffer
}

// RouteArgs: the FFN width each of rows tokens runs in one layer, picked by
// the layer's router from the token's FFN input as model.RoutePick picks it
// at price tau, or forced when forced < granularities, and capped at
// granularity cap: widths[width_offset + t·width_stride] = ffn_widths[g].
type RouteArgs struct {
	Dim, Rows, Granularities, Cap, Forced int
	Tau                                   float32
	WidthOffset, WidthStride              int
	X, Router, FFNWidths, Widths          webgpu.Buffer
}

// RoPEArgs: rotates rows rows of n (heads of head_dim) from x_offset in
// place, row r at position pos + r.
type RoPEArgs struct {
	N, HeadDim, Rows, Pos, XOffset int
	CosTable, SinTable, X          webgpu.Buffer
}

// AttentionArgs: rows queries at positions start… against the cache from
// kv_offset.
type AttentionArgs struct {
	HeadDim, Heads, Rows, Start, KVOffset, ScoresStride int
	Scale                                               float32
	Q, Keys, Values, Scores, Out                        webgpu.Buffer
}

// PatchEmbedArgs: an image [channels][size][size] cut into patches of
// side×side, each projected to dim and added to its position embedding.
type PatchEmbedArgs struct {
	Dim, Size, Side, Channels int
	Pixels, W, Pos, Out       webgpu.Buffer
}

// Patches is the number of patches in the image.
func (a PatchEmbedArgs) Patches() int { return (a.Size / a.Side) * (a.Size / a.Side) }

// MeanPoolArgs: out = (Σ_r x[r]) · scale over rows rows of n.
type MeanPoolArgs struct {
	N, Rows int
	Scale   float32
	X, Out  webgpu.Buffer
}

// SoftmaxArgs: softmax of rows rows of n, in place.
type SoftmaxArgs struct {
	N, Rows int
	X       webgpu.Buffer
}

// SwiGLUArgs: out = silu(gate) · up over n.
type SwiGLUArgs struct {
	N             int
	Gate, Up, Out webgpu.Buffer
}

// AddArgs: x += y over n.
type AddArgs struct {
	N    int
	Y, X webgpu.Buffer
}

// ArgmaxArgs: out[out_index] = argmax of x[x_offset … x_offset+n).
type ArgmaxArgs struct {
	N, OutIndex, XOffset int
	X, Out               webgpu.Buffer
}

// SampleArgs: out[out_index] = a token drawn from logits [n].
type SampleArgs struct {
	N, TopK                 int
	TopP, Temperature, MinP float32
	OutIndex                int
	Logits, State, Out      webgpu.Buffer
}

// PenalizeArgs: the repetition and presence penalties on logits [n] for the
// distinct tokens of tokens[first … first+count).
type PenalizeArgs struct {
	N, First, Count      int
	Repetition, Presence float32
	Tokens, Logits       webgpu.Buffer
}

// reduce is the include of the kernels that sum or take a maximum over a
// workgroup.
var reduce = []string{"reduce"}

// plainRows and routedRows are the includes that give a matrix kernel its
// rows per token (token_rows): all of them, or the token's routed width.
var (
	plainRows  = []string{"rows"}
	routedRows = []string{"routed"}
)

var (
	Embed = define(&Kernel{Name: "embed", Workgroup: 256},
		func(a EmbedArgs, wg int) [3]uint32 { return Groups(a.Count*a.Dim, wg) })
	RMSNorm = define(&Kernel{Name: "rmsnorm", Workgroup: 256, Includes: reduce},
		func(a RMSNormArgs, _ int) [3]uint32 { return Groups(a.Rows, 1) })
	AddRMSNorm = define(&Kernel{Name: "add_rmsnorm", Workgroup: 256, Includes: reduce},
		func(a AddRMSNormArgs, _ int) [3]uint32 { return Groups(a.Rows, 1) })

	MatVec = define(&Kernel{Name: "matvec", Workgroup: 64, Includes: plainRows},
		func(a MatVecArgs, wg int) [3]uint32 { return Groups(a.Rows, wg) })
	// MatVec4 computes 4 rows per invocation; cols, w_offset and x_offset
	// must be multiples of 4.
	MatVec4 = define(&Kernel{Name: "matvec4", Workgroup: 64, Includes: plainRows},
		func(a MatVecArgs, wg int) [3]uint32 { return Groups((a.Rows+3)/4, wg) })
	MatVecF16 = define(&Kernel{Name: "matvec_f16", Workgroup: 64, Includes: plainRows},
		func(a MatVecArgs, wg int) [3]uint32 { return Groups(a.Rows, wg) })
	MatVecT = define(&Kernel{Name: "matvec_t", Workgroup: 64, Includes: plainRows},
		func(a MatVecArgs, wg int) [3]uint32 { return Groups(a.Cols, wg) })
	// MatVecTF16 computes the two columns of one packed word per invocation.
	MatVecTF16 = define(&Kernel{Name: "matvec_t_f16", Workgroup: 64, Includes: plainRows},
		func(a MatVecArgs, wg int) [3]uint32 { return Groups(a.Cols/2, wg) })

	// MatMulT computes TILE = 4 tokens of one column per invocation.
	MatMulT = define(&Kernel{Name: "matmul_t", Workgroup: 64, Constants: map[string]uint32{"TILE": 4}},
		func(a MatMulArgs, wg int) [3]uint32 { return Groups(a.Cols*((a.Tokens+3)/4), wg) })
	// MatMul and MatMulF16 run 8×8 invocations per workgroup, each of
	// TILE×TILE = 4×4 outputs: a workgroup covers 32 rows by 32 tokens.
	MatMul    = define(&Kernel{Name: "matmul", Workgroup: 64, Constants: map[string]uint32{"TILE": 4}, Includes: plainRows}, matmulGrid)
	MatMulF16 = define(&Kernel{Name: "matmul_f16", Workgroup: 64, Constants: map[string]uint32{"TILE": 4}, Includes: plainRows}, matmulGrid)

	// Token routing (model/route.go) on the device: Route writes each
	// token's FFN width of a layer, and the routed variants of the matrix
	// kernels — the plain kernels' files with routed.wgsl — read it, with
	// grids sized for the widest width a token may run.
	Route = define(&Kernel{Name: "route", Workgroup: 64},
		func(a RouteArgs, wg int) [3]uint32 { return Groups(a.Rows, wg) })
	MatVecRouted = define(&Kernel{Name: "matvec_routed", File: "matvec", Workgroup: 64, Includes: routedRows},
		func(a RoutedArgs, wg int) [3]uint32 { return Groups(a.Rows, wg) })
	MatVec4Routed = define(&Kernel{Name: "matvec4_routed", File: "matvec4", Workgroup: 64, Includes: routedRows},
		func(a RoutedArgs, wg int) [3]uint32 { return Groups((a.Rows+3)/4, wg) })
	MatVecF16Routed = define(&Kernel{Name: "matvec_f16_routed", File: "matvec_f16", Workgroup: 64, Includes: routedRows},
		func(a RoutedArgs, wg int) [3]uint32 { return Groups(a.Rows, wg) })
	MatVecTRouted = define(&Kernel{Name: "matvec_t_routed", File: "matvec_t", Workgroup: 64, Includes: routedRows},
		func(a RoutedArgs, wg int) [3]uint32 { return Groups(a.Cols, wg) })
	MatVecTF16Routed = define(&Kernel{Name: "matvec_t_f16_routed", File: "matvec_t_f16", Workgroup: 64, Includes: routedRows},
		func(a RoutedArgs, wg int) [3]uint32 { return Groups(a.Cols/2, wg) })
	MatMulRouted = define(&Kernel{Name: "matmul_routed", File: "matmul", Workgroup: 64, Constants: map[string]uint32{"TILE": 4}, Includes: routedRows},
		routedMatmulGrid)
	MatMulF16Routed = define(&Kernel{Name: "matmul_f16_routed", File: "matmul_f16", Workgroup: 64, Constants: map[string]uint32{"TILE": 4}, Includes: routedRows},
		routedMatmulGrid)

	RoPE = define(&Kernel{Name: "rope", Workgroup: 256},
		func(a RoPEArgs, wg int) [3]uint32 { return Groups(a.Rows*a.N/2, wg) })
	// Attention runs one workgroup per head and query.
	Attention = define(&Kernel{Name: "attention", Workgroup: 64, Constants: map[string]uint32{"CAUSAL": 1}}, attentionGrid)
	// AttentionBidirectional: every query sees positions 0…start+rows-1.
	AttentionBidirectional = define(&Kernel{Name: "attention_bidirectional", File: "attention", Workgroup: 64, Constants: map[string]uint32{"CAUSAL": 0}}, attentionGrid)

	PatchEmbed = define(&Kernel{Name: "patch_embed", Workgroup: 64},
		func(a PatchEmbedArgs, wg int) [3]uint32 { return Groups(a.Patches()*a.Dim, wg) })
	MeanPool = define(&Kernel{Name: "mean_pool", Workgroup: 64},
		func(a MeanPoolArgs, wg int) [3]uint32 { return Groups(a.N, wg) })
	Softmax = define(&Kernel{Name: "softmax", Workgroup: 256, Includes: reduce},
		func(a SoftmaxArgs, _ int) [3]uint32 { return Groups(a.Rows, 1) })
	SwiGLU = define(&Kernel{Name: "swiglu", Workgroup: 256},
		func(a SwiGLUArgs, wg int) [3]uint32 { return Groups(a.N, wg) })
	Add = define(&Kernel{Name: "add", Workgroup: 256},
		func(a AddArgs, wg int) [3]uint32 { return Groups(a.N, wg) })
	// Argmax and Sample run one workgroup over the whole vector.
	Argmax = define(&Kernel{Name: "argmax", Workgroup: 256}, func(ArgmaxArgs, int) [3]uint32 { return [3]uint32{1, 1, 1} })
	Sample = define(&Kernel{Name: "sample", Workgroup: 256, Includes: reduce}, func(SampleArgs, int) [3]uint32 { return [3]uint32{1, 1, 1} })
	// Penalize runs one invocation per window position.
	Penalize = define(&Kernel{Name: "penalize", Workgroup: 64},
		func(a PenalizeArgs, wg int) [3]uint32 { return Groups(a.Count, wg) })
)

func matmulGrid(a MatMulArgs, _ int) [3]uint32 {
	return [3]uint32{uint32((a.Rows + 31) / 32), uint32((a.Tokens + 31) / 32), 1}
}

func routedMatmulGrid(a RoutedArgs, wg int) [3]uint32 {
	return matmulGrid(MatMulArgs{Rows: a.Rows, Tokens: a.Tokens}, wg)
}

func attentionGrid(a AttentionArgs, _ int) [3]uint32 {
	return [3]uint32{uint32(a.Heads), uint32(a.Rows), 1}
}

// Kernels is the table of every kernel, by name.
var Kernels = map[string]*Kernel{}

// Def is a kernel whose dispatches take arguments A (a struct of the
// table's form) with its grid rule.
type Def[A any] struct {
	*Kernel
	grid func(A, int) [3]uint32
}

// define adds k to Kernels with A's parameters and buffers.
func define[A any](k *Kernel, grid func(A, int) [3]uint32) *Def[A] {
	describe(k, reflect.TypeFor[A]())
	return &Def[A]{Kernel: k, grid: grid}
}

// describe fills k's Params and Buffers from its arguments struct t and
// adds it to Kernels. It panics on a struct of another form: the table is
// code. (define and Call stay small and hand the work to functions that are
// not generic: each instance of a generic function is its own code in the
// module.)
func describe(k *Kernel, t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		switch f.Type {
		case reflect.TypeFor[int]():
			k.Params = append(k.Params, Param{Name: snake(f.Name)})
			k.paramFields = append(k.paramFields, i)
		case reflect.TypeFor[float32]():
			k.Params = append(k.Params, Param{Name: snake(f.Name), Float: true})
			k.paramFields = append(k.paramFields, i)
		case reflect.TypeFor[webgpu.Buffer]():
			k.Buffers = append(k.Buffers, snake(f.Name))
			k.bufferFields = append(k.bufferFields, i)
		default:
			panic(fmt.Sprintf("shaders: %s field %s has type %s", t.Name(), f.Name, f.Type))
		}
	}
	if _, dup := Kernels[k.Name]; dup {
		panic("shaders: two kernels named " + k.Name)
	}
	Kernels[k.Name] = k
}

// snake is a Go field name as a WGSL name: HeadDim → head_dim, KVOffset →
// kv_offset, XOffset → x_offset.
func snake(name string) string {
	upper := func(i int) bool { return i < len(name) && 'A' <= name[i] && name[i] <= 'Z' }
	lower := func(i int) bool { return i < len(name) && 'a' <= name[i] && name[i] <= 'z' }
	var b strings.Builder
	for i := range len(name) {
		c := name[i]
		if upper(i) {
			if i > 0 && (lower(i-1) || lower(i+1)) {
				b.WriteByte('_')
			}
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Dispatch is one call of a kernel, ready to record.
type Dispatch struct {
	Kernel  *Kernel
	Params  []byte          // the uniform, packed
	Buffers []webgpu.Buffer // bindings 1…, in order
	Groups  [3]uint32
}

// Call packs a's parameters and buffers and applies the grid rule. It
// panics on a negative parameter, which is a programming error.
func (d *Def[A]) Call(a A) Dispatch {
	return d.Kernel.dispatch(reflect.ValueOf(a), d.grid(a, d.Workgroup))
}

func (k *Kernel) dispatch(v reflect.Value, groups [3]uint32) Dispatch {
	out := Dispatch{Kernel: k, Params: make([]byte, (len(k.paramFields)*4+15)/16*16), Groups: groups}
	for i, field := range k.paramFields {
		var word uint32
		switch f := v.Field(field); f.Kind() {
		case reflect.Int:
			x := f.Int()
			if x < 0 || x > math.MaxUint32 {
				panic(fmt.Sprintf("shaders: %s param %s = %d", k.Name, k.Params[i].Name, x))
			}
			word = uint32(x)
		default:
			word = math.Float32bits(float32(f.Float()))
		}
		binary.LittleEndian.PutUint32(out.Params[4*i:], word)
	}
	for _, field := range k.bufferFields {
		out.Buffers = append(out.Buffers, webgpu.Buffer(v.Field(field).Uint()))
	}
	return out
}

// Record compiles the kernel's program on first use (through pipes) and
// records the dispatch on device. The program's source is built once per
// kernel, not per dispatch.
func (c Dispatch) Record(device webgpu.Device, pipes *webgpu.Pipelines) error {
	k := c.Kernel
	k.once.Do(func() { k.program = k.Program(nil) })
	prog := k.program
	p, err := pipes.Get(prog.Key, prog.Source, prog.Bindings)
	if err != nil {
		return err
	}
	bindings := make([]webgpu.Binding, len(c.Buffers))
	for i, b := range c.Buffers {
		bindings[i] = webgpu.Binding{Buffer: b}
	}
	if err := device.Dispatch(p, c.Params, bindings, c.Groups); err != nil {
		return fmt.Errorf("%s: %w", c.Kernel.Name, err)
	}
	return nil
}
