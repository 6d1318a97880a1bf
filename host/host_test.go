package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/matedge/matedge/host/internal/testmodule"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

const testPrompt = "It is a truth universally acknowledged"

// start instantiates the module once per test, offering it this machine's GPU.
func start(t *testing.T) *Module { return startWith(t, Config{}) }

// startWith instantiates the module with cfg; the runtime closes with the test.
func startWith(t *testing.T, cfg Config) *Module {
	t.Helper()
	ctx := context.Background()
	rt, err := NewRuntime(ctx, testmodule.Bytes(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	m, err := rt.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tinyFile(t *testing.T, w *model.Weights) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := weights.Write(&buf, w, model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// nativeGenerate is the reference: model.Forward and model.Sampler in this
// process, no module, no engine.
func nativeGenerate(w *model.Weights, mix model.Mix, prompt string, n int, o abi.Options) []int {
	tok := model.Tokenizer{}
	s := model.NewState(w.Config)
	sampler := model.Sampler{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, RNG: model.NewRNG(o.Seed)}
	pos := 0
	var logits []float32
	for _, t := range tok.Encode([]byte(prompt)) {
		logits = model.Forward(w, s, mix, t, pos)
		pos++
	}
	var out []int
	for range n {
		next := sampler.Sample(logits)
		out = append(out, next)
		logits = model.Forward(w, s, mix, next, pos)
		pos++
	}
	return out
}

func generate(t *testing.T, file []byte, mix string, o abi.Options, n int) (*Result, error) {
	t.Helper()
	ctx := context.Background()
	m := start(t)
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), mix); err != nil {
		return nil, err
	}
	return m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: n, Options: o}, nil)
}

// TestModuleMatchesNative is the module-under-wazero leg of "same prompt and
// seed, same tokens on every host".
func TestModuleMatchesNative(t *testing.T) {
	w := weights.Random(weights.TinyConfig(), 7)
	file := tinyFile(t, w)
	c := w.Config
	for _, tt := range []struct {
		mix  string
		want model.Mix
		opts abi.Options
	}{
		{"S", c.Uniform(0), abi.Options{}},
		{"XL", c.Uniform(3), abi.Options{}},
		{"S,L,XL", model.Mix{0, 2, 3}, abi.Options{}},
		{"M", c.Uniform(1), abi.Options{Seed: 42, Temperature: 0.9, TopK: 20, TopP: 0.9}},
	} {
		for _, kernels := range []string{KernelsSIMD, KernelsGo} {
			t.Run(tt.mix+"/"+kernels, func(t *testing.T) {
				ctx := context.Background()
				m := startWith(t, Config{Kernels: kernels})
				if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), tt.mix); err != nil {
					t.Fatal(err)
				}
				res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 24, Options: tt.opts}, nil)
				if err != nil {
					t.Fatal(err)
				}
				want := nativeGenerate(w, tt.want, testPrompt, 24, tt.opts)
				if !slices.Equal(res.Tokens, want) {
					t.Fatalf("module tokens %v\nnative tokens %v", res.Tokens, want)
				}
				if res.Backend != "cpu" {
					t.Fatalf("backend = %q; want cpu", res.Backend)
				}
			})
		}
	}
}

