package host

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matedge/matedge/wasm/planner"
)

func TestBenchmarkCache(t *testing.T) {
	bc := BenchmarkCache{Path: filepath.Join(t.TempDir(), "sub", "benchmarks.json"), MaxAge: time.Hour}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if _, ok := bc.Get("k", now); ok {
		t.Fatal("an empty cache answered")
	}
	b := planner.Benchmark{Backend: "cpu", GFLOPs: 3.5, GBps: 7}
	if err := bc.Put("k", b, now); err != nil {
		t.Fatal(err)
	}
	if got, ok := bc.Get("k", now.Add(30*time.Minute)); !ok || got != b {
		t.Fatalf("Get = %+v, %v; want %+v", got, ok, b)
	}
	if _, ok := bc.Get("k", now.Add(2*time.Hour)); ok {
		t.Error("an entry older than MaxAge answered")
	}
	if _, ok := bc.Get("k", now.Add(-time.Minute)); ok {
		t.Error("an entry measured in the future (a clock set back) answered")
	}
	if _, ok := bc.Get("other", now); ok {
		t.Error("another key answered")
	}
	// Writing later drops expired entries.
	bc.Put("new", b, now.Add(3*time.Hour))
	if len(bc.read()) != 1 {
		t.Errorf("expired entries kept: %v", bc.read())
	}
	os.WriteFile(bc.Path, []byte("{not json"), 0o644)
	if _, ok := bc.Get("new", now.Add(3*time.Hour)); ok {
		t.Error("a corrupt file answered")
	}
	if err := bc.Put("k", b, now); err != nil {
		t.Errorf("Put over a corrupt file: %v", err)
	}
}

func TestBenchmarkKey(t *testing.T) {
	caps := planner.Capabilities{LogicalCores: 2, Adapter: &planner.Adapter{Vendor: "mesa", Description: "llvmpipe"}}
	a := BenchmarkKey("cpu", caps, []byte("module"), []byte("model"))
	for name, b := range map[string]string{
		"gpu":          BenchmarkKey("gpu", caps, []byte("module"), []byte("model")),
		"other module": BenchmarkKey("cpu", caps, []byte("module2"), []byte("model")),
		"other model":  BenchmarkKey("cpu", caps, []byte("module"), []byte("model2")),
	} {
		if a == b {
			t.Errorf("%s: same key %q", name, a)
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{5, 1, 100}); m != 5 {
		t.Errorf("median of 5, 1, 100 = %v", m)
	}
	if m := median([]float64{4, 1, 3, 100}); m != 3.5 {
		t.Errorf("median of 4, 1, 3, 100 = %v", m)
	}
}
