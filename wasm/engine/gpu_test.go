package engine

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
)

// The gpu backend against the cpu backend, natively (the host tests run the
// same through the wasm module). Each test runs in a child process
// (webgputest.Run) so that a GPU crash cannot hide the others.

// counting wraps a device and counts what crosses to it: bytes written and
// reads. pendingOnce makes the first ReadResult of every read say "not yet",
// as a browser's would.
type counting struct {
	webgpu.Device
	limit       uint64 // reported maxStorageBufferBindingSize, when not 0
	written     int
	reads       int
	readBytes   int
	pendingOnce bool
	dispatches  int
	polled      map[webgpu.Ticket]bool
	live        map[webgpu.Buffer]uint64 // buffers created and not destroyed, with their sizes
}

func (c *counting) Dispatch(p webgpu.Pipeline, params []byte, bindings []webgpu.Binding, groups [3]uint32) error {
	c.dispatches++
	return c.Device.Dispatch(p, params, bindings, groups)
}

func (c *counting) CreateBuffer(size uint64) (webgpu.Buffer, error) {
	b, err := c.Device.CreateBuffer(size)
	if err == nil {
		if c.live == nil {
			c.live = map[webgpu.Buffer]uint64{}
		}
		c.live[b] = size
	}
	return b, err
}

func (c *counting) DestroyBuffer(b webgpu.Buffer) error {
	delete(c.live, b)
	return c.Device.DestroyBuffer(b)
}

// liveBytes is the memory of the buffers alive now.
func (c *counting) liveBytes() uint64 {
	var n uint64
	for _, size := range c.live {
		n += size
	}
	return n
}

func (c *counting) Info() webgpu.Info {
	info := c.Device.Info()
	if c.limit != 0 {
		info.Limits.MaxStorageBufferBindingSize = c.limit
	}
	return info
}

func (c *counting) WriteBuffer(b webgpu.Buffer, offset uint64, data []byte) error {
	c.written += len(data)
	return c.Device.WriteBuffer(b, offset, data)
}

func (c *counting) Read(b webgpu.Buffer, offset, size uint64) (webgpu.Ticket, error) {
	c.reads++
	c.readBytes += int(size)
	return c.Device.Read(b, offset, size)
}

func (c *counting) ReadResult(t webgpu.Ticket, dst []byte) (bool, error) {
	if c.pendingOnce && !c.polled[t] {
		if c.polled == nil {
			c.polled = map[webgpu.Ticket]bool{}
		}
		c.polled[t] = true
		return false, nil
	}
	if err := webgpu.Wait(c.Device, t, dst); err != nil {
		return false, err
	}
	return true, nil
}

func weightsFile(t testing.TB, w *model.Weights) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := weights.Write(&buf, w, model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// loaded returns an engine with all of file fed, running on device d (nil: no GPU).
func loaded(t testing.TB, file []byte, d webgpu.Device) *Engine {
	t.Helper()
	e := &Engine{OpenGPU: func() (webgpu.Device, error) {
		if d == nil {
			return nil, webgpu.ErrNoAdapter
		}
		return d, nil
	}}
	if _, err := e.LoadHeader(file, int64(len(file))); err != nil {
		t.Fatal(err)
	}
	if err := e.Feed(0, file); err != nil {
		t.Fatal(err)
	}
	return e
}

// tokens generates n tokens after prompt with mix and o.
func tokens(t testing.TB, e *Engine, mix string, o Options, prompt string, n int) []int {
	t.Helper()
	m, err := e.ParseMix(mix)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMix(m); err != nil {
		t.Fatal(err)
	}
	if err := e.Reset(o); err != nil {
		t.Fatal(err)
	}
	if o.Backend != "" && e.Backend() != o.Backend {
		t.Fatalf("Reset(%+v) runs on %s", o, e.Backend())
	}
	if _, err := e.Prompt([]byte(prompt)); err != nil {
		t.Fatal(err)
	}
	var out []int
	for len(out) < n {
		tok, err := e.Step()
		if errors.Is(err, ErrPending) {
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", len(out), err)
		}
		out = append(out, tok)
	}
	return out
}

const gpuPrompt = "It is a truth universally acknowledged"

// mixes are every uniform granularity of the tiny config and two per-layer mixes.
var mixes = []string{"S", "M", "L", "XL", "S,L,XL", "XL,M,S"}

func TestGPUMatchesCPU(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		w := weights.Random(weights.TinyConfig(), 7)
		file, halfFile := weightsFile(t, w), weightsFile(t, RoundHalf(w))
		onGPU := loaded(t, file, d)
		cpu, halfCPU := loaded(t, file, nil), loaded(t, halfFile, nil)
		for _, precision := range []string{"f32", "f16"} {
			ref := cpu
			if precision == "f16" {
				ref = halfCPU
			}
			for _, mix := range mixes {
				want := tokens(t, ref, mix, Options{Backend: "cpu"}, gpuPrompt, 24)
				got := tokens(t, onGPU, mix, Options{Backend: "gpu", Precision: precision}, gpuPrompt, 24)
				if !slices.Equal(got, want) {
					t.Errorf("%s %s: gpu tokens %v\ncpu tokens %v", precision, mix, got, want)
				}
			}
		}
	})
}

