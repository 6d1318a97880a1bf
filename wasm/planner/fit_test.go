package planner

import (
	"errors"
	"math"
	"testing"

	"github.com/matedge/matedge/model"
)

// gpuTruth is a GPU whose decode step takes exactly overhead + dispatches ·
// dispatch + rows · row + bytes/rate, in seconds and bytes per second.
type gpuTruth struct{ overhead, dispatch, row, rate float64 }

func (g gpuTruth) seconds(c model.Config, mix model.Mix, pos int) float64 {
	return g.overhead + float64(GPUDispatches(c))*g.dispatch + float64(MatrixRows(c, mix))*g.row +
		float64(DecodeWork(c, mix, pos).Bytes)/g.rate
}

// sample is what the host's benchmark records for mix of c on g.
func (g gpuTruth) sample(c model.Config, mix model.Mix, pos int) DecodeSample {
	return DecodeSample{Seconds: g.seconds(c, mix, pos), Work: DecodeWork(c, mix, pos), Dispatches: GPUDispatches(c),
		Rows: MatrixRows(c, mix)}
}

// defaultShape is the embedded default model's shape; fitShape is the
// second shape the host's GPU benchmark times (host.gpuFitConfig: three
// times the width, twice the layers and FFN widths).
func defaultShape() model.Config {
	return model.Config{Vocab: 2048, Dim: 128, Layers: 4, Heads: 4, FFNWidths: []int{96, 192, 384, 768},
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
}

func fitShape() model.Config {
	return model.Config{Vocab: 256, Dim: 384, Layers: 8, Heads: 4, FFNWidths: []int{192, 384, 768, 1536},
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
}

// fourSamples are the host's GPU benchmark on g: S and XL of both shapes.
func fourSamples(g gpuTruth) []DecodeSample {
	var s []DecodeSample
	for _, c := range []model.Config{defaultShape(), fitShape()} {
		s = append(s, g.sample(c, c.Uniform(0), 5), g.sample(c, c.Uniform(c.Granularities()-1), 5))
	}
	return s
}

func TestGPUDispatches(t *testing.T) {
	// wasm/engine/gpu.go's forward for one token: embed; per layer rmsnorm,
	// q, k, v, rope ×2, attention, o, add_rmsnorm, gate, up, swiglu, down;
	// add_rmsnorm, the head and argmax (or sample). wasm/engine's
	// TestGPUDispatchCount counts what the backend really records.
	for _, tc := range []struct {
		c    model.Config
		want int
	}{{defaultShape(), 56}, {fitShape(), 108}, {midConfig(), 108}} {
		if got := GPUDispatches(tc.c); got != tc.want {
			t.Errorf("GPUDispatches(%d layers) = %d; want %d", tc.c.Layers, got, tc.want)
		}
	}
}

// TestFitGPUDecode: steps that follow the model exactly give back its
// terms, and the plan for a third shape — the -large bench model, which the
// fit never saw — predicts that shape's true speed.
func TestFitGPUDecode(t *testing.T) {
	truth := gpuTruth{overhead: 1.5e-3, dispatch: 40e-6, row: 400e-9, rate: 2e9}
	b, ok := FitGPUDecode(fourSamples(truth))
	if !ok {
		t.Fatal("FitGPUDecode: not ok")
	}
	close := func(got, want float64) bool { return math.Abs(got-want) <= 1e-6*want }
	if !close(b.StepOverheadMicros, 1500) || !close(b.DispatchMicros, 40) || !close(b.RowNanos, 400) || !close(b.GBps, 2) ||
		b.Backend != BackendGPU {
		t.Errorf("FitGPUDecode = %+v; want 1500 µs overhead, 40 µs per dispatch, 400 ns per row, 2 GB/s", b)
	}

	large := model.Config{Vocab: 256, Dim: 512, Layers: 8, Heads: 8, FFNWidths: model.NestedWidths(2048),
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
	h := layoutHeader(large)
	caps := Capabilities{Adapter: &Adapter{Description: "llvmpipe", Type: "cpu", Fallback: true},
		Benchmarks: []Benchmark{{Backend: BackendCPU, GBps: 4, GFLOPs: 2}, b}}
	for g := range large.Granularities() {
		mix := large.Uniform(g)
		p, err := Evaluate(caps, h, Budget{}, mix, BackendGPU)
		if err != nil {
			t.Fatal(err)
		}
		want := 1 / truth.seconds(large, mix, typicalPosition(large))
		if math.Abs(p.PredictedTokensPerSecond/want-1) > 1e-6 {
			t.Errorf("large %s on the GPU: predicted %.4g tokens/s; want %.4g", large.GranularityName(g), p.PredictedTokensPerSecond, want)
		}
	}
}

// TestFitGPUDecodeNoNegativeTerm: steps whose best unconstrained fit has a
// negative overhead (small steps faster than the rate allows, as noise
// makes them) get no overhead rather than a negative one, and still a
// positive rate.
func TestFitGPUDecodeNoNegativeTerm(t *testing.T) {
	s := fourSamples(gpuTruth{dispatch: 100e-6, row: 100e-9, rate: 1e9})
	s[0].Seconds *= 0.5 // the default model's S, far faster than the rest say
	b, ok := FitGPUDecode(s)
	if !ok || b.StepOverheadMicros < 0 || b.DispatchMicros < 0 || b.RowNanos < 0 || !(b.GBps > 0) {
		t.Fatalf("FitGPUDecode = %+v, %v; want no negative term", b, ok)
	}
}

// TestFitGPUDecodeOneShape: with every step of one shape the overhead and
// the per-dispatch cost cannot be told apart, nor bytes from rows; the fit
// keeps what it can and still reproduces both measured steps.
func TestFitGPUDecodeOneShape(t *testing.T) {
	c := defaultShape()
	truth := gpuTruth{overhead: 2e-3, dispatch: 50e-6, row: 200e-9, rate: 0.5e9}
	s := []DecodeSample{truth.sample(c, c.Uniform(0), 5), truth.sample(c, c.Uniform(3), 5)}
	b, ok := FitGPUDecode(s)
	if !ok {
		t.Fatal("FitGPUDecode: not ok")
	}
	for _, x := range s {
		got := b.StepOverheadMicros*1e-6 + float64(x.Dispatches)*b.DispatchMicros*1e-6 + float64(x.Rows)*b.RowNanos*1e-9 +
			float64(x.Work.Bytes)/(b.GBps*1e9)
		if math.Abs(got/x.Seconds-1) > 1e-6 {
			t.Errorf("fit %+v gives %g s for a step measured at %g s", b, got, x.Seconds)
		}
	}
}

func TestFitGPUDecodeBadSamples(t *testing.T) {
	c := defaultShape()
	good := gpuTruth{rate: 1e9}.sample(c, c.Uniform(0), 5)
	zero := good
	zero.Seconds = 0
	for _, s := range [][]DecodeSample{nil, {zero}, {good, {Seconds: 1e-3}}} {
		if b, ok := FitGPUDecode(s); ok {
			t.Errorf("FitGPUDecode(%+v) = %+v; want not ok", s, b)
		}
	}
}

// TestDispatchCostGPUOnly: a measured dispatch and row cost slow the GPU by
// the dispatches the backend records and the rows it reads per step, and
// the CPU not at all.
func TestDispatchCostGPUOnly(t *testing.T) {
	c := defaultShape()
	h := layoutHeader(c)
	base := Capabilities{Adapter: &Adapter{Description: "llvmpipe", Type: "cpu", Fallback: true},
		Benchmarks: []Benchmark{{Backend: BackendCPU, GBps: 4, GFLOPs: 2}, {Backend: BackendGPU, GBps: 1, GFLOPs: 1}}}
	with := base
	with.Benchmarks = []Benchmark{{Backend: BackendCPU, GBps: 4, GFLOPs: 2, DispatchMicros: 100, RowNanos: 300},
		{Backend: BackendGPU, GBps: 1, GFLOPs: 1, DispatchMicros: 100, RowNanos: 300}}
	mix := c.Uniform(0)
	for _, backend := range []string{BackendCPU, BackendGPU} {
		p0, err0 := Evaluate(base, h, Budget{}, mix, backend)
		p1, err1 := Evaluate(with, h, Budget{}, mix, backend)
		if err := errors.Join(err0, err1); err != nil {
			t.Fatal(err)
		}
		added := 1/p1.PredictedTokensPerSecond - 1/p0.PredictedTokensPerSecond
		want := 0.0
		if backend == BackendGPU {
			want = 56*100e-6 + float64(2048+4*(4*128+3*96))*300e-9
		}
		if math.Abs(added-want) > 1e-9 {
			t.Errorf("%s: 100 µs per dispatch and 300 ns per row add %g s per step; want %g", backend, added, want)
		}
	}
	for _, b := range []Benchmark{{Backend: BackendGPU, GBps: 1, GFLOPs: 1, DispatchMicros: -1},
		{Backend: BackendGPU, GBps: 1, GFLOPs: 1, RowNanos: math.NaN()}} {
		bad := Capabilities{Benchmarks: []Benchmark{b}}
		if err := bad.Validate(); !errors.Is(err, ErrCapabilities) {
			t.Errorf("Validate(%+v): %v; want ErrCapabilities", b, err)
		}
	}
}
