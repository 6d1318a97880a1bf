package engine

import (
	"errors"
	"math"
	"testing"

	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzResetOptions decodes reset's msgpack Options as the module's reset
// export does and hands them to the engine: a document is refused (a
// decoding error, or ErrArg/ErrBackend from Reset) or starts a sequence
// that steps, never a panic; options Reset accepts are in range. The corpus
// is seeded at every range's edges (wasm/ABI.md's Options table), with
// float64 where a float32 belongs, and with truncated and trailing bytes.
func FuzzResetOptions(f *testing.F) {
	doc := func(m map[string]any) []byte {
		b, err := msgpack.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, temperature := range []float32{0, 0.0099999, 0.01, 1, 100, 100.00001, -0.0, -1, nan, inf, math.SmallestNonzeroFloat32, math.MaxFloat32} {
		f.Add(doc(map[string]any{"temperature": temperature, "top_p": float32(1), "seed": uint64(1)}))
	}
	for _, topP := range []float32{0, 1, 1.0000001, -0.0, nan, -inf} {
		f.Add(doc(map[string]any{"temperature": float32(1), "top_p": topP}))
	}
	for _, topK := range []int64{-1, 0, 1, 255, 256, 257, math.MaxInt64, math.MinInt64} {
		f.Add(doc(map[string]any{"temperature": float32(1), "top_k": topK}))
	}
	for _, seed := range []uint64{0, math.MaxUint64} {
		f.Add(doc(map[string]any{"seed": seed}))
	}
	for _, backend := range []string{"", "cpu", "gpu", "auto", "CPU", "tpu"} {
		f.Add(doc(map[string]any{"backend": backend, "precision": "f16"}))
	}
	for _, k := range []int64{-1, 0, 1, 64, 65, math.MaxInt64} {
		f.Add(doc(map[string]any{"draft": "S", "draft_tokens": k}))
		f.Add(doc(map[string]any{"draft_tokens": k}))
	}
	for _, draft := range []string{"S", "XL", "S,M,L", "s,m,xl", "auto", "Q", ""} {
		f.Add(doc(map[string]any{"draft": draft, "temperature": float32(0.5), "top_k": 0, "top_p": float32(0)}))
	}
	full := doc(map[string]any{"temperature": float32(0.8), "top_k": 40, "top_p": float32(0.95), "seed": 1, "backend": "cpu"})
	f.Add(doc(map[string]any{"temperature": 0.5, "top_p": 0.5})) // float64: refused
	f.Add(doc(map[string]any{"temperature": nil, "top_p": nil}))
	f.Add(full[:len(full)/2])
	f.Add(append(full, 0xc0))
	f.Add([]byte{})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}) // a map claiming 2^32-1 pairs

	e := loaded(f, weightsFile(f, weights.Random(weights.TinyConfig(), 3)), nil)
	mix, err := e.ParseMix("M")
	if err != nil {
		f.Fatal(err)
	}
	if err := e.SetMix(mix); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var o abi.Options
		if err := msgpack.Unmarshal(b, &o); err != nil {
			return // the module answers ERR_ARG
		}
		if err := e.Reset(o); err != nil {
			if !errors.Is(err, ErrArg) && !errors.Is(err, ErrBackend) {
				t.Fatalf("Reset(%+v) = %v; want nil, ErrArg or ErrBackend", o, err)
			}
			return
		}
		if err := CheckOptions(o); err != nil {
			t.Fatalf("Reset accepted %+v, which CheckOptions refuses: %v", o, err)
		}
		if _, err := e.Prompt([]byte("ab")); err != nil {
			t.Fatalf("Prompt after Reset(%+v) = %v", o, err)
		}
		for range 2 {
			token, err := e.Step()
			if err != nil || token < 0 || token >= weights.TinyConfig().Vocab {
				t.Fatalf("Step after Reset(%+v) = %d, %v", o, token, err)
			}
		}
	})
}
