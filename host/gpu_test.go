package host

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/matedge/matedge/host/internal/testmodule"
	"github.com/matedge/matedge/host/webgpuhost"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/engine"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

// The whole GPU chain: the module under wazero, its gpu backend, the webgpu
// imports served by webgpuhost, the native device (lavapipe in CI). Greedy
// tokens must equal model.Forward's in this process — on the same weights
// for f32, on weights rounded to half (engine.RoundHalf) for f16.

// gpuModule instantiates the module with d as its GPU.
func gpuModule(t *testing.T, d webgpu.Device) *Module {
	return startWith(t, Config{GPU: func() (webgpu.Device, error) { return d, nil }})
}

// shareModule builds the module once in the parent, so that the child
// processes of webgputest.Run do not each build it again.
func shareModule(t *testing.T) {
	t.Helper()
	if os.Getenv(ModuleEnv) == "" {
		t.Setenv(ModuleEnv, testmodule.Path(t))
	}
}

// greedyReference continues prompt ids with model.Forward and argmax.
func greedyReference(w *model.Weights, mix model.Mix, prompt []int, n int) []int {
	s := model.NewState(w.Config)
	var logits []float32
	for pos, t := range prompt {
		logits = model.Forward(w, s, mix, t, pos)
	}
	var out []int
	for pos := len(prompt); len(out) < n; pos++ {
		next := model.Argmax(logits)
		out = append(out, next)
		logits = model.Forward(w, s, mix, next, pos)
	}
	return out
}

func TestGPUMatchesCPU(t *testing.T) {
	shareModule(t)
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		ctx := context.Background()
		tiny := weights.Random(weights.TinyConfig(), 7)
		def, _, err := weights.Load(bytes.NewReader(defaultmodel.Bytes), int64(len(defaultmodel.Bytes)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name  string
			w     *model.Weights
			file  []byte
			mixes []string // beside every uniform granularity
			n     int
		}{
			{"tiny", tiny, tinyFile(t, tiny), []string{"S,L,XL", "XL,M,S"}, 24},
			{"default", def, defaultmodel.Bytes, []string{"S,M,L,XL", "XL,S,XL,S"}, 32},
		} {
			m := gpuModule(t, d)
			if _, _, err := m.Load(ctx, bytes.NewReader(tt.file), int64(len(tt.file)), "XL"); err != nil {
				t.Fatal(err)
			}
			c := tt.w.Config
			specs := append([]string(nil), tt.mixes...)
			for g := range c.Granularities() {
				specs = append(specs, c.GranularityName(g))
			}
			for _, precision := range []string{"f32", "f16"} {
				ref := tt.w
				if precision == "f16" {
					ref = engine.RoundHalf(tt.w)
				}
				for _, spec := range specs {
					mix, err := c.ParseMix(spec)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := m.SetMix(ctx, spec); err != nil {
						t.Fatal(err)
					}
					res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: tt.n, Options: abi.Options{Backend: "gpu", Precision: precision}}, nil)
					if err != nil {
						t.Fatalf("%s %s %s: %v", tt.name, precision, spec, err)
					}
					if res.Backend != "gpu" {
						t.Fatalf("backend = %q; want gpu", res.Backend)
					}
					if want := greedyReference(ref, mix, res.PromptTokens, tt.n); !slices.Equal(res.Tokens, want) {
						t.Errorf("%s %s %s: module on the GPU %v\nmodel.Forward       %v", tt.name, precision, spec, res.Tokens, want)
					}
				}
			}
		}
	})
}

// countingReads counts the readbacks a module asks its GPU for.
type countingReads struct {
	webgpu.Device
	reads, bytes int
}

func (c *countingReads) Read(b webgpu.Buffer, offset, size uint64) (webgpu.Ticket, error) {
	c.reads++
	c.bytes += int(size)
	return c.Device.Read(b, offset, size)
}