// TestPrefixOnly: a model running S reads only the file's S prefix.
func TestPrefixOnly(t *testing.T) {
	w := weights.Random(weights.TinyConfig(), 7)
	file := tinyFile(t, w)
	h, err := weights.ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	sEnd := h.Ranges(h.Config.Uniform(0))[0].End()
	garbage := slices.Clone(file)
	for i := sEnd; i < int64(len(garbage)); i++ {
		garbage[i] = byte(i*7 + 3)
	}
	want, err := generate(t, file, "S", abi.Options{}, 16)
	if err != nil {
		t.Fatal(err)
	}
	got, err := generate(t, garbage, "S", abi.Options{}, 16)
	if err != nil {
		t.Fatalf("S on a file with garbage after its prefix: %v", err)
	}
	if !slices.Equal(got.Tokens, want.Tokens) {
		t.Fatalf("S tokens changed with garbage after the S prefix: %v vs %v", got.Tokens, want.Tokens)
	}
	if _, err := generate(t, garbage, "XL", abi.Options{}, 16); !errors.Is(err, ErrChecksum) {
		t.Fatalf("XL on the garbage file: %v; want a checksum error", err)
	}

	// The same with XL rows that are valid but different: S unchanged, XL changed.
	w2 := weights.Random(weights.TinyConfig(), 7)
	for _, l := range w2.Layers {
		for i := w2.Config.FFNWidths[0] * w2.Config.Dim; i < len(l.Down); i++ {
			l.Down[i] *= -3
		}
	}
	other := tinyFile(t, w2)
	if !bytes.Equal(other[h.DataStart:sEnd], file[h.DataStart:sEnd]) {
		t.Fatal("changing rows beyond S changed the S prefix's data")
	}
	xl, _ := generate(t, file, "XL", abi.Options{}, 16)
	xl2, err := generate(t, other, "XL", abi.Options{}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(xl.Tokens, xl2.Tokens) {
		t.Fatal("XL tokens did not change when XL rows changed")
	}
}

// TestMixDiffers: a per-layer Mix runs and gives other tokens than every uniform model.
func TestMixDiffers(t *testing.T) {
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	opts := abi.Options{Seed: 3, Temperature: 1}
	mixed, err := generate(t, file, "XL,S,M", opts, 32)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"S", "M", "L", "XL"} {
		res, err := generate(t, file, g, opts, 32)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(res.Tokens, mixed.Tokens) {
			t.Errorf("mix XL,S,M gave the same 32 tokens as uniform %s", g)
		}
	}
}

