package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

// routedReference decodes greedily with model.ForwardRouted (picks capped at
// mix), returning the tokens and each token's widths.
func routedReference(w *model.Weights, mix model.Mix, budget float64, prompt string, n int) ([]int, [][]int) {
	pick := w.Threshold(w.RouteThreshold(budget))
	capped := func(l int, x []float32) int { return min(pick(l, x), mix[l]) }
	s := model.NewState(w.Config)
	var sampler model.Sampler
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

func TestRoutedMatchesModel(t *testing.T) {
	w := weights.RandomRouted(weights.Random(weights.TinyConfig(), 7), 3)
	c := w.Config
	e := loaded(t, weightsFile(t, w), nil)
	for _, tt := range []struct {
		mix    string
		budget float32
	}{{"XL", 0.6}, {"XL", 0.4}, {"S,L,XL", 0.6}, {"XL", 1}} {
		mix, _ := c.ParseMix(tt.mix)
		want, wantWidths := routedReference(w, mix, float64(tt.budget), gpuPrompt, 16)
		got := tokens(t, e, tt.mix, Options{Route: tt.budget}, gpuPrompt, 1)
		widths := [][]int{}
		if wd, err := e.Widths(); err != nil {
			t.Fatal(err)
		} else {
			widths = append(widths, wd)
		}
		for len(got) < 16 {
			tok, err := e.Step()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, tok)
			wd, _ := e.Widths()
			widths = append(widths, wd)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("mix %s route %g: engine tokens %v, model %v", tt.mix, tt.budget, got, want)
		}
		seen := map[int]bool{}
		for i := range widths {
			if !slices.Equal(widths[i], wantWidths[i]) {
				t.Fatalf("mix %s route %g token %d: widths %v, model %v", tt.mix, tt.budget, i, widths[i], wantWidths[i])
			}
			for l, g := range widths[i] {
				if g > mix[l] {
					t.Fatalf("token %d layer %d ran %d, above the mix's %d", i, l, g, mix[l])
				}
				seen[g] = true
			}
		}
		if tt.budget == 1 {
			if plain := tokens(t, e, tt.mix, Options{}, gpuPrompt, 16); !slices.Equal(got, plain) {
				t.Errorf("route 1 tokens %v; the mix alone gives %v", got, plain)
			}
		} else if len(seen) < 2 {
			t.Errorf("mix %s route %g picked only %v: the test routers test nothing", tt.mix, tt.budget, seen)
		}
	}
}

func TestRouteRefused(t *testing.T) {
	w := weights.RandomRouted(weights.Random(weights.TinyConfig(), 7), 3)
	e := loaded(t, weightsFile(t, w), nil)
	if err := e.SetMix(w.Config.Uniform(3)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		o    Options
		want error
	}{
		{Options{Route: 0.5, Backend: "gpu"}, ErrBackend}, // this engine has no device
		{Options{Route: -0.5}, ErrArg},
		{Options{Route: 1.5}, ErrArg},
		{Options{Route: float32(nan())}, ErrArg},
		{Options{Route: 0.5, Draft: "S"}, ErrArg},
		{Options{Route: 0.5, Backend: "tpu"}, ErrArg},
	} {
		if err := e.Reset(tt.o); !errors.Is(err, tt.want) {
			t.Errorf("Reset(%+v) = %v; want %v", tt.o, err, tt.want)
		}
	}
	if err := e.Reset(Options{Route: 0.5, Backend: "auto"}); err != nil || e.Backend() != "cpu" {
		t.Errorf("Reset(route, backend auto) = %v on %q; want the cpu backend", err, e.Backend())
	}
	if _, err := e.Widths(); !errors.Is(err, ErrState) {
		t.Errorf("Widths before a step = %v; want ErrState", err)
	}
	plain := loaded(t, weightsFile(t, weights.Random(weights.TinyConfig(), 7)), nil)
	if err := plain.SetMix(w.Config.Uniform(3)); err != nil {
		t.Fatal(err)
	}
	if err := plain.Reset(Options{Route: 0.5}); !errors.Is(err, ErrArg) {
		t.Errorf("Reset(route) on a file without routers = %v; want ErrArg", err)
	}
}

func nan() float64 { return math.NaN() }

// routed generates n tokens after prompt with mix and o (a route), and the
// widths reported after each.
func routed(t testing.TB, e *Engine, mix string, o Options, prompt string, n int) ([]int, [][]int) {
	t.Helper()
	got := tokens(t, e, mix, o, prompt, 1)
	var widths [][]int
	for {
		w, err := e.Widths()
		if err != nil {
			t.Fatal(err)
		}
		widths = append(widths, w)
		if len(got) == n {
			return got, widths
		}
		tok, err := e.Step()
		for errors.Is(err, ErrPending) {
			tok, err = e.Step()
		}
		if err != nil {
			t.Fatalf("step %d: %v", len(got), err)
		}
		got = append(got, tok)
	}
}