// TestGPUReadbacksModule: through the module too, each generated token costs
// one 4-byte readback, sampled or greedy.
func TestGPUReadbacksModule(t *testing.T) {
	shareModule(t)
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		ctx := context.Background()
		counter := &countingReads{Device: d}
		m := gpuModule(t, counter)
		file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
		if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "M"); err != nil {
			t.Fatal(err)
		}
		for _, o := range []abi.Options{{Backend: "gpu"}, {Backend: "gpu", Temperature: 0.9, TopK: 20, TopP: 0.9, Seed: 5}} {
			counter.reads, counter.bytes = 0, 0
			res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 16, Options: o}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if counter.reads != len(res.Tokens) || counter.bytes != 4*len(res.Tokens) {
				t.Errorf("%+v: %d tokens took %d readbacks of %d bytes; want one of 4 bytes each", o, len(res.Tokens), counter.reads, counter.bytes)
			}
		}
	})
}

// TestNoGPU: a host that offers no GPU gets ErrBackend for gpu, and auto runs on the CPU.
func TestNoGPU(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, testmodule.Bytes(t), Config{GPU: webgpuhost.NoGPU})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reset(ctx, abi.Options{Backend: "gpu"}); !errors.Is(err, ErrBackend) {
		t.Fatalf("reset with backend gpu and no GPU = %v; want ErrBackend", err)
	}
	if backend, err := m.Reset(ctx, abi.Options{Backend: "auto"}); err != nil || backend != "cpu" {
		t.Fatalf("reset with backend auto and no GPU = %q, %v; want cpu", backend, err)
	}
}

// TestGPUSpeculativeModule: self-speculative greedy decoding on the GPU
// backend of the module under wazero gives model.Forward's tokens for the
// verifier alone, for the default model and random weights, several drafts
// and k, k chosen round by round, draft auto, and f16.
func TestGPUSpeculativeModule(t *testing.T) {
	shareModule(t)
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		ctx := context.Background()
		tiny := weights.Random(weights.TinyConfig(), 7)
		def, _, err := weights.Load(bytes.NewReader(defaultmodel.Bytes), int64(len(defaultmodel.Bytes)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name   string
			w      *model.Weights
			file   []byte
			verify string
		}{
			{"tiny", tiny, tinyFile(t, tiny), "XL"},
			{"default", def, defaultmodel.Bytes, "XL"},
			{"default", def, defaultmodel.Bytes, "L,XL,XL,M"},
		} {
			m := gpuModule(t, d)
			if _, _, err := m.Load(ctx, bytes.NewReader(tt.file), int64(len(tt.file)), "XL"); err != nil {
				t.Fatal(err)
			}
			mix, err := tt.w.Config.ParseMix(tt.verify)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.SetMix(ctx, tt.verify); err != nil {
				t.Fatal(err)
			}
			for _, o := range []abi.Options{
				{Draft: "S", DraftTokens: 4},
				{Draft: "M", DraftTokens: 2},
				{Draft: "S", DraftTokens: 7, Precision: "f16"},
				// k round by round: the first sequence times its rounds
				// (k 0 and 1 in turn), the second chooses k from them,
				// whatever lavapipe's costs make it choose; draft auto
				// times the granularities not timed yet, in turn.
				{Draft: "S"},
				{Draft: "S"},
				{Draft: "auto"},
			} {
				o.Backend = "gpu"
				const n = 24 // the tiny context holds the prompt and 26 more
				res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: n, Options: o}, nil)
				if err != nil {
					t.Fatalf("%s %s %+v: %v", tt.name, tt.verify, o, err)
				}
				ref := tt.w
				if o.Precision == "f16" {
					ref = engine.RoundHalf(tt.w)
				}
				if want := greedyReference(ref, mix, res.PromptTokens, n); res.Backend != "gpu" || !slices.Equal(res.Tokens, want) {
					t.Errorf("%s %s %+v: module on the GPU (%s) %v\nmodel.Forward %v", tt.name, tt.verify, o, res.Backend, res.Tokens, want)
				}
			}
		}
	})
}
