// Package shaders holds matedge's WGSL compute kernels, one .wgsl file per
// kernel, and a table that says how to call each one.
//
// # Binding convention
//
// Every kernel uses bind group 0 only:
//
//	@binding(0)        var<uniform> p: Params  — the kernel's parameters, Kernel.Params in order
//	@binding(1 … n)    storage buffers, Kernel.Buffers in order: inputs first, outputs last
//
// Each kernel is a Def in the table (table.go) with an arguments struct
// whose fields are its parameters and its buffers, named as in WGSL, and a
// grid rule: Def.Call turns the struct into a Dispatch (uniform, bindings,
// workgroup counts), so a caller neither orders parameters by hand nor
// computes a grid. Program writes the Params struct and its binding from
// the arguments struct, so the table and the WGSL cannot disagree, and
// TestTable checks the buffers against the file's bindings. A kernel reads its parameters through
// load_params, first thing in main:
//
//	let p = load_params(arrayLength(&first_buffer) >> 31u);
//
// which ORs every field with that zero, a value the driver cannot know when
// it compiles. Mesa's lavapipe inlines uniforms that bound loops or branches
// into the shader and recompiles it whenever their values change — on every
// dispatch, for kernels whose position or size changes each token — which
// cost 1.5–2.5 ms per attention dispatch and most of every matvec's time
// (ARCHITECTURE.md). Reading the uniform through the zero keeps one
// compiled shader for every dispatch; on other drivers it costs one OR per
// field.
//
// A buffer that a kernel both reads and writes (the x of "x += y") counts as an
// output. One exception to the order: the routed variants of the matrix
// kernels (token routing) share the plain kernels' files and bind the
// per-token widths they read after the file's output (routed.wgsl). Every
// parameter is 4 bytes (u32 or f32); Def.Call lays them out.
// Offsets in parameters count elements of the buffer they index (f32 or u32;
// for packed f16 weights, u32 words holding two weights), so one bound buffer
// can hold many tensors and a nested FFN width is just a smaller row count:
// one pipeline serves every granularity.
//
// # Source
//
// The WGSL a device compiles is Kernel.Program: the kernel's constants (WG, the
// workgroup size, and any others) as WGSL `const` declarations, then
// prelude.wgsl, the generated Params, the helper files the kernel includes
// (Kernel.Includes: reduce.wgsl, the one workgroup reduction; rows.wgsl or
// routed.wgsl, a matrix kernel's rows per token), then the kernel file. Program.Key names it deterministically (name and
// constants), so a pipeline cache can key on it. Setting
// MATEDGE_DUMP_WGSL=dir writes every program built to dir/<key>.wgsl.
package shaders

