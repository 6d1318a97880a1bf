package host

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/matedge/matedge/host/internal/testmodule"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
)

var checkGuest struct {
	once sync.Once
	wasm []byte
	err  error
	msg  []byte
}

// checkWasm builds wasm/kernels/testdata/check, a reactor that links the simd
// kernel set as the module does and exports check (kernels.Check on it).
func checkWasm(t *testing.T) []byte {
	t.Helper()
	checkGuest.once.Do(func() {
		dir, err := os.MkdirTemp("", "matedge-check")
		if err != nil {
			checkGuest.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "check.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./wasm/kernels/testdata/check")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if checkGuest.msg, checkGuest.err = cmd.CombinedOutput(); checkGuest.err == nil {
			checkGuest.wasm, checkGuest.err = os.ReadFile(out)
		}
	})
	if checkGuest.err != nil {
		t.Fatalf("build the check guest: %v\n%s", checkGuest.err, checkGuest.msg)
	}
	return checkGuest.wasm
}

// runCheck instantiates the check guest with the kernels cfg asks for and
// returns what its check export says (0 same bits, 1 different, 2 not linked).
func runCheck(t *testing.T, cfg Config, seed uint32) int32 {
	t.Helper()
	ctx := context.Background()
	rt, err := NewRuntime(ctx, checkWasm(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.runtime.InstantiateModule(ctx, rt.compiled, moduleConfig())
	if err != nil {
		t.Fatal(err)
	}
	unlink, err := rt.kernels.link(ctx, mod)
	if err != nil {
		t.Fatal(err)
	}
	defer unlink(ctx)
	res, err := mod.ExportedFunction("check").Call(ctx, uint64(seed))
	if err != nil {
		t.Fatalf("check trapped: %v", err)
	}
	return int32(uint32(res[0]))
}

// TestKernelsMatchReference runs every SIMD128 kernel of kernels.wasm, under
// wazero, against the Go reference on odd shapes: bit for bit.
func TestKernelsMatchReference(t *testing.T) {
	for _, seed := range []uint32{1, 2, 3} {
		if got := runCheck(t, Config{}, seed); got != 0 {
			t.Fatalf("check(%d) = %d; want 0 (the simd kernels give the reference's bits; see stderr)", seed, got)
		}
	}
	if got := runCheck(t, Config{Kernels: KernelsGo}, 1); got != 2 {
		t.Fatalf("check with -kernels go = %d; want 2 (the guest runs its Go kernels)", got)
	}
}

// TestKernelsUsed checks that a linked module sends its products to
// kernels.wasm, that an unlinked one does not, and that both decode the same
// tokens (TestModuleMatchesNative compares them with model.Forward too).
func TestKernelsUsed(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	var tokens [2][]int
	for i, set := range []string{KernelsSIMD, KernelsGo} {
		rt, err := NewRuntime(ctx, testmodule.Bytes(t), Config{Kernels: set})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(ctx)
		m, err := rt.Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "XL"); err != nil {
			t.Fatal(err)
		}
		res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 16, Options: abi.Options{Backend: "cpu"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = res.Tokens
		calls := rt.kernels.calls.Load()
		if set == KernelsSIMD && calls == 0 {
			t.Errorf("kernels %s: no call reached kernels.wasm", set)
		}
		if set == KernelsGo && calls != 0 {
			t.Errorf("kernels %s: %d calls reached kernels.wasm", set, calls)
		}
	}
	if !slices.Equal(tokens[0], tokens[1]) {
		t.Fatalf("simd tokens %v\ngo tokens   %v", tokens[0], tokens[1])
	}
}

func TestKernelsConfig(t *testing.T) {
	if _, err := NewRuntime(context.Background(), testmodule.Bytes(t), Config{Kernels: "avx"}); err == nil {
		t.Fatal("NewRuntime accepted kernel set \"avx\"")
	}
}

// TestBenchKernel runs bench_kernel, which matedge bench times, and checks
// that it refuses what it cannot run.
func TestBenchKernel(t *testing.T) {
	ctx := context.Background()
	m := startWith(t, Config{})
	for kernel := range int32(3) {
		if err := m.BenchKernel(ctx, kernel, 17, 33, 5, 2); err != nil {
			t.Errorf("bench_kernel(%d, 17, 33, 5, 2): %v", kernel, err)
		}
	}
	for _, bad := range [][5]int{{3, 4, 4, 1, 1}, {-1, 4, 4, 1, 1}, {0, 0, 4, 1, 1}, {0, 4, 4, 0, 1}, {0, 1 << 13, 1 << 12, 1, 1}, {0, 4, 4, 1, -1}} {
		if err := m.BenchKernel(ctx, int32(bad[0]), bad[1], bad[2], bad[3], bad[4]); !errors.Is(err, ErrArg) {
			t.Errorf("bench_kernel%v = %v; want ErrArg", bad, err)
		}
	}
}
