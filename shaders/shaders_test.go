package shaders_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matedge/matedge/shaders"
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
	if got, want := shaders.Get("matmul").Program(map[string]uint32{"TILE": 2}).Key, "matmul{TILE=2,WG=64}"; got != want {
		t.Errorf("matmul Program(TILE=2).Key = %q; want %q", got, want)
	}
}

func TestPack(t *testing.T) {
	got := shaders.Get("rmsnorm").Pack(3, uint32(5), float32(1))
	want := []byte{3, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0}
	if string(got) != string(want) {
		t.Errorf("Pack(3, 5, 1) = %v; want %v", got, want)
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
