package planner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// tinyHeader writes weights.TinyConfig's random weights as a real file with
// quality table q (nil: none) and reads its header back.
func tinyHeader(t testing.TB, q []weights.Quality) *weights.Header {
	t.Helper()
	meta := map[string]string{}
	if q != nil {
		weights.SetQuality(meta, q)
	}
	var buf bytes.Buffer
	if err := weights.Write(&buf, weights.Random(weights.TinyConfig(), 1), model.Tokenizer{}, meta); err != nil {
		t.Fatal(err)
	}
	h, err := weights.ParseHeader(buf.Bytes(), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// layoutHeader is the header of a weights file for c without its data. The
// planner reads only the header, and writing the weights of the larger
// configs below would take hundreds of megabytes.
func layoutHeader(c model.Config) *weights.Header {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	entries := weights.Plan(c, weights.F32)
	last := entries[len(entries)-1]
	return &weights.Header{Config: c, Entries: entries, DataSize: last.Offset + last.Length, DataStart: weights.Align}
}

// midConfig is a model the size of a small real one: 8 layers of d = 512,
// 168 MB of f32 weights at XL, 80 MB at S.
func midConfig() model.Config {
	return model.Config{Vocab: 8192, Dim: 512, Layers: 8, Heads: 8, FFNWidths: model.NestedWidths(2048),
		Context: 512, RopeTheta: 10000, NormEps: 1e-5}
}

var profiles = []string{"phone", "laptop-igpu", "desktop-dgpu", "browser-cpu", "headless-swiftshader"}

// profile reads testdata/NAME.json, refusing unknown fields so that a typo in
// a profile cannot pass as "not reported".
func profile(t testing.TB, name string) Capabilities {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var caps Capabilities
	if err := dec.Decode(&caps); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	if err := caps.Validate(); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	return caps
}

func uniform(p Plan, g int) bool {
	return slices.Min(p.Mix) == g && slices.Max(p.Mix) == g
}

// TestProfiles plans the mid-sized model on each example device. The
// expectations follow from the profiles' numbers: XL is 160 MiB to download
// and S 76 MiB; "balanced" allows 120 s of download and "fast" 20 s.
func TestProfiles(t *testing.T) {
	h := layoutHeader(midConfig())
	c := h.Config
	xl := h.Ranges(c.Uniform(c.Granularities() - 1))
	tests := []struct {
		profile string
		budget  Budget
		check   func(t *testing.T, p Plan, err error)
	}{
		// A discrete GPU with plenty of memory and no download limit runs XL.
		{"desktop-dgpu", Best, func(t *testing.T, p Plan, err error) {
			if err != nil || p.Backend != BackendGPU || !uniform(p, 3) {
				t.Errorf("plan = %s on %s, %v; want XL on gpu", p.Spec, p.Backend, err)
			}
		}},
		// 120 s at 10 Mbit/s is 150 MB: less than XL, more than S, so the
		// largest Mix'n'Match model under it.
		{"desktop-dgpu", Balanced, func(t *testing.T, p Plan, err error) {
			if err != nil || p.Backend != BackendGPU || uniform(p, 3) || uniform(p, 0) || p.DownloadBytes > 150e6 {
				t.Errorf("plan = %s on %s, %d bytes, %v; want a mix under 150 MB on gpu", p.Spec, p.Backend, p.DownloadBytes, err)
			}
			if !monotone(p.Mix, true) {
				t.Errorf("plan = %s; want granularity growing with depth", p.Spec)
			}
		}},
		// 20 s at 10 Mbit/s is 25 MB: not even S.
		{"laptop-igpu", Fast, wantConstraint(ConstraintDownload)},
		// 120 s at 4.5 Mbit/s is 67.5 MB, less than S.
		{"phone", Balanced, wantConstraint(ConstraintDownload)},
		// Without a download limit XL fits the phone's 2 GiB allowance twice
		// over, and 6 GB/s streams its 160 MiB at ~35 tokens/s.
		{"phone", Best, func(t *testing.T, p Plan, err error) {
			if err != nil || p.Backend != BackendGPU || !uniform(p, 3) {
				t.Errorf("plan = %s on %s, %v; want XL on gpu", p.Spec, p.Backend, err)
			}
		}},
		// 0.25 GFLOP/s does the ~36 MFLOP of an S step 7 times a second: not 10.
		{"browser-cpu", Balanced, wantConstraint(ConstraintSpeed)},
		// …but XL's ~80 MFLOP 3 times a second, enough for "best".
		{"browser-cpu", Best, func(t *testing.T, p Plan, err error) {
			if err != nil || p.Backend != BackendCPU || !uniform(p, 3) {
				t.Errorf("plan = %s on %s, %v; want XL on cpu", p.Spec, p.Backend, err)
			}
		}},
		{"headless-swiftshader", Best, func(t *testing.T, p Plan, err error) {
			if err != nil || p.Backend != BackendGPU || !p.SpeedMeasured {
				t.Errorf("plan = %s on %s (measured %v), %v; want gpu from its benchmark", p.Spec, p.Backend, p.SpeedMeasured, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+tt.budget.Name, func(t *testing.T) {
			p, err := Choose(profile(t, tt.profile), h, tt.budget)
			tt.check(t, p, err)
			if err == nil {
				if weights.Bytes(p.Ranges) != p.DownloadBytes || p.DownloadBytes > weights.Bytes(xl) {
					t.Errorf("download %d bytes, ranges hold %d, XL is %d", p.DownloadBytes, weights.Bytes(p.Ranges), weights.Bytes(xl))
				}
				if len(p.Reasons) < 3 {
					t.Errorf("reasons = %q; want the backend, the speed source and the choice explained", p.Reasons)
				}
			}
		})
	}
}

func wantConstraint(want Constraint) func(t *testing.T, p Plan, err error) {
	return func(t *testing.T, p Plan, err error) {
		t.Helper()
		var ce *ConstraintError
		if !errors.As(err, &ce) || ce.Constraint != want || !errors.Is(err, ErrNoFit) {
			t.Fatalf("Choose = %s, %v; want a %s constraint error", p.Spec, err, want)
		}
		if ce.Smallest == nil || !uniform(*ce.Smallest, 0) || !strings.Contains(err.Error(), string(want)) {
			t.Errorf("error %v: smallest plan %+v; want S, and the constraint named", err, ce.Smallest)
		}
	}
}

// TestHalvingMemory: less memory never buys a bigger plan, and at some point
// nothing fits, for the memory constraint.
func TestHalvingMemory(t *testing.T) {
	h := layoutHeader(midConfig())
	for _, name := range profiles {
		t.Run(name, func(t *testing.T) {
			caps := profile(t, name)
			caps.DeviceMemoryBytes = 16 << 30
			prev := math.MaxInt
			for ; caps.DeviceMemoryBytes >= 1<<20; caps.DeviceMemoryBytes /= 2 {
				p, err := Choose(caps, h, Best)
				if err != nil {
					var ce *ConstraintError
					if !errors.As(err, &ce) || (ce.Constraint != ConstraintMemory && ce.Constraint != ConstraintSpeed) {
						t.Fatalf("%d bytes of memory: %v; want a memory (or speed) constraint", caps.DeviceMemoryBytes, err)
					}
					prev = 0
					continue
				}
				if p.NonEmbeddingParams > prev {
					t.Fatalf("%d bytes of memory: plan %s has %d params, more than with twice the memory (%d)",
						caps.DeviceMemoryBytes, p.Spec, p.NonEmbeddingParams, prev)
				}
				if p.MemoryBytes > caps.DeviceMemoryBytes/2 {
					t.Fatalf("%d bytes of memory: plan needs %d", caps.DeviceMemoryBytes, p.MemoryBytes)
				}
				prev = p.NonEmbeddingParams
			}
			if prev != 0 {
				t.Errorf("a plan fits in 1 MiB of memory")
			}
		})
	}
}

// TestNoAdapterMeansCPU: without WebGPU every profile plans the CPU backend.
func TestNoAdapterMeansCPU(t *testing.T) {
	h := tinyHeader(t, nil)
	for _, name := range profiles {
		caps := profile(t, name)
		caps.Adapter = nil
		p, err := Choose(caps, h, Best)
		if err != nil || p.Backend != BackendCPU {
			t.Errorf("%s without adapter: plan on %q, %v; want cpu", name, p.Backend, err)
		}
		if !strings.Contains(p.Reasons[0], "no WebGPU adapter") {
			t.Errorf("%s without adapter: first reason %q", name, p.Reasons[0])
		}
		if _, err := Choose(caps, h, Budget{Backend: BackendGPU}); !isConstraint(err, ConstraintBackend) {
			t.Errorf("%s without adapter, gpu forced: %v; want a backend constraint", name, err)
		}
	}
}

func isConstraint(err error, c Constraint) bool {
	var ce *ConstraintError
	return errors.As(err, &ce) && ce.Constraint == c
}

// TestBindingLimit: an FFN matrix of the mid model at XL is 2048×512×4 =
// 4 MiB, the embedding and head 16 MiB, one layer's key cache 512×512×4 =
// 1 MiB. A binding limit below a matrix splits it; below the key cache,
// which attention binds whole, the GPU cannot run the model at all.
func TestBindingLimit(t *testing.T) {
	h := layoutHeader(midConfig())
	tests := []struct {
		limit      uint64
		backend    string
		splitFFN   int // pieces of layers.7.ffn_up, 0 if not split
		splitEmbed int
	}{
		{limit: 1 << 30, backend: BackendGPU},
		{limit: 8 << 20, backend: BackendGPU, splitEmbed: 2},
		{limit: 3 << 20, backend: BackendGPU, splitFFN: 2, splitEmbed: 6},
		{limit: 512 << 10, backend: BackendCPU},
	}
	for _, tt := range tests {
		caps := profile(t, "desktop-dgpu")
		caps.Adapter.Limits.MaxStorageBufferBindingSize = tt.limit
		caps.Benchmarks = append(caps.Benchmarks, Benchmark{Backend: BackendCPU, GBps: 5, GFLOPs: 2.5})
		p, err := Choose(caps, h, Best)
		if err != nil || p.Backend != tt.backend || !uniform(p, 3) {
			t.Errorf("binding limit %d: %s on %s, %v; want XL on %s", tt.limit, p.Spec, p.Backend, err, tt.backend)
			continue
		}
		pieces := map[string]int{}
		for _, s := range p.Splits {
			pieces[s.Tensor] = s.Pieces
			if s.Bytes <= int64(tt.limit) || int64(s.Pieces)*int64(tt.limit) < s.Bytes {
				t.Errorf("binding limit %d: split %+v", tt.limit, s)
			}
		}
		if pieces["layers.7.ffn_up"] != tt.splitFFN || pieces["embed"] != tt.splitEmbed || pieces["head"] != tt.splitEmbed {
			t.Errorf("binding limit %d: splits %v; want ffn_up in %d, embed and head in %d", tt.limit, pieces, tt.splitFFN, tt.splitEmbed)
		}
		if tt.splitEmbed > 0 && !slices.ContainsFunc(p.Reasons, func(r string) bool { return strings.Contains(r, "bound in") }) {
			t.Errorf("binding limit %d: reasons do not mention the split: %q", tt.limit, p.Reasons)
		}
		if tt.backend == BackendCPU && !slices.ContainsFunc(p.Reasons, func(r string) bool { return strings.Contains(r, "key cache") }) {
			t.Errorf("binding limit %d: reasons do not say why the GPU was ruled out: %q", tt.limit, p.Reasons)
		}
	}
	caps := profile(t, "desktop-dgpu")
	caps.Adapter.Limits.MaxStorageBufferBindingSize = 512 << 10
	if _, err := Choose(caps, h, Budget{Backend: BackendGPU}); !isConstraint(err, ConstraintBinding) {
		t.Errorf("gpu forced under a 512 KiB binding limit: %v; want a binding constraint", err)
	}
}

// TestSaveData: a user who asked to save data gets the smallest download
// that meets the other limits.
func TestSaveData(t *testing.T) {
	h := layoutHeader(midConfig())
	caps := profile(t, "laptop-igpu")
	caps.Network.SaveData = true
	p, err := Choose(caps, h, Best)
	if err != nil || !uniform(p, 0) {
		t.Fatalf("save-data plan = %s, %v; want S", p.Spec, err)
	}
	caps.Network.SaveData = false
	if p, err := Choose(caps, h, Best); err != nil || !uniform(p, 3) {
		t.Fatalf("plan = %s, %v; want XL", p.Spec, err)
	}
}

// TestWasmMemory: a model whose XL is over 4 GiB is planned below it on a
// device that reports no memory, and one whose S is over it is refused.
func TestWasmMemory(t *testing.T) {
	big := model.Config{Vocab: 32000, Dim: 2048, Layers: 16, Heads: 16, FFNWidths: model.NestedWidths(8192),
		Context: 2048, RopeTheta: 10000, NormEps: 1e-5}
	caps := Capabilities{Benchmarks: []Benchmark{{Backend: BackendCPU, GBps: 100, GFLOPs: 100}}}
	p, err := Choose(caps, layoutHeader(big), Budget{})
	if err != nil || uniform(p, 3) || p.MemoryBytes > WasmMemoryLimit {
		t.Fatalf("plan = %s, %d bytes, %v; want a mix under %d bytes", p.Spec, p.MemoryBytes, err, WasmMemoryLimit)
	}
	big.Layers = 64
	if _, err := Choose(caps, layoutHeader(big), Budget{}); !isConstraint(err, ConstraintWasmMemory) {
		t.Fatalf("64 layers: %v; want a wasm-memory constraint", err)
	}
}

// TestQualityTable: measured mixes keep their loss, others are interpolated
// by parameter count, and the table decides which way a mix grows.
func TestQualityTable(t *testing.T) {
	c := weights.TinyConfig()
	table := func(grow, shrink float64) []weights.Quality {
		q := []weights.Quality{{Mix: "S", LossNatsPerToken: 3.0}, {Mix: "M", LossNatsPerToken: 2.8},
			{Mix: "L", LossNatsPerToken: 2.7}, {Mix: "XL", LossNatsPerToken: 2.65},
			{Mix: "S,M,L", LossNatsPerToken: grow}, {Mix: "L,M,S", LossNatsPerToken: shrink}}
		for i := range q {
			m, _ := c.ParseMix(q[i].Mix)
			q[i].NonEmbeddingParams = c.NonEmbeddingParams(m)
		}
		return q
	}
	caps := Capabilities{Benchmarks: []Benchmark{{Backend: BackendCPU, GBps: 1, GFLOPs: 1}}}

	h := tinyHeader(t, table(2.75, 2.78))
	p, err := Evaluate(caps, h, Budget{}, model.Mix{0, 1, 2}, BackendCPU)
	if err != nil || p.ExpectedLoss != 2.75 {
		t.Errorf("Evaluate(S,M,L) loss = %g, %v; want the measured 2.75", p.ExpectedLoss, err)
	}
	// S,S,M has params between S and M: the loss lies on the line between them.
	mix := model.Mix{0, 0, 1}
	s, m := c.NonEmbeddingParams(c.Uniform(0)), c.NonEmbeddingParams(c.Uniform(1))
	want := 3.0 + float64(c.NonEmbeddingParams(mix)-s)/float64(m-s)*(2.8-3.0)
	if p, _ := Evaluate(caps, h, Budget{}, mix, BackendCPU); math.Abs(p.ExpectedLoss-want) > 1e-12 {
		t.Errorf("Evaluate(S,S,M) loss = %g; want %g", p.ExpectedLoss, want)
	}
	// A budget that stops short of L everywhere: the plan is monotone,
	// growing with depth because S,M,L measured better than L,M,S.
	budget := Budget{MaxDownloadBytes: weights.Bytes(h.Ranges(c.Uniform(2))) - 1}
	p, err = Choose(caps, h, budget)
	if err != nil || !monotone(p.Mix, true) || uniform(p, p.Mix[0]) {
		t.Fatalf("plan = %s, %v; want a mix growing with depth", p.Spec, err)
	}
	if !slices.ContainsFunc(p.Reasons, func(r string) bool { return strings.Contains(r, "later layers") }) {
		t.Errorf("reasons do not say why the mix grows with depth: %q", p.Reasons)
	}
	// The same table with the opposite measurement shrinks with depth.
	p, err = Choose(caps, tinyHeader(t, table(2.78, 2.75)), budget)
	if err != nil || !monotone(p.Mix, false) || uniform(p, p.Mix[0]) {
		t.Fatalf("plan = %s, %v; want a mix shrinking with depth", p.Spec, err)
	}
}

// TestDecodeWork counts the tiny model's decode step by hand: d = 32,
// 3 layers, vocab 256, FFN width 16 at S.
func TestDecodeWork(t *testing.T) {
	c := weights.TinyConfig()
	d := int64(32)
	perLayer := 2*d + 4*d*d + 3*16*d // norms, attention, FFN at S
	matrices := d + 3*perLayer + 256*d
	cache := 2 * 3 * 10 * d // keys and values of positions 0…9 in 3 layers
	w := DecodeWork(c, c.Uniform(0), 9)
	if want := (Work{Bytes: 4 * (matrices + d + cache), FLOPs: 2*matrices + 2*cache}); w != want {
		t.Errorf("DecodeWork(S, 9) = %+v; want %+v", w, want)
	}
}

// TestEvaluateCosts checks a plan's costs against the header.
func TestEvaluateCosts(t *testing.T) {
	h := tinyHeader(t, nil)
	c := h.Config
	caps := profile(t, "laptop-igpu")
	for _, mix := range []model.Mix{{0, 0, 0}, {3, 1, 0}, {3, 3, 3}} {
		for _, backend := range []string{BackendCPU, BackendGPU} {
			p, err := Evaluate(caps, h, Budget{}, mix, backend)
			if err != nil {
				t.Fatalf("Evaluate(%v, %s): %v", mix, backend, err)
			}
			ranges := h.Ranges(mix)
			if p.DownloadBytes != weights.Bytes(ranges) || !slices.Equal(p.Ranges, ranges) {
				t.Errorf("Evaluate(%v) download %d in %v; header says %v", mix, p.DownloadBytes, p.Ranges, ranges)
			}
			wasm := p.DownloadBytes + stateBytes(c)
			if p.MemoryBytes < wasm || (backend == BackendGPU && p.GPUMemoryBytes != wasm) {
				t.Errorf("Evaluate(%v, %s) memory %d (gpu %d); want at least weights + state %d", mix, backend, p.MemoryBytes, p.GPUMemoryBytes, wasm)
			}
			bench := caps.Benchmarks[0]
			if backend == BackendCPU {
				bench = assumed["cpu"]
			}
			w := DecodeWork(c, mix, (c.Context-1)/2)
			sec := bench.StepOverheadMicros*1e-6 + max(float64(w.Bytes)/bench.GBps, float64(w.FLOPs)/bench.GFLOPs)/1e9
			if math.Abs(p.PredictedTokensPerSecond*sec-1) > 1e-9 {
				t.Errorf("Evaluate(%v, %s) predicts %g tokens/s; want %g", mix, backend, p.PredictedTokensPerSecond, 1/sec)
			}
		}
	}
	if _, err := Evaluate(caps, h, Budget{}, model.Mix{0, 4, 0}, BackendCPU); err == nil || errors.Is(err, ErrNoFit) {
		t.Errorf("Evaluate with granularity 4 of 4: %v; want a bad-argument error", err)
	}
}

// TestGreedySearch: with 40 layers and 8 granularities there are C(47, 7) ≈
// 63 million counts, too many to try; the greedy search must still return a
// feasible plan at least as good as every feasible uniform one.
func TestGreedySearch(t *testing.T) {
	c := model.Config{Vocab: 256, Dim: 64, Layers: 40, Heads: 4, FFNWidths: []int{16, 32, 48, 64, 96, 128, 192, 256},
		Context: 128, RopeTheta: 10000, NormEps: 1e-5}
	h := layoutHeader(c)
	caps := Capabilities{Benchmarks: []Benchmark{{Backend: BackendCPU, GBps: 1, GFLOPs: 0.5}}}
	budget := Budget{MaxDownloadBytes: (weights.Bytes(h.Ranges(c.Uniform(5))) + weights.Bytes(h.Ranges(c.Uniform(6)))) / 2}
	p, err := Choose(caps, h, budget)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Evaluate(caps, h, budget, p.Mix, p.Backend); err != nil {
		t.Fatalf("greedy plan %s does not fit: %v", p.Spec, err)
	}
	if p.NonEmbeddingParams <= c.NonEmbeddingParams(c.Uniform(5)) {
		t.Errorf("greedy plan %s has %d params, no more than uniform g5 (%d)", p.Spec, p.NonEmbeddingParams, c.NonEmbeddingParams(c.Uniform(5)))
	}
}

// TestProfilesRoundTrip: every profile survives JSON encoding unchanged.
func TestProfilesRoundTrip(t *testing.T) {
	for _, name := range profiles {
		caps := profile(t, name)
		b, err := json.Marshal(caps)
		if err != nil {
			t.Fatal(err)
		}
		var back Capabilities
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		b2, _ := json.Marshal(back)
		if !bytes.Equal(b, b2) {
			t.Errorf("%s: round trip changed\n%s\nto\n%s", name, b, b2)
		}
	}
}

func TestBadInput(t *testing.T) {
	h := tinyHeader(t, nil)
	tests := []struct {
		name   string
		caps   Capabilities
		budget Budget
	}{
		{"negative memory", Capabilities{DeviceMemoryBytes: -1}, Budget{}},
		{"zero GB/s", Capabilities{Benchmarks: []Benchmark{{Backend: BackendCPU, GFLOPs: 1}}}, Budget{}},
		{"NaN GFLOP/s", Capabilities{Benchmarks: []Benchmark{{Backend: BackendCPU, GBps: 1, GFLOPs: math.NaN()}}}, Budget{}},
		{"two cpu benchmarks", Capabilities{Benchmarks: []Benchmark{{Backend: BackendCPU, GBps: 1, GFLOPs: 1}, {Backend: BackendCPU, GBps: 1, GFLOPs: 1}}}, Budget{}},
		{"unknown backend", Capabilities{}, Budget{Backend: "tpu"}},
		{"negative target", Capabilities{}, Budget{TargetTokensPerSecond: -1}},
		{"negative download", Capabilities{}, Budget{MaxDownloadBytes: -5}},
	}
	for _, tt := range tests {
		if _, err := Choose(tt.caps, h, tt.budget); err == nil || errors.Is(err, ErrNoFit) {
			t.Errorf("%s: Choose = %v; want an input error", tt.name, err)
		}
	}
	if _, err := Choose(Capabilities{}, nil, Budget{}); err == nil {
		t.Error("Choose without a header succeeded")
	}
}

func TestPreset(t *testing.T) {
	for _, name := range []string{"fast", "balanced", "best", "BEST"} {
		b, err := Preset(name)
		if err != nil || !strings.EqualFold(b.Name, name) {
			t.Errorf("Preset(%q) = %+v, %v", name, b, err)
		}
	}
	if _, err := Preset("cheap"); err == nil {
		t.Error(`Preset("cheap") succeeded`)
	}
	if !(Fast.TargetTokensPerSecond > Balanced.TargetTokensPerSecond && Balanced.TargetTokensPerSecond > Best.TargetTokensPerSecond) {
		t.Error("presets are not ordered fast > balanced > best in tokens/s")
	}
}

// BenchmarkChoose plans models of growing depth (4 granularities) on the
// laptop profile: every count of layers per granularity is priced.
func BenchmarkChoose(b *testing.B) {
	for _, layers := range []int{12, 48} {
		c := midConfig()
		c.Layers = layers
		h := layoutHeader(c)
		caps := profile(b, "laptop-igpu")
		b.Run(fmt.Sprintf("%dx4", layers), func(b *testing.B) {
			for b.Loop() {
				if _, err := Choose(caps, h, Best); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFastest: with the mix fixed, the backend is the one measured faster.
func TestFastest(t *testing.T) {
	h := tinyHeader(t, nil)
	mix := h.Config.Uniform(3)
	for _, tt := range []struct {
		name          string
		cpuGB, gpuGB  float64
		budgetBackend string
		want          string
	}{
		{"gpu faster", 1, 50, "", BackendGPU},
		{"cpu faster", 50, 1, "", BackendCPU},
		{"budget says gpu", 50, 1, BackendGPU, BackendGPU},
	} {
		t.Run(tt.name, func(t *testing.T) {
			caps := profile(t, "laptop-igpu")
			caps.Benchmarks = []Benchmark{
				{Backend: BackendCPU, GBps: tt.cpuGB, GFLOPs: tt.cpuGB, DurationMillis: 100},
				{Backend: BackendGPU, GBps: tt.gpuGB, GFLOPs: tt.gpuGB, DurationMillis: 100},
			}
			p, err := Fastest(caps, h, Budget{Backend: tt.budgetBackend}, mix)
			if err != nil {
				t.Fatal(err)
			}
			if p.Backend != tt.want || !slices.Equal(p.Mix, mix) {
				t.Fatalf("Fastest = %s on %s; want XL on %s", p.Spec, p.Backend, tt.want)
			}
		})
	}
	caps := profile(t, "browser-cpu")
	if p, err := Fastest(caps, h, Budget{}, mix); err != nil || p.Backend != BackendCPU {
		t.Fatalf("Fastest without an adapter = %s, %v; want cpu", p.Backend, err)
	}
}

// TestCachedBytesAreFree: a download limit between S's and XL's sizes rules
// XL out, until XL's bytes are cached (nothing left to fetch) or S's are
// (only the rest counts); the plan says what is cached.
func TestCachedBytesAreFree(t *testing.T) {
	h := layoutHeader(midConfig())
	c := h.Config
	xl, s := h.Ranges(c.Uniform(c.Granularities()-1)), h.Ranges(c.Uniform(0))
	caps := profile(t, "desktop-dgpu")
	budget := Budget{Name: "test", MaxDownloadBytes: weights.Bytes(s) + (weights.Bytes(xl)-weights.Bytes(s))/2}
	before, err := Choose(caps, h, budget)
	if err != nil || uniform(before, 3) {
		t.Fatalf("nothing cached: plan %s, %v; want less than XL", before.Spec, err)
	}
	caps.CachedRanges = xl
	after, err := Choose(caps, h, budget)
	if err != nil || !uniform(after, 3) || after.FetchBytes != 0 || after.DownloadBytes != weights.Bytes(xl) {
		t.Fatalf("XL cached: plan %s, fetch %d of %d, %v; want XL with nothing to fetch", after.Spec, after.FetchBytes, after.DownloadBytes, err)
	}
	if !slices.ContainsFunc(after.Reasons, func(r string) bool { return strings.Contains(r, "is cached already") }) {
		t.Errorf("reasons %q do not say what is cached", after.Reasons)
	}
	caps.CachedRanges = s
	part, err := Choose(caps, h, budget)
	if err != nil || !uniform(part, 3) || part.FetchBytes != weights.Bytes(xl)-weights.Bytes(s) {
		t.Errorf("S cached: plan %s, fetch %d of %d, %v; want XL, fetching what S lacks", part.Spec, part.FetchBytes, part.DownloadBytes, err)
	}
	if got := subtractRanges([]weights.Range{{Offset: 0, Length: 10}, {Offset: 20, Length: 10}}, []weights.Range{{Offset: 5, Length: 20}}); !slices.Equal(got, []weights.Range{{Offset: 0, Length: 5}, {Offset: 25, Length: 5}}) {
		t.Errorf("subtractRanges = %v", got)
	}
}
