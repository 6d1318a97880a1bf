package shaders_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
)

func TestProgram(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MATEDGE_DUMP_WGSL", dir)
	for name, k := range shaders.Kernels {
		if k.Name != name {
			t.Errorf("Kernels[%q].Name = %q", name, k.Name)
		}
		p := k.Program(nil)
		if again := k.Program(nil); again != p {
			t.Errorf("%s: Program is not deterministic", name)
		}
		if !strings.Contains(p.Source, "fn main(") || !strings.Contains(p.Source, "const WG: u32") {
			t.Errorf("%s: Program source lacks main or WG:\n%s", name, p.Source)
		}
		for i := range p.Bindings + 1 {
			if !strings.Contains(p.Source, fmt.Sprintf("@binding(%d)", i)) {
				t.Errorf("%s: no @binding(%d) for %d buffers", name, i, p.Bindings)
			}
		}
		// Params come from the table only, read through load_params (the
		// lavapipe workaround of the package comment), once per binding 0.
		if n := strings.Count(p.Source, "struct Params"); n != 1 {
			t.Errorf("%s: %d Params structs; want the generated one only", name, n)
		}
		if n := strings.Count(p.Source, "@binding(0)"); n != 1 {
			t.Errorf("%s: %d declarations at binding 0; want the generated uniform only", name, n)
		}
		if _, body, _ := strings.Cut(p.Source, "fn main("); !strings.Contains(body, "let p = load_params(u32(arrayLength(&") {
			t.Errorf("%s: main does not read its params through load_params", name)
		}
		if dumped, err := os.ReadFile(filepath.Join(dir, p.Key+".wgsl")); err != nil || string(dumped) != p.Source {
			t.Errorf("%s: MATEDGE_DUMP_WGSL file = %q, %v; want the program source", name, dumped, err)
		}
	}
	if got, want := shaders.MatMul.Program(map[string]uint32{"TILE": 2}).Key, "matmul{TILE=2,WG=64}"; got != want {
		t.Errorf("matmul Program(TILE=2).Key = %q; want %q", got, want)
	}
}

// TestTable checks each kernel's arguments struct against its WGSL program:
// buffer i is the program's storage binding i+1 under the same name (an
// include may declare a binding before the kernel file's: routed.wgsl), and
// every p.field the program reads is a parameter of the struct.
func TestTable(t *testing.T) {
	binding := regexp.MustCompile(`@binding\((\d+)\) var<storage, [a-z_]+> (\w+):`)
	field := regexp.MustCompile(`\bp\.(\w+)`)
	for name, k := range shaders.Kernels {
		src := k.Program(nil).Source
		matches := binding.FindAllStringSubmatch(src, -1)
		bound := make([]string, len(matches))
		for _, m := range matches {
			i, err := strconv.Atoi(m[1])
			if err != nil || i < 1 || i > len(bound) || bound[i-1] != "" {
				t.Errorf("%s: storage binding %s of %d, or twice", name, m[1], len(bound))
				continue
			}
			bound[i-1] = m[2]
		}
		if !slices.Equal(bound, k.Buffers) {
			t.Errorf("%s: WGSL binds %v; the table's buffers are %v", name, bound, k.Buffers)
		}
		params := map[string]bool{}
		for _, p := range k.Params {
			params[p.Name] = true
		}
		for _, m := range field.FindAllStringSubmatch(src, -1) {
			if !params[m[1]] {
				t.Errorf("%s: WGSL reads p.%s; the table's params are %v", name, m[1], k.Params)
			}
		}
		for _, inc := range k.Includes {
			if !strings.Contains(src, "// "+inc+":") {
				t.Errorf("%s: program lacks its include %s", name, inc)
			}
		}
	}
	// The one reduction: no kernel file writes its own sum or max tree.
	// (argmax reduces (value, index) pairs with its own tie rule.)
	for name, k := range shaders.Kernels {
		src := k.Program(nil).Source
		if n := strings.Count(src, "for (var s = WG / 2u; s > 0u; s >>= 1u)"); n > 0 && name != "argmax" && !slices.Contains(k.Includes, "reduce") {
			t.Errorf("%s: a tree reduction outside reduce.wgsl", name)
		} else if slices.Contains(k.Includes, "reduce") && n != 2 {
			t.Errorf("%s: %d tree loops; want reduce.wgsl's two", name, n)
		}
	}
}

func TestCall(t *testing.T) {
	d := shaders.RMSNorm.Call(shaders.RMSNormArgs{N: 3, Rows: 5, Eps: 1, X: 7, Gain: 8, Out: 9})
	// n = 3, rows = 5 as u32 and eps = 1 as f32, padded to 16 bytes.
	if want := []byte{3, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0}; string(d.Params) != string(want) {
		t.Errorf("Call params = %v; want %v", d.Params, want)
	}
	if want := []webgpu.Buffer{7, 8, 9}; !slices.Equal(d.Buffers, want) {
		t.Errorf("Call buffers = %v; want %v", d.Buffers, want)
	}
	if want := [3]uint32{5, 1, 1}; d.Groups != want {
		t.Errorf("Call groups = %v; want %v (one workgroup per row)", d.Groups, want)
	}
	a := shaders.Attention.Call(shaders.AttentionArgs{HeadDim: 8, Heads: 4, Rows: 3, KVOffset: 2, ScoresStride: 9, Scale: 0.5})
	if got, want := a.Kernel.Params[4].Name, "kv_offset"; got != want {
		t.Errorf("attention param 4 = %q; want %q", got, want)
	}
	if want := [3]uint32{4, 3, 1}; a.Groups != want {
		t.Errorf("attention groups = %v; want %v", a.Groups, want)
	}
	if got, want := shaders.MatVec4.Call(shaders.MatVecArgs{Rows: 257, Cols: 4}).Groups, [3]uint32{2, 1, 1}; got != want {
		t.Errorf("matvec4 groups for 257 rows = %v; want %v", got, want)
	}
}

func TestGroups(t *testing.T) {
	for _, c := range []struct {
		n, wg int
		want  [3]uint32
	}{{0, 64, [3]uint32{1, 1, 1}}, {65, 64, [3]uint32{2, 1, 1}}, {65535 * 2, 1, [3]uint32{65535, 2, 1}}, {65536, 1, [3]uint32{65535, 2, 1}}} {
		if got := shaders.Groups(c.n, c.wg); got != c.want {
			t.Errorf("Groups(%d, %d) = %v; want %v", c.n, c.wg, got, c.want)
		}
	}
}