// TestGPURoutedMatchesCPU: routed decoding on the gpu backend (the route
// kernel and the routed matrix kernels) gives the cpu backend's tokens and
// reports its widths, token by token: greedy and sampled, with penalties,
// mixes that cap layers below XL, budgets from every-token-S to the mix
// itself, f16, and bindings small enough to split every FFN matrix. Each
// routed step reads back once: the token and its widths, a readback that
// is pending once as in a browser.
func TestGPURoutedMatchesCPU(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		w := weights.RandomRouted(weights.Random(weights.TinyConfig(), 7), 3)
		c := w.Config
		file, halfFile := weightsFile(t, w), weightsFile(t, RoundHalf(w))
		cpu, halfCPU := loaded(t, file, nil), loaded(t, halfFile, nil)
		const n = 20
		for _, tt := range []struct {
			mix       string
			o         Options
			limit     uint64 // the device's storage binding, when not 0
			precision string
		}{
			{"XL", Options{Route: 0.6}, 0, "f32"},
			{"XL", Options{Route: 0.4}, 0, "f32"},
			{"S,L,XL", Options{Route: 0.6}, 0, "f32"},
			{"XL,M,L", Options{Route: 0.8}, 0, "f32"},
			{"XL", Options{Route: 1}, 0, "f32"},
			{"XL", Options{Route: 0.1}, 0, "f32"}, // at or below S's share: S for every token
			{"XL", Options{Route: 0.6, Temperature: 0.9, TopK: 20, Seed: 5}, 0, "f32"},
			{"XL", Options{Route: 0.5, RepetitionPenalty: 1.5, PresencePenalty: 0.5}, 0, "f32"},
			{"XL", Options{Route: 0.6}, 0, "f16"},
			{"XL", Options{Route: 0.6}, 8 << 10, "f32"}, // FFN matrices in two slabs
			{"S,L,XL", Options{Route: 0.6}, 8 << 10, "f16"},
		} {
			dev := &counting{Device: d, limit: tt.limit, pendingOnce: true}
			onGPU := loaded(t, file, dev)
			ref := cpu
			if tt.precision == "f16" {
				ref = halfCPU
			}
			o := tt.o
			o.Backend = "cpu"
			want, wantWidths := routed(t, ref, tt.mix, o, gpuPrompt, n)
			o.Backend, o.Precision = "gpu", tt.precision
			dev.reads, dev.readBytes = 0, 0
			got, widths := routed(t, onGPU, tt.mix, o, gpuPrompt, n)
			what := fmt.Sprintf("mix %s %+v binding %d", tt.mix, o, tt.limit)
			if !slices.Equal(got, want) {
				t.Errorf("%s: gpu tokens %v\ncpu tokens %v", what, got, want)
				continue
			}
			seen := map[int]bool{}
			for i := range widths {
				if !slices.Equal(widths[i], wantWidths[i]) {
					t.Errorf("%s token %d: gpu widths %v, cpu %v", what, i, widths[i], wantWidths[i])
					break
				}
				for _, g := range widths[i] {
					seen[g] = true
				}
			}
			if o.Route < 1 && o.Route > 0.125 && len(seen) < 2 {
				t.Errorf("%s: the routers picked only %v: the case tests nothing", what, seen)
			}
			if o.Route == 0.1 && !(len(seen) == 1 && seen[0]) {
				t.Errorf("%s: picked %v; want S only", what, seen)
			}
			// n steps, the first of them the prompt's.
			if dev.reads != n || dev.readBytes != n*4*(1+c.Layers) {
				t.Errorf("%s: %d reads of %d bytes in %d steps; want one of %d bytes each (token and widths)", what, dev.reads, dev.readBytes, n, 4*(1+c.Layers))
			}
		}
		// auto routes where it runs without a route: on the device that opens.
		e := loaded(t, file, d)
		if err := e.SetMix(c.Uniform(c.Granularities() - 1)); err != nil {
			t.Fatal(err)
		}
		if err := e.Reset(Options{Route: 0.6, Backend: "auto"}); err != nil || e.Backend() != "gpu" {
			t.Errorf("Reset(route, backend auto) with a device = %v on %q; want the gpu backend", err, e.Backend())
		}
	})
}

// alwaysPicks returns w with routers that pick granularity z for every
// token at the price of the budget 0.6 (τ = 0): z's score far below its
// price share, the others' far above.
func alwaysPicks(t testing.TB, w *model.Weights, z int) *model.Weights {
	t.Helper()
	c := w.Config
	routers := make([][]float32, c.Layers)
	for l := range routers {
		routers[l] = make([]float32, (c.Granularities()-1)*(c.Dim+1))
		for g := range c.Granularities() - 1 {
			bias := float32(50)
			if g == z {
				bias = -50
			}
			routers[l][g*(c.Dim+1)+c.Dim] = bias
		}
	}
	routedW, err := model.WithRouter(w, routers, []float32{0.3, 1, 0.6, 0, 0.9, -1})
	if err != nil {
		t.Fatal(err)
	}
	return routedW
}