import (
	"embed"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

//go:embed *.wgsl
var files embed.FS

// Kernel describes one WGSL kernel and how to dispatch it. The table of
// every kernel is in table.go: each entry is a Def, whose arguments struct
// gives Params and Buffers.
type Kernel struct {
	Name      string            // the file name without .wgsl, unless File says otherwise
	File      string            // for a variant of another kernel (another value of its Constants): that kernel's file name without .wgsl
	Params    []Param           // the uniform at binding 0, in order: the Def's int and float32 fields
	Buffers   []string          // storage buffers at bindings 1…, inputs first, outputs last: the Def's webgpu.Buffer fields; shapes in the kernel file
	Workgroup int               // invocations per workgroup (the WG constant)
	Constants map[string]uint32 // further WGSL constants, besides WG
	Includes  []string          // helper files (without .wgsl) spliced in before the kernel file, e.g. "reduce"

	paramFields, bufferFields []int // the arguments struct's fields that are Params, Buffers

	once    sync.Once
	program Program // Program(nil), built once for Dispatch.Record
}

// Param is one 4-byte field of a kernel's uniform.
type Param struct {
	Name  string
	Float bool // f32; otherwise u32
}

// Program is the final WGSL of a kernel with its constants fixed.
type Program struct {
	Key      string // deterministic: name and constants, e.g. "matmul{TILE=4,WG=64}"
	Source   string // WGSL, entry point "main"
	Bindings int    // storage buffers (bindings 1…Bindings); binding 0 is the uniform
}

// Program builds the kernel's WGSL with its table constants, overridden by
// any given in overrides (for tuning and benchmarks).
func (k *Kernel) Program(overrides map[string]uint32) Program {
	consts := map[string]uint32{"WG": uint32(k.Workgroup)}
	for name, v := range k.Constants {
		consts[name] = v
	}
	for name, v := range overrides {
		if _, ok := consts[name]; !ok {
			panic(fmt.Sprintf("shaders: kernel %s has no constant %s", k.Name, name))
		}
		consts[name] = v
	}
	names := slices.Sorted(maps.Keys(consts))
	var key, src strings.Builder
	key.WriteString(k.Name + "{")
	fmt.Fprintf(&src, "// matedge kernel %s\n", k.Name)
	for i, name := range names {
		if i > 0 {
			key.WriteString(",")
		}
		fmt.Fprintf(&key, "%s=%d", name, consts[name])
		fmt.Fprintf(&src, "const %s: u32 = %du;\n", name, consts[name])
	}
	key.WriteString("}")
	src.WriteString(mustRead("prelude.wgsl"))
	src.WriteString(k.params())
	for _, inc := range k.Includes {
		src.WriteString(mustRead(inc + ".wgsl"))
	}
	file := k.Name
	if k.File != "" {
		file = k.File
	}
	src.WriteString(mustRead(file + ".wgsl"))
	p := Program{Key: key.String(), Source: src.String(), Bindings: len(k.Buffers)}
	dump(p)
	return p
}

// params is the WGSL of the kernel's uniform: the Params struct, its binding
// and load_params (see the package comment).
func (k *Kernel) params() string {
	var fields, loads []string
	for _, p := range k.Params {
		if p.Float {
			fields = append(fields, p.Name+": f32")
			loads = append(loads, fmt.Sprintf("bitcast<f32>(bitcast<u32>(p.%s) | zero)", p.Name))
		} else {
			fields = append(fields, p.Name+": u32")
			loads = append(loads, fmt.Sprintf("p.%s | zero", p.Name))
		}
	}
	return fmt.Sprintf(`
// Params is Kernel.Params of the Go table; load_params hides its values
// from a driver that would inline them (package shaders).
struct Params { %s }
@group(0) @binding(0) var<uniform> p: Params;
fn load_params(zero: u32) -> Params {
    return Params(%s);
}

`, strings.Join(fields, ", "), strings.Join(loads, ", "))
}

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("shaders: " + err.Error()) // embedded: cannot fail for a name in the table
	}
	return string(b)
}

var dumpOnce sync.Map // key → struct{}

// dump writes p to $MATEDGE_DUMP_WGSL/<key>.wgsl once per key. It is a
// debugging aid: a failure is reported on stderr, not to the caller.
func dump(p Program) {
	dir := os.Getenv("MATEDGE_DUMP_WGSL")
	if dir == "" {
		return
	}
	if _, seen := dumpOnce.LoadOrStore(p.Key, struct{}{}); seen {
		return
	}
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, p.Key+".wgsl"), []byte(p.Source), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "shaders: dump %s: %v\n", p.Key, err)
	}
}

// MaxGroupsPerDimension is WebGPU's guaranteed workgroup count per dimension.
const MaxGroupsPerDimension = 65535

// Groups returns the workgroup counts that cover n invocations (or, with
// workgroup 1, n workgroups) in workgroups of the given size, spread over x and
// y when x alone would exceed MaxGroupsPerDimension. Kernels recover the flat
// index with the prelude's flat_index or flat_group, and ignore the overhang.
func Groups(n, workgroup int) [3]uint32 {
	groups := max((n+workgroup-1)/workgroup, 1)
	x := min(groups, MaxGroupsPerDimension)
	return [3]uint32{uint32(x), uint32((groups + x - 1) / x), 1}
}

// SamplerState is the state word of a model.RNG right after model.NewRNG(seed):
// upload it to the sample kernel's state buffer to reproduce that generator's
// stream on the GPU. (It repeats model.NewRNG's two lines because shaders may
// not import model; a test checks they agree.)
func SamplerState(seed uint64) uint32 {
	state := uint32(seed) ^ uint32(seed>>32)*0x9E3779B9
	return state*747796405 + 2891336453
}
