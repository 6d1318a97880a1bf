package host

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/engine"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
)

// nativeRouted is routed decoding's reference: model.ForwardRouted and
// model.Sampler in this process, picks capped at mix; it returns each
// generated token's widths too.
func nativeRouted(w *model.Weights, mix model.Mix, budget float64, prompt string, n int, o abi.Options) ([]int, [][]int) {
	pick := w.Threshold(w.RouteThreshold(budget))
	capped := func(l int, x []float32) int { return min(pick(l, x), mix[l]) }
	s := model.NewState(w.Config)
	sampler := model.Sampler{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, RNG: model.NewRNG(o.Seed)}
	picks := make([]int, w.Config.Layers)
	var logits []float32
	pos := 0
	for _, t := range (&model.Tokenizer{}).Encode([]byte(prompt)) {
		logits = model.ForwardRouted(w, s, capped, t, pos, picks)
		pos++
	}
	var out []int
	var widths [][]int
	for range n {
		next := sampler.Sample(logits)
		out = append(out, next)
		widths = append(widths, slices.Clone(picks))
		logits = model.ForwardRouted(w, s, capped, next, pos, picks)
		pos++
	}
	return out, widths
}

// TestRoutedInModule is the wazero leg of "routed decoding gives the same
// tokens on every host": the module's tokens and reported widths are the
// native reference's.
func TestRoutedInModule(t *testing.T) {
	w := weights.RandomRouted(weights.Random(weights.TinyConfig(), 7), 3)
	file := tinyFile(t, w)
	c := w.Config
	for _, tt := range []struct {
		mix  string
		opts abi.Options
	}{
		{"XL", abi.Options{Route: 0.6}},
		{"S,L,XL", abi.Options{Route: 0.5, Backend: "cpu"}},
		{"XL", abi.Options{Route: 0.6, Seed: 5, Temperature: 0.9, TopK: 20}},
	} {
		t.Run(tt.mix, func(t *testing.T) {
			res, err := generate(t, file, tt.mix, tt.opts, 20)
			if err != nil {
				t.Fatal(err)
			}
			mix, _ := c.ParseMix(tt.mix)
			want, widths := nativeRouted(w, mix, float64(tt.opts.Route), testPrompt, 20, tt.opts)
			if !slices.Equal(res.Tokens, want) {
				t.Fatalf("module tokens %v\nnative tokens %v", res.Tokens, want)
			}
			seen := map[int]bool{}
			for i := range widths {
				if !slices.Equal(res.Widths[i], widths[i]) {
					t.Fatalf("token %d: module widths %v, native %v", i, res.Widths[i], widths[i])
				}
				for _, g := range widths[i] {
					seen[g] = true
				}
			}
			if len(seen) < 2 {
				t.Errorf("the routers picked only %v: the test tests nothing", seen)
			}
			if res.Backend != "cpu" {
				t.Fatalf("backend = %q; want cpu", res.Backend)
			}
		})
	}
}

// TestGPURoutedInModule is the GPU leg under wazero: the module's gpu
// backend routes on the device (the route kernel) and gives the native
// reference's tokens and widths, greedy and sampled, f32 and f16 (against
// weights rounded to half, the routers kept f32 as the backend keeps them).
func TestGPURoutedInModule(t *testing.T) {
	shareModule(t)
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		ctx := context.Background()
		w := weights.RandomRouted(weights.Random(weights.TinyConfig(), 7), 3)
		file := tinyFile(t, w)
		c := w.Config
		m := gpuModule(t, d)
		if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "XL"); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			mix  string
			opts abi.Options
		}{
			{"XL", abi.Options{Route: 0.6}},
			{"S,L,XL", abi.Options{Route: 0.5}},
			{"XL", abi.Options{Route: 0.6, Seed: 5, Temperature: 0.9, TopK: 20}},
			{"XL", abi.Options{Route: 0.6, Precision: "f16"}},
		} {
			tt.opts.Backend = "gpu"
			if _, err := m.SetMix(ctx, tt.mix); err != nil {
				t.Fatal(err)
			}
			res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 20, Options: tt.opts}, nil)
			if err != nil {
				t.Fatalf("%s %+v: %v", tt.mix, tt.opts, err)
			}
			if res.Backend != "gpu" {
				t.Fatalf("backend = %q; want gpu", res.Backend)
			}
			ref := w
			if tt.opts.Precision == "f16" {
				ref = engine.RoundHalf(w)
			}
			mix, _ := c.ParseMix(tt.mix)
			want, widths := nativeRouted(ref, mix, float64(tt.opts.Route), testPrompt, 20, tt.opts)
			if !slices.Equal(res.Tokens, want) {
				t.Fatalf("%s %+v: module on the GPU %v\nnative %v", tt.mix, tt.opts, res.Tokens, want)
			}
			seen := map[int]bool{}
			for i := range widths {
				if !slices.Equal(res.Widths[i], widths[i]) {
					t.Fatalf("%s %+v token %d: module widths %v, native %v", tt.mix, tt.opts, i, res.Widths[i], widths[i])
				}
				for _, g := range widths[i] {
					seen[g] = true
				}
			}
			if len(seen) < 2 {
				t.Errorf("%s %+v: the routers picked only %v: the case tests nothing", tt.mix, tt.opts, seen)
			}
		}
	})
}
