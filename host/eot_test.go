package host

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
)

// TestEOT: a model whose header names an end-of-text token stops there, on
// every backend, with the finish reason "eot" and without the token; the
// same model without one generates past it.
func TestEOT(t *testing.T) {
	ctx := context.Background()
	plain := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	free, err := generate(t, plain, "XL", abi.Options{}, 24)
	if err != nil {
		t.Fatal(err)
	}
	// The end-of-text token: one the model produces mid-way; it stops at its first occurrence.
	eot := free.Tokens[len(free.Tokens)/2]
	first := slices.Index(free.Tokens, eot)
	file, err := weights.SetEOT(plain, eot)
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{"cpu", "auto"} {
		m := start(t)
		if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "XL"); err != nil {
			t.Fatal(err)
		}
		res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 24, Options: abi.Options{Backend: backend}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Reason != "eot" || !slices.Equal(res.Tokens, free.Tokens[:first]) {
			t.Errorf("%s: reason %q, tokens %v; want eot after %v (end-of-text %d)", res.Backend, res.Reason, res.Tokens, free.Tokens[:first], eot)
		}
	}
}