// TestGPUShaping: the penalties on the device (penalize) give the cpu
// backend's greedy tokens, and min-p in the sample kernel its sampled ones;
// auto runs them on the gpu. The options are TestShaping's, each of which
// changes the tokens.
func TestGPUShaping(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		w := weights.Random(weights.TinyConfig(), 3)
		file := weightsFile(t, w)
		onGPU, cpu := loaded(t, file, d), loaded(t, file, nil)
		const n = 40 // after shapingPrompt, within the context of 64
		for _, o := range shapingCases {
			for _, mix := range []string{"S", "XL"} {
				o.Backend = "cpu"
				want := tokens(t, cpu, mix, o, shapingPrompt, n)
				o.Backend = "gpu"
				if got := tokens(t, onGPU, mix, o, shapingPrompt, n); !slices.Equal(got, want) {
					t.Errorf("%s %+v: gpu tokens %v\ncpu tokens %v", mix, o, got, want)
				}
			}
		}
		// They no longer send auto to the cpu: it takes the device that opens.
		auto := Options{Backend: "auto", RepetitionPenalty: 1.3, MinP: 0.1}
		if err := onGPU.Reset(auto); err != nil || onGPU.Backend() != "gpu" {
			t.Errorf("Reset(%+v) = %v on %s; want the gpu", auto, err, onGPU.Backend())
		}
	})
}

// TestGPUSplit runs with a storage binding of 8 KiB, so the embedding and
// head (32 KiB) are four slabs and every FFN matrix (16 KiB) two: XL's FFN
// spans both, and its down projection sums two partial products.
func TestGPUSplit(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		w := weights.Random(weights.TinyConfig(), 7)
		file := weightsFile(t, w)
		small := &counting{Device: d, limit: 8 << 10}
		onGPU, cpu := loaded(t, file, small), loaded(t, file, nil)
		for _, mix := range mixes {
			want := tokens(t, cpu, mix, Options{Backend: "cpu"}, gpuPrompt, 24)
			got := tokens(t, onGPU, mix, Options{Backend: "gpu"}, gpuPrompt, 24)
			if !slices.Equal(got, want) {
				t.Errorf("%s with 8 KiB bindings: gpu tokens %v\ncpu tokens %v", mix, got, want)
			}
		}
		for name, slabs := range map[string]int{"embed": 4, "head": 4, "layers.0.ffn_down": 2, "layers.0.query": 1} {
			if got := len(onGPU.gpu.tensors[name].slabs); got != slabs {
				t.Errorf("%s in %d slabs; want %d", name, got, slabs)
			}
		}
		if onGPU.gpu.batch != 8 {
			t.Errorf("prefill batch = %d; want 8 (scores [8][4][64] f32 fill 8 KiB)", onGPU.gpu.batch)
		}
		tooSmall := loaded(t, file, &counting{Device: d, limit: 1 << 10})
		m, _ := tooSmall.ParseMix("S")
		tooSmall.SetMix(m)
		if err := tooSmall.Reset(Options{Backend: "gpu"}); !errors.Is(err, ErrBackend) {
			t.Errorf("Reset with 1 KiB bindings (the KV cache needs 8) = %v; want ErrBackend", err)
		}
	})
}

