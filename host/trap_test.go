package host

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
)

// generateAfter loads the tiny model into m and generates a few greedy tokens:
// the instance still works.
func generateAfter(t *testing.T, m *Module) {
	t.Helper()
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatalf("Load after: %v", err)
	}
	res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 3, Options: abi.Options{Backend: "cpu"}}, nil)
	if err != nil || len(res.Tokens) != 3 {
		t.Fatalf("Generate after: %v, %v", res, err)
	}
}

// TestAllocOutOfMemory: alloc asked for more than the module's memory can
// grow to returns 0 and leaves the module working; it trapped the module
// before (issue 15, defect 14). The host caps memory at 256 MiB, as wasm32
// caps it at 4 GiB, so the test need not grow a 4 GiB memory.
func TestAllocOutOfMemory(t *testing.T) {
	ctx := context.Background()
	m := startWith(t, Config{GPU: webgpuNone, MemoryLimit: 256 << 20})
	var got []uint64
	for range 3 {
		res, err := m.invoke(ctx, "alloc", 100<<20)
		if err != nil {
			t.Fatalf("alloc(100 MiB) after %d: %v", len(got), err)
		}
		got = append(got, res[0])
	}
	if got[0] == 0 || got[2] != 0 {
		t.Fatalf("alloc(100 MiB) three times = %#x; want the first to succeed and the third (past 256 MiB) to return 0", got)
	}
	for _, p := range got {
		if p != 0 {
			m.invoke(ctx, "free", p)
		}
	}
	generateAfter(t, m)
}

func webgpuNone() (webgpu.Device, error) { return nil, webgpu.ErrNoAdapter }

// TestTrappedInstance: once an export traps, the host closes the instance
// and every later call says so, instead of calling into a module whose state
// is broken (issue 15, defect 14).
func TestTrappedInstance(t *testing.T) {
	ctx := context.Background()
	m := startWith(t, Config{GPU: func() (webgpu.Device, error) { panic("a broken host import") }})
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatal(err)
	}
	_, err := m.Reset(ctx, abi.Options{Backend: "gpu"})
	if !errors.Is(err, ErrTrapped) || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("Reset with an import that panics = %v; want ErrTrapped naming reset", err)
	}
	for name, call := range map[string]func() error{
		"Reset":  func() error { _, err := m.Reset(ctx, abi.Options{Backend: "cpu"}); return err },
		"Prompt": func() error { _, err := m.Prompt(ctx, "x"); return err },
		"SetMix": func() error { _, err := m.SetMix(ctx, "S"); return err },
		"Step":   func() error { _, _, _, err := m.Step(ctx); return err },
	} {
		if err := call(); !errors.Is(err, ErrTrapped) {
			t.Errorf("%s after a trap = %v; want ErrTrapped", name, err)
		}
	}
}

// TestReentrantCalls: a host that calls back into the module from inside an
// import (here, the webgpu open import) gets ERR_STATE for every call, and
// the export it interrupted finishes as if nothing happened. Before, the
// inner set_mix switched the mix under reset (issue 15, defect 15).
func TestReentrantCalls(t *testing.T) {
	ctx := context.Background()
	var m *Module
	var inner []error
	m = startWith(t, Config{GPU: func() (webgpu.Device, error) {
		_, err := m.SetMix(ctx, "XL")
		inner = append(inner, err)
		_, err = m.Prompt(ctx, "x")
		inner = append(inner, err)
		_, _, _, err = m.Step(ctx)
		inner = append(inner, err)
		file := tinyFile(t, weights.Random(weights.TinyConfig(), 1))
		_, err = m.HeaderLen(ctx, file[:weights.Preamble])
		inner = append(inner, err)
		return nil, webgpu.ErrNoAdapter
	}})
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reset(ctx, abi.Options{Backend: "gpu"}); !errors.Is(err, ErrBackend) {
		t.Fatalf("Reset(gpu) with no adapter = %v; want ErrBackend", err)
	}
	if len(inner) != 4 {
		t.Fatalf("the import ran %d calls; want 4", len(inner))
	}
	for i, err := range inner {
		if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "re-entrant") {
			t.Errorf("re-entrant call %d = %v; want ERR_STATE", i, err)
		}
	}
	// The mix is still S: reset on the CPU needs nothing more.
	if _, err := m.Reset(ctx, abi.Options{Backend: "cpu"}); err != nil {
		t.Fatalf("Reset(cpu) after the re-entrant calls = %v", err)
	}
	if _, err := m.Prompt(ctx, testPrompt); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m.Step(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestModelPastMemoryLimit: under a host's memory limit, load_header refuses
// a model whose weights would not fit (ERR_FORMAT, too large), where the
// first feed would trap on allocation (issue 15, defect 14).
func TestModelPastMemoryLimit(t *testing.T) {
	ctx := context.Background()
	c := weights.TinyConfig()
	c.Dim, c.Heads, c.Layers, c.FFNWidths = 512, 8, 4, model.NestedWidths(4096) // 118 MB of f32 weights
	h := weights.Header{Config: c, Entries: weights.Plan(c, weights.F32)}
	last := h.Entries[len(h.Entries)-1]
	h.DataSize = last.Offset + last.Length
	head, err := weights.EncodeHeader(&h)
	if err != nil {
		t.Fatal(err)
	}
	m := startWith(t, Config{GPU: webgpuNone, MemoryLimit: 128 << 20})
	if _, err := m.LoadHeader(ctx, head, -1); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "can hold") {
		t.Fatalf("LoadHeader(%d-byte model) under a 128 MiB limit = %v; want ERR_FORMAT, too large", h.DataSize, err)
	}
	generateAfter(t, m)
}