func TestLiveSwitch(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	m := start(t)
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatal(err)
	}
	info, err := m.SetMix(ctx, "XL")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := weights.ParseHeader(file, int64(len(file)))
	sEnd := h.Ranges(h.Config.Uniform(0))[0].End()
	if len(info.Missing) != 1 || info.Missing[0].Offset != sEnd || info.Missing[0].End() != int64(len(file)) {
		t.Fatalf("S→XL missing = %v; want exactly [%d, %d)", info.Missing, sEnd, len(file))
	}
	if _, err := m.Reset(ctx, abi.Options{}); !errors.Is(err, ErrMissing) {
		t.Fatalf("reset before feeding XL's rows = %v; want ErrMissing", err)
	}
	if err := m.Feed(ctx, sEnd, file[sEnd:]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetMix(ctx, "XL"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Generate(ctx, Request{Prompt: "x", MaxTokens: 4}, nil); err != nil {
		t.Fatal(err)
	}
	if info, _ := m.SetMix(ctx, "S"); len(info.Missing) != 0 {
		t.Fatalf("XL→S missing = %v; want nothing", info.Missing)
	}
}

func TestABIMismatch(t *testing.T) {
	path, err := testmodule.Build("./testdata/badabi")
	if err != nil {
		t.Fatal(err)
	}
	wasm := readFile(t, path)
	ctx := context.Background()
	rt, err := NewRuntime(ctx, wasm, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	_, err = rt.Instantiate(ctx)
	if !errors.Is(err, ErrABI) {
		t.Fatalf("Instantiate(module with ABI 999) = %v; want ErrABI", err)
	}
	t.Log(err)
}

// TestBadCalls: a host bug (bad pointer, wrong order) is an error status from
// the module, never a trap or a crash.
func TestBadCalls(t *testing.T) {
	ctx := context.Background()
	m := start(t)
	if _, err := m.call(ctx, "feed", 0, 1<<31, 100); !errors.Is(err, ErrArg) {
		t.Fatalf("feed(bad pointer) = %v; want ErrArg", err)
	}
	if _, err := m.call(ctx, "load_header", 8, 1<<20, 0); !errors.Is(err, ErrArg) {
		t.Fatalf("load_header(bad pointer) = %v; want ErrArg", err)
	}
	if _, _, _, err := m.Step(ctx); !errors.Is(err, ErrState) {
		t.Fatalf("step before load = %v; want ErrState", err)
	}
	if _, err := m.SetMix(ctx, "S"); !errors.Is(err, ErrState) {
		t.Fatalf("set_mix before load = %v; want ErrState", err)
	}
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S,S"); !errors.Is(err, ErrArg) {
		t.Fatalf("mix with 2 of 3 layers = %v; want ErrArg", err)
	}
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reset(ctx, abi.Options{Backend: "tpu"}); err == nil {
		t.Fatal("reset with backend tpu succeeded")
	}
}

// TestPlan drives the module's plan export: a device without WebGPU gets the
// CPU, a fixed mix is kept, and an impossible budget still returns the
// smallest plan with the constraint it breaks.
func TestPlan(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	m := start(t)
	if _, err := m.ReadHeader(ctx, bytes.NewReader(file), int64(len(file))); err != nil {
		t.Fatal(err)
	}
	caps := planner.Capabilities{LogicalCores: 2, DeviceMemoryBytes: 1 << 30,
		Benchmarks: []planner.Benchmark{{Backend: "cpu", GBps: 1, GFLOPs: 1, DurationMillis: 100}}}
	res, err := m.Plan(ctx, abi.PlanRequest{Capabilities: caps, Budget: planner.Budget{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Backend != "cpu" || res.Plan.Spec != "XL" || res.Error != "" {
		t.Fatalf("plan = %s on %s (%s); want XL on cpu", res.Plan.Spec, res.Plan.Backend, res.Error)
	}
	res, err = m.Plan(ctx, abi.PlanRequest{Capabilities: caps, Mix: "S,M,L"})
	if err != nil || res.Plan.Spec != "S,M,L" {
		t.Fatalf("plan with a fixed mix = %+v, %v; want S,M,L", res.Plan, err)
	}
	res, err = m.Plan(ctx, abi.PlanRequest{Capabilities: caps, Budget: planner.Budget{MaxDownloadBytes: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Constraint != "download" || res.Plan.Spec != "S" {
		t.Fatalf("plan under a 1000-byte download budget = %s, constraint %q; want S with constraint download", res.Plan.Spec, res.Constraint)
	}
	if _, err := start(t).Plan(ctx, abi.PlanRequest{}); !errors.Is(err, ErrState) {
		t.Fatalf("plan before load_header = %v; want ErrState", err)
	}
}

// TestSpeculativeInModule: with a draft, the module's greedy tokens are the
// mix's own, and its sampled tokens are model.Speculator's for the same seed.
func TestSpeculativeInModule(t *testing.T) {
	w := weights.Random(weights.TinyConfig(), 7)
	file := tinyFile(t, w)
	c := w.Config
	var tok model.Tokenizer
	prompt := tok.Encode([]byte(testPrompt))
	for _, tt := range []struct {
		draft string
		k     int
		opts  abi.Options
	}{
		{"S", 1, abi.Options{}},
		{"S", 4, abi.Options{}},
		{"M,S,L", 3, abi.Options{Backend: "auto"}},
		{"S", 3, abi.Options{Temperature: 0.8, Seed: 9}},
		// k chosen round by round from costs measured in the module, and
		// the draft chosen by the module: greedy output is still the mix's.
		{"S", 0, abi.Options{}},
		{"auto", 0, abi.Options{}},
		{"auto", 2, abi.Options{}},
	} {
		t.Run(fmt.Sprintf("%s/k%d/t%g", tt.draft, tt.k, tt.opts.Temperature), func(t *testing.T) {
			o := tt.opts
			o.Draft, o.DraftTokens = tt.draft, tt.k
			res, err := generate(t, file, "XL", o, 24)
			if err != nil {
				t.Fatal(err)
			}
			want := nativeGenerate(w, c.Uniform(3), testPrompt, 24, tt.opts)
			if tt.opts.Temperature > 0 {
				draft, err := c.ParseMix(tt.draft)
				if err != nil {
					t.Fatal(err)
				}
				sp := model.Speculator{Weights: w, Draft: draft, Verify: c.Uniform(3), K: tt.k, Shared: true, Temperature: o.Temperature, RNG: model.NewRNG(o.Seed)}
				want, _ = sp.Generate(prompt, 24)
			}
			if !slices.Equal(res.Tokens, want) {
				t.Fatalf("module tokens %v\nwant %v", res.Tokens, want)
			}
			if res.Backend != "cpu" {
				t.Fatalf("backend = %q; want cpu", res.Backend)
			}
		})
	}
	for _, o := range []abi.Options{
		{Draft: "S", DraftTokens: 65},
		{Draft: "S", DraftTokens: -1},
		{DraftTokens: 3},
		{Draft: "Q"},
		{Draft: "S", Temperature: 0.8, TopK: 5},
	} {
		if _, err := generate(t, file, "XL", o, 4); err == nil {
			t.Errorf("options %+v: no error", o)
		}
	}
	// S is the narrowest: there is nothing to draft with.
	if _, err := generate(t, file, "S", abi.Options{Draft: "auto"}, 4); !errors.Is(err, ErrArg) {
		t.Errorf("draft auto for S: %v; want ErrArg", err)
	}
}

// TestSpeculationCounts: speculation's counts after each step of a greedy
// speculative generation obey the identity of wasm/ABI.md: each round emits
// its accepted proposals and one verifier token, so the step that starts a
// round comes right after the earlier rounds' accepted + rounds tokens; the
// tokens are still the mix's own, and a sequence without a draft reports
// zeros.
func TestSpeculationCounts(t *testing.T) {
	w := weights.Random(weights.TinyConfig(), 7)
	file := tinyFile(t, w)
	c := w.Config
	ctx := context.Background()
	const n = 16
	want := nativeGenerate(w, c.Uniform(3), testPrompt, n, abi.Options{})
	counts := func(i abi.SpeculationInfo) [4]int { return [4]int{i.Proposed, i.Accepted, i.Rounds, i.K} }
	for _, tt := range []struct {
		draft string
		k     int
	}{{"S", 3}, {"S", 0}, {"XL", 3}} {
		draft, k := tt.draft, tt.k
		t.Run(fmt.Sprintf("%s/k%d", draft, k), func(t *testing.T) {
			m := start(t)
			if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "XL"); err != nil {
				t.Fatal(err)
			}
			if info, err := m.Speculation(ctx); err != nil || len(info.Draft) != 0 || counts(info) != [4]int{} {
				t.Fatalf("speculation before reset = %+v, %v; want zeros", info, err)
			}
			if _, err := m.Reset(ctx, abi.Options{Draft: draft, DraftTokens: k}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Prompt(ctx, testPrompt); err != nil {
				t.Fatal(err)
			}
			var got []int
			var prev abi.SpeculationInfo
			for len(got) < n {
				token, _, done, err := m.Step(ctx)
				if err != nil || done {
					t.Fatalf("step %d: done %v, %v", len(got), done, err)
				}
				got = append(got, token)
				info, err := m.Speculation(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(info.Draft, []string{draft, draft, draft}) {
					t.Fatalf("draft %v; want %s in every layer", info.Draft, draft)
				}
				switch info.Rounds {
				case prev.Rounds:
					if counts(info) != counts(prev) {
						t.Fatalf("token %d: counts %+v changed without a round (were %+v)", len(got), info, prev)
					}
				case prev.Rounds + 1:
					// This step started a round: the earlier rounds' tokens are all out.
					if before := prev.Accepted + prev.Rounds; before != len(got)-1 {
						t.Fatalf("token %d started round %d after %d tokens; the earlier rounds emitted accepted %d + rounds %d = %d",
							len(got), info.Rounds, len(got)-1, prev.Accepted, prev.Rounds, before)
					}
					proposed, accepted := info.Proposed-prev.Proposed, info.Accepted-prev.Accepted
					if proposed != info.K || accepted < 0 || accepted > proposed || (k > 0 && info.K != k) {
						t.Fatalf("round %d: %d proposed, %d accepted, k %d; want k = proposed (= %d when fixed), 0 ≤ accepted ≤ proposed", info.Rounds, proposed, accepted, info.K, k)
					}
				default:
					t.Fatalf("token %d: rounds went from %d to %d in one step", len(got), prev.Rounds, info.Rounds)
				}
				if len(got) > info.Accepted+info.Rounds {
					t.Fatalf("token %d: more tokens than the rounds emitted (%+v)", len(got), info)
				}
				prev = info
			}
			if !slices.Equal(got, want) {
				t.Fatalf("speculative tokens %v\nwant the mix's %v", got, want)
			}
			if prev.Rounds == 0 {
				t.Errorf("no rounds for %d tokens", n)
			}
			// A draft that is the mix itself has every proposal accepted.
			if draft == "XL" && (prev.Accepted != prev.Proposed || prev.Rounds > (n+k)/(k+1)) {
				t.Errorf("draft = mix: %+v; want every proposal accepted, %d tokens a round", prev, k+1)
			}
			// A reset without a draft starts from zeros.
			if _, err := m.Reset(ctx, abi.Options{}); err != nil {
				t.Fatal(err)
			}
			if info, err := m.Speculation(ctx); err != nil || len(info.Draft) != 0 || counts(info) != [4]int{} {
				t.Errorf("speculation after a plain reset = %+v, %v; want zeros", info, err)
			}
		})
	}
}