// TestGPUReadbacks: a step reads back the 4-byte token and nothing else,
// prompt or decode; a read the host has not completed makes Step return
// ErrPending, and the next Step finishes it.
func TestGPUReadbacks(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		file := weightsFile(t, weights.Random(weights.TinyConfig(), 7))
		dev := &counting{Device: d, pendingOnce: true}
		e := loaded(t, file, dev)
		m, _ := e.ParseMix("M")
		e.SetMix(m)
		for _, o := range []Options{{Backend: "gpu"}, {Backend: "gpu", Temperature: 0.8, TopK: 20, Seed: 3}} {
			if err := e.Reset(o); err != nil {
				t.Fatal(err)
			}
			e.Prompt([]byte(gpuPrompt))
			for step := range 10 {
				dev.reads, dev.readBytes = 0, 0
				if _, err := e.Step(); !errors.Is(err, ErrPending) {
					t.Fatalf("%+v step %d: first call = %v; want ErrPending", o, step, err)
				}
				if _, err := e.Step(); err != nil {
					t.Fatalf("%+v step %d: second call = %v", o, step, err)
				}
				if dev.reads != 1 || dev.readBytes != 4 {
					t.Fatalf("%+v step %d read %d times, %d bytes; want once, 4 bytes", o, step, dev.reads, dev.readBytes)
				}
			}
		}
	})
}

// TestGPUDispatchCount: a decode step records as many dispatches as the
// planner prices (planner.GPUDispatches), at every mix, greedy and sampled,
// so that fusing or adding a kernel cannot leave the planner's GPU cost
// model counting the old number.
func TestGPUDispatchCount(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		c := weights.TinyConfig()
		file := weightsFile(t, weights.Random(c, 7))
		dev := &counting{Device: d}
		e := loaded(t, file, dev)
		for _, spec := range []string{"S", "XL", "S,XL,M"} {
			m, err := e.ParseMix(spec)
			if err != nil {
				t.Fatal(err)
			}
			e.SetMix(m)
			for _, o := range []Options{{Backend: "gpu"}, {Backend: "gpu", Temperature: 0.8, TopK: 20, Seed: 3}} {
				if err := e.Reset(o); err != nil {
					t.Fatal(err)
				}
				e.Prompt([]byte(gpuPrompt))
				if _, err := e.Step(); err != nil { // the prompt's pass
					t.Fatal(err)
				}
				for step := range 3 {
					dev.dispatches = 0
					if _, err := e.Step(); err != nil {
						t.Fatal(err)
					}
					if want := planner.GPUDispatches(c); dev.dispatches != want {
						t.Fatalf("%s %+v step %d: %d dispatches; the planner prices %d", spec, o, step, dev.dispatches, want)
					}
				}
			}
		}
	})
}

