package host

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
)

// TestBenchShape: with only the header in the module, bench_start and
// bench_step run a whole sequence of S on synthetic weights; the real model
// still misses every byte afterwards, and generates what it generates
// without a benchmark.
func TestBenchShape(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	m := start(t)
	var e *Error
	if _, err := m.BenchStart(ctx, "", "cpu"); !errors.As(err, &e) || e.Code != abi.ErrState {
		t.Errorf("bench_start before load_header = %v; want ERR_STATE", err)
	}
	info, err := m.ReadHeader(ctx, bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.BenchStep(ctx); !errors.As(err, &e) || e.Code != abi.ErrState {
		t.Errorf("bench_step before bench_start = %v; want ERR_STATE", err)
	}
	if _, err := m.BenchStart(ctx, "XXL", "cpu"); !errors.As(err, &e) || e.Code != abi.ErrArg {
		t.Errorf("bench_start(XXL) = %v; want ERR_ARG", err)
	}
	for _, mix := range []string{"", "S,M,XL"} {
		backend, err := m.BenchStart(ctx, mix, "cpu")
		if err != nil || backend != "cpu" {
			t.Fatalf("bench_start(%q) = %q, %v", mix, backend, err)
		}
		steps := 0
		for ; ; steps++ {
			done, err := m.BenchStep(ctx)
			if err != nil {
				t.Fatalf("bench_step %d: %v", steps, err)
			}
			if done {
				break
			}
		}
		// A one-token prompt: context steps fill the cache.
		if want := info.Header.Config.Context; steps != want {
			t.Errorf("bench(%q): %d steps before DONE; want %d", mix, steps, want)
		}
	}
	if err := m.BenchEnd(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.BenchStep(ctx); !errors.As(err, &e) || e.Code != abi.ErrState {
		t.Errorf("bench_step after bench_end = %v; want ERR_STATE", err)
	}
	mixInfo, err := m.SetMix(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mixInfo.Missing, mixInfo.Needed) {
		t.Errorf("after the benchmark S misses %v; want all it needs, %v", mixInfo.Missing, mixInfo.Needed)
	}
	if _, err := m.BenchStart(ctx, "S", "cpu"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.FetchMix(ctx, bytes.NewReader(file), info, "S"); err != nil {
		t.Fatal(err)
	}
	got, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(t, file, "S", abi.Options{}, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Tokens, want.Tokens) {
		t.Errorf("after a benchmark: %v; without one: %v", got.Tokens, want.Tokens)
	}
}

// TestBenchShapeVision: a vision model's bench_step classifies an image.
func TestBenchShapeVision(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyVisionConfig(), 7))
	m := start(t)
	if _, err := m.ReadHeader(ctx, bytes.NewReader(file), int64(len(file))); err != nil {
		t.Fatal(err)
	}
	if _, err := m.BenchStart(ctx, "S", "cpu"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if done, err := m.BenchStep(ctx); err != nil || done {
			t.Fatalf("bench_step = %v, %v", done, err)
		}
	}
}
