package webgpuhost_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/matedge/matedge/host/webgpuhost"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
)

var guest struct {
	once sync.Once
	wasm []byte
	err  error
}

// guestWasm builds testdata/guest as a wasip1 reactor, once per test binary
// (each child process of webgputest.Run builds its own).
func guestWasm(t *testing.T) []byte {
	t.Helper()
	guest.once.Do(func() {
		dir, err := os.MkdirTemp("", "webgpuhost")
		if err != nil {
			guest.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "guest.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/guest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			guest.err = &buildError{err, string(msg)}
			return
		}
		guest.wasm, guest.err = os.ReadFile(out)
	})
	if guest.err != nil {
		t.Fatalf("building the guest: %v", guest.err)
	}
	return guest.wasm
}

type buildError struct {
	err    error
	output string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.output }

// instantiate runs the guest module in a fresh runtime whose "webgpu" imports
// open with open.
func instantiate(t *testing.T, open func() (webgpu.Device, error)) (call func(name string, args ...uint64) uint64) {
	t.Helper()
	wasm := guestWasm(t)
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	host, err := webgpuhost.Instantiate(ctx, r, open)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	cfg := wazero.NewModuleConfig().WithStartFunctions("_initialize").WithStdout(os.Stdout).WithStderr(os.Stderr)
	mod, err := r.InstantiateWithConfig(ctx, wasm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return func(name string, args ...uint64) uint64 {
		t.Helper()
		res, err := mod.ExportedFunction(name).Call(ctx, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return res[0]
	}
}

func TestGuestNoGPU(t *testing.T) {
	call := instantiate(t, webgpuhost.NoGPU)
	if got := int32(call("open_status")); got != webgpu.CodeNoAdapter {
		t.Errorf("open_status() = %d; want %d (no adapter)", got, webgpu.CodeNoAdapter)
	}
}

func TestGuestMatVec(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, _ webgpu.Device) {
		call := instantiate(t, nil) // the guest opens and closes devices of its own
		for _, shape := range [][2]uint64{{1, 1}, {65, 33}, {300, 512}} {
			if got := call("matvec", shape[0], shape[1]); got != 0 {
				t.Errorf("guest matvec(%d, %d) = %d; want 0 (see stderr)", shape[0], shape[1], got)
			}
		}
	})
}

func TestGuestBadCalls(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, _ webgpu.Device) {
		call := instantiate(t, nil) // the guest opens and closes devices of its own
		if got := call("bad_calls"); got != 0 {
			t.Errorf("guest bad_calls() = %d; want 0 (see stderr)", got)
		}
	})
}