// TestGPUBindGroupsCached: decode steps after the first create no bind
// groups on the native device (webgpu/native.go caches them), greedy and
// sampled; TestGPUMatchesCPU checks the tokens with the cache in place.
func TestGPUBindGroupsCached(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		counter, ok := d.(interface {
			BindGroups() (created, cached, limit int)
		})
		if !ok {
			t.Fatalf("%T does not report its bind groups", d)
		}
		e := loaded(t, weightsFile(t, weights.Random(weights.TinyConfig(), 7)), d)
		for _, spec := range []string{"S", "S,XL,M"} {
			m, _ := e.ParseMix(spec)
			e.SetMix(m)
			for _, o := range []Options{{Backend: "gpu"}, {Backend: "gpu", Temperature: 0.8, TopK: 20, Seed: 3}} {
				if err := e.Reset(o); err != nil {
					t.Fatal(err)
				}
				e.Prompt([]byte(gpuPrompt))
				for range 2 { // the prompt's pass, and the first decode step
					if _, err := step(e); err != nil {
						t.Fatal(err)
					}
				}
				before, _, _ := counter.BindGroups()
				for i := range 4 {
					if _, err := step(e); err != nil {
						t.Fatal(err)
					}
					if after, _, _ := counter.BindGroups(); after != before {
						t.Fatalf("%s %+v: decode step %d created %d bind groups; want 0", spec, o, i+2, after-before)
					}
				}
			}
		}
	})
}

// TestGPUUploads: the weight buffers are filled per granularity block.
// S → XL uploads exactly the FFN rows S lacks; back to S uploads nothing.
func TestGPUUploads(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		w := weights.Random(weights.TinyConfig(), 7)
		file := weightsFile(t, w)
		h, err := weights.ParseHeader(file, int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		c := h.Config
		for _, precision := range []string{"f32", "f16"} {
			dev := &counting{Device: d}
			e := loaded(t, file, dev)
			reset := func(mix string) int {
				t.Helper()
				m, _ := e.ParseMix(mix)
				e.SetMix(m)
				before := dev.written
				if err := e.Reset(Options{Backend: "gpu", Precision: precision}); err != nil {
					t.Fatal(err)
				}
				return dev.written - before
			}
			reset("S")
			memoryS := dev.liveBytes()
			// Gate, up and down of every layer, rows [S, XL): f32, or f16 halves.
			want := 3 * c.Layers * (c.Hidden() - c.FFNWidths[0]) * c.Dim * 4
			if precision == "f16" {
				want /= 2
			}
			if got := reset("XL"); got != want {
				t.Errorf("%s: S → XL uploaded %d bytes; want %d (the FFN rows S lacks)", precision, got, want)
			}
			// GPU memory follows the mix: S never allocated the rows only XL uses.
			if grew := dev.liveBytes() - memoryS; grew != uint64(want) {
				t.Errorf("%s: S → XL grew GPU memory by %d bytes; want %d", precision, grew, want)
			}
			if got := reset("S"); got != 0 {
				t.Errorf("%s: XL → S uploaded %d bytes; want 0", precision, got)
			}
			if got := reset("S,M,XL"); got != 0 {
				t.Errorf("%s: S,M,XL after XL uploaded %d bytes; want 0", precision, got)
			}
		}
	})
}

// TestAutoBackend: auto runs on the GPU when the device opens, on the CPU
// when it does not, and gpu without an adapter is ErrBackend.
func TestAutoBackend(t *testing.T) {
	file := weightsFile(t, weights.Random(weights.TinyConfig(), 7))
	e := loaded(t, file, nil)
	m, _ := e.ParseMix("S")
	e.SetMix(m)
	if err := e.Reset(Options{Backend: "auto"}); err != nil || e.Backend() != "cpu" {
		t.Errorf("auto without an adapter: %v, backend %q; want cpu", err, e.Backend())
	}
	if err := e.Reset(Options{Backend: "gpu"}); !errors.Is(err, ErrBackend) {
		t.Errorf("gpu without an adapter = %v; want ErrBackend", err)
	}
	if err := e.Reset(Options{Backend: "cpu", Precision: "f8"}); !errors.Is(err, ErrArg) {
		t.Errorf("precision f8 = %v; want ErrArg", err)
	}
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		e := loaded(t, file, d)
		e.SetMix(m)
		if err := e.Reset(Options{Backend: "auto"}); err != nil || e.Backend() != "gpu" {
			t.Errorf("auto with an adapter: %v, backend %q; want gpu", err, e.Backend())
		}
	})
}