// TestGPURouterAlwaysZ: a router that always picks Z gives on the GPU what
// the uniform mix Z gives there, bit for bit — the last step's logits —
// and reports Z for every layer, for each Z, capped by the mix XL and
// routed through XL-sized dispatches whose rows past Z exit early.
func TestGPURouterAlwaysZ(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		base := weights.Random(weights.TinyConfig(), 7)
		c := base.Config
		const n = 12
		logits := func(e *Engine) []byte {
			t.Helper()
			b, err := webgpu.ReadNow(d, e.gpu.logits, 0, uint64(4*c.Vocab))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		for z := range c.Granularities() {
			e := loaded(t, weightsFile(t, alwaysPicks(t, base, z)), d)
			name := c.GranularityName(z)
			want := tokens(t, e, name, Options{Backend: "gpu"}, gpuPrompt, n)
			wantLogits := logits(e)
			got, widths := routed(t, e, "XL", Options{Backend: "gpu", Route: 0.6}, gpuPrompt, n)
			if !slices.Equal(got, want) {
				t.Errorf("router always %s: tokens %v; the mix %s gives %v", name, got, name, want)
			}
			if !bytes.Equal(logits(e), wantLogits) {
				t.Errorf("router always %s: the last logits differ from the mix %s's", name, name)
			}
			for i, wd := range widths {
				if !slices.Equal(wd, c.Uniform(z)) {
					t.Fatalf("router always %s: token %d ran %v", name, i, wd)
				}
			}
		}
	})
}

// TestGPURoutedDefaultModel: on the default model's fitted routers, whose
// scores are a trained model's rather than random, the gpu backend's
// routed tokens and widths are the cpu backend's at several budgets.
func TestGPURoutedDefaultModel(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		onGPU, cpu := loaded(t, defaultmodel.Bytes, d), loaded(t, defaultmodel.Bytes, nil)
		const n = 32
		for _, budget := range []float32{0.3, 0.6, 0.9} {
			want, wantWidths := routed(t, cpu, "XL", Options{Route: budget, Backend: "cpu"}, gpuPrompt, n)
			got, widths := routed(t, onGPU, "XL", Options{Route: budget, Backend: "gpu"}, gpuPrompt, n)
			if !slices.Equal(got, want) {
				t.Errorf("route %g: gpu tokens %v\ncpu tokens %v", budget, got, want)
				continue
			}
			seen := map[int]bool{}
			for i := range widths {
				if !slices.Equal(widths[i], wantWidths[i]) {
					t.Errorf("route %g token %d: gpu widths %v, cpu %v", budget, i, widths[i], wantWidths[i])
					break
				}
				for _, g := range widths[i] {
					seen[g] = true
				}
			}
			if len(seen) < 2 {
				t.Errorf("route %g: the routers picked only %v", budget, seen)
			}
		}
	})
}

// BenchmarkGPURouted decodes on the gpu backend with the mixes S and XL and
// routed under XL at two budgets, on the default model (fitted routers) and,
// with large, a random d=512 h=2048 8-layer one (random routers): wall
// milliseconds per decoded token (a 16-token prompt's pass included), and
// the mean FFN rows the decoded tokens ran, as a share of XL's.
func BenchmarkGPURouted(b *testing.B) {
	for _, which := range []string{"default", "large"} {
		file := defaultmodel.Bytes
		if which == "large" {
			c := model.Config{Vocab: 256, Dim: 512, Layers: 8, Heads: 8, FFNWidths: model.NestedWidths(2048), Context: 256, RopeTheta: 10000, NormEps: 1e-5}
			file = weightsFile(b, weights.RandomRouted(weights.Random(c, 1), 2))
		}
		for _, run := range []struct {
			mix   string
			route float32
		}{{"S", 0}, {"XL", 0}, {"XL", 0.6}, {"XL", 0.3}} {
			b.Run(fmt.Sprintf("%s/%s/route=%g", which, run.mix, run.route), func(b *testing.B) {
				d := webgputest.Open(b)
				defer d.Close()
				e := loaded(b, file, d)
				c := e.header.Config
				const prompt, decode = 16, 32
				text := strings.Repeat("x", prompt)
				o := Options{Backend: "gpu", Route: run.route}
				tokens(b, e, run.mix, o, text, 2) // compile and upload
				rows, total := 0, 0
				b.ResetTimer()
				for range b.N {
					if err := e.Reset(o); err != nil {
						b.Fatal(err)
					}
					e.Prompt([]byte(text))
					if _, err := step(e); err != nil {
						b.Fatal(err)
					}
					for range decode {
						if _, err := step(e); err != nil {
							b.Fatal(err)
						}
						widths, _ := e.Widths()
						for _, g := range widths {
							rows += c.FFNWidths[g]
							total += c.Hidden()
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N*decode), "ms/token")
				b.ReportMetric(float64(rows)/float64(total), "FFN-share")
			})
		}
	}
}