func TestRoundHalf(t *testing.T) {
	for _, c := range []struct {
		in   float32
		bits uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, {1e-8, 0},
		{5.960464477539063e-08, 1},     // the smallest subnormal half
		{1 + 1.0/2048, 0x3c00},         // a tie rounds to even
		{1 + 3.0/2048, 0x3c02},         // a tie rounds to even, upwards
		{0.333333333, 0x3555},          //
		{6.097555160522461e-05, 0x3ff}, // the largest subnormal half
	} {
		if got := shaders.ToHalf(c.in); got != c.bits {
			t.Errorf("shaders.ToHalf(%g) = %#04x; want %#04x", c.in, got, c.bits)
		}
		if c.bits < 0x7c00 && shaders.FromHalf(shaders.ToHalf(shaders.FromHalf(c.bits))) != shaders.FromHalf(c.bits) {
			t.Errorf("shaders.FromHalf(%#04x) does not round-trip", c.bits)
		}
	}
	w := weights.Random(weights.TinyConfig(), 1)
	r := RoundHalf(w)
	for _, tensor := range r.Tensors() {
		orig, _ := w.Tensor(tensor.Name)
		same := slices.Equal(orig.Data, tensor.Data)
		if same == halfTensor(tensor) {
			t.Errorf("RoundHalf: %s unchanged = %v; want %v", tensor.Name, same, !halfTensor(tensor))
		}
	}
}

func ExampleRoundHalf() {
	w := weights.Random(weights.TinyConfig(), 1)
	fmt.Println(w.Layers[0].Query[0], RoundHalf(w).Layers[0].Query[0])
	// Output: 0.17452982 0.17456055
}

// untilFull generates with mix and o after prompt until the context is full.
func untilFull(t testing.TB, e *Engine, mix string, o Options, prompt string) []int {
	t.Helper()
	m, err := e.ParseMix(mix)
	if err != nil {
		t.Fatal(err)
	}
	e.SetMix(m)
	if err := e.Reset(o); err != nil {
		t.Fatalf("Reset(%+v): %v", o, err)
	}
	if _, err := e.Prompt([]byte(prompt)); err != nil {
		t.Fatal(err)
	}
	var out []int
	for {
		tok, err := e.Step()
		switch {
		case errors.Is(err, ErrPending):
			continue
		case errors.Is(err, ErrDone):
			return out
		case err != nil:
			t.Fatalf("%+v step %d: %v", o, len(out), err)
		}
		out = append(out, tok)
	}
}

// TestGPUSpeculative: greedy self-speculative decoding on the GPU gives the
// verifier's tokens alone, token for token, for drafts that disagree often
// (random weights), a draft equal to the verifier (every proposal kept), k
// from 1 to past the room left in the context, f32 and f16, and a readback
// that is pending once per round as in a browser. Each round reads back
// once.
func TestGPUSpeculative(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		w := weights.Random(weights.TinyConfig(), 7)
		file := weightsFile(t, w)
		dev := &counting{Device: d, pendingOnce: true}
		e, cpu := loaded(t, file, dev), loaded(t, file, nil)
		for _, verify := range []string{"XL", "S,L,XL"} {
			want := untilFull(t, cpu, verify, Options{Backend: "cpu"}, gpuPrompt)
			if len(want) == 0 {
				t.Fatal("no tokens before the context filled")
			}
			precisions := []string{"f32"}
			if verify == "XL" {
				precisions = append(precisions, "f16")
			}
			for _, precision := range precisions {
				alone := untilFull(t, e, verify, Options{Backend: "gpu", Precision: precision}, gpuPrompt)
				if precision == "f32" && !slices.Equal(alone, want) {
					t.Fatalf("gpu %s alone %v\ncpu %v", verify, alone, want)
				}
				for _, draft := range []string{"S", verify} {
					for _, k := range []int{1, 4, 40} {
						dev.reads = 0
						o := Options{Backend: "gpu", Precision: precision, Draft: draft, DraftTokens: k}
						got := untilFull(t, e, verify, o, gpuPrompt)
						if !slices.Equal(got, alone) {
							t.Errorf("%s verify %s draft %s k %d: %v\nverifier alone: %v", precision, verify, draft, k, got, alone)
						}
						spec := e.backend.(*gpuSpeculative)
						if dev.reads != spec.stats.Rounds {
							t.Errorf("%s draft %s k %d: %d reads for %d rounds; want one each", verify, draft, k, dev.reads, spec.stats.Rounds)
						}
						if draft == verify && spec.stats.Accepted != spec.stats.Proposed {
							t.Errorf("draft = verifier %s, k %d: accepted %d of %d; want all", verify, k, spec.stats.Accepted, spec.stats.Proposed)
						}
						// Until the context is full, every round's tokens are out:
						// each round emits its accepted proposals and one more.
						info := e.Speculation()
						if info.Proposed != spec.stats.Proposed || info.Accepted != spec.stats.Accepted || info.Rounds != spec.stats.Rounds ||
							info.Accepted+info.Rounds != len(got) || len(info.Draft) != w.Config.Layers || info.K > k {
							t.Errorf("%s draft %s k %d: Speculation %+v for %d tokens (stats %+v); want accepted + rounds = tokens", verify, draft, k, info, len(got), spec.stats)
						}
					}
				}
			}
		}
		// Sampling (TestGPUSpeculativeSampling) draws from the whole
		// distribution, as on the cpu backend: top_k and top_p are refused.
		m, _ := e.ParseMix("XL")
		e.SetMix(m)
		for _, o := range []Options{{TopK: 5}, {TopP: 0.9}} {
			o.Backend, o.Draft, o.Temperature = "gpu", "S", 0.8
			if err := e.Reset(o); !errors.Is(err, ErrArg) {
				t.Errorf("gpu speculative sampling with %+v = %v; want ErrArg", o, err)
			}
		}
	})
}

// TestWidthsKeepSequenceMix: set_mix during a sequence changes the next
// reset's mix, not the running one's: the steps run on with the mix the
// sequence was reset with, and widths reports that mix, on every backend
// (wasm/ABI.md, widths).
func TestWidthsKeepSequenceMix(t *testing.T) {
	check := func(t *testing.T, e *Engine, o Options) {
		t.Helper()
		c := e.header.Config
		xl, s := c.Uniform(c.Granularities()-1), c.Uniform(0)
		want := tokens(t, e, "XL", o, gpuPrompt, 6)
		got := tokens(t, e, "XL", o, gpuPrompt, 3)
		if err := e.SetMix(s); err != nil {
			t.Fatal(err)
		}
		for len(got) < len(want) {
			tok, err := e.Step()
			if errors.Is(err, ErrPending) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, tok)
			if w, err := e.Widths(); err != nil || !slices.Equal(w, xl) {
				t.Errorf("%s draft %q: widths after set_mix S in an XL sequence = %v, %v; want %v", o.Backend, o.Draft, w, err, xl)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s draft %q: tokens after set_mix S in an XL sequence %v; the XL sequence alone %v", o.Backend, o.Draft, got, want)
		}
		if err := e.Reset(o); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Prompt([]byte(gpuPrompt)); err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := e.Step(); !errors.Is(err, ErrPending) {
				if err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		if w, err := e.Widths(); err != nil || !slices.Equal(w, s) {
			t.Errorf("%s draft %q: widths after the next reset = %v, %v; want S %v", o.Backend, o.Draft, w, err, s)
		}
	}
	file := weightsFile(t, weights.Random(weights.TinyConfig(), 7))
	for _, o := range []Options{{Backend: "cpu"}, {Backend: "cpu", Draft: "S", DraftTokens: 2}} {
		check(t, loaded(t, file, nil), o)
	}
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		for _, o := range []Options{{Backend: "gpu"}, {Backend: "gpu", Draft: "S", DraftTokens: 2}} {
			check(t, loaded(t, file, d), o)
		}
	})
}
