package engine

import (
	"errors"
	"math"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
)

// visionModel is a tiny MatViT and the mixes to test it with: every
// uniform granularity and two Mix'n'Match ones.
type visionModel struct {
	name  string
	w     *model.Weights
	mixes []string
}

// visionModels are two tiny MatViTs: Fashion-MNIST's shape (28×28 grey in
// 7×7 patches, T = 16) and an RGB one with T = 9, each with four nested
// granularities.
func visionModels() []visionModel {
	grey := model.Config{Vocab: 10, Dim: 16, Layers: 2, Heads: 2, FFNWidths: model.NestedWidths(64), Context: 16,
		RopeTheta: 10000, NormEps: 1e-5, Image: &model.ImageConfig{Size: 28, Patch: 7, Channels: 1}}
	rgb := model.Config{Vocab: 5, Dim: 24, Layers: 3, Heads: 3, FFNWidths: model.NestedWidths(48), Context: 9,
		RopeTheta: 10000, NormEps: 1e-5, Image: &model.ImageConfig{Size: 12, Patch: 4, Channels: 3}}
	random := func(c model.Config) *model.Weights {
		w := model.NewWeights(c)
		w.InitRandom(11)
		return w
	}
	return []visionModel{
		{"grey", random(grey), []string{"S", "M", "L", "XL", "S,XL", "XL,M"}},
		{"rgb", random(rgb), []string{"S", "M", "L", "XL", "S,XL,M", "XL,S,L"}},
	}
}

// image returns seeded random pixels in [0, 1) for c.
func image(c model.Config, seed uint64) []float32 {
	r := model.NewRNG(seed)
	p := make([]float32, c.Image.Pixels())
	for i := range p {
		p[i] = r.Float32()
	}
	return p
}

// classify runs classifyGPU with mix until its readback completes.
func classify(t *testing.T, e *Engine, mix string, pixels []float32) (logits, embedding []float32) {
	t.Helper()
	m, err := e.ParseMix(mix)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMix(m); err != nil {
		t.Fatal(err)
	}
	for {
		logits, embedding, err := e.classifyGPU(pixels)
		if errors.Is(err, ErrPending) {
			continue
		}
		if err != nil {
			t.Fatalf("classifyGPU %s: %v", mix, err)
		}
		return logits, embedding
	}
}

// visionTol bounds |gpu − cpu| / (1 + |cpu|) for logits and embeddings. The
// GPU sums every product, norm and softmax in other orders than the CPU
// (register tiles, tree reductions, an online softmax), so each value picks
// up a few float32 ulps (1.2e-7) per term through 2–3 blocks of width ≤ 64:
// measured at most 1.4e-6 on these models (go test -v logs it). Any real
// fault — a wrong index, mask, width or norm — moves values by O(1).
const visionTol = 1e-5

// TestGPUClassify: the gpu backend's classification equals model.Classify,
// the CPU reference, within visionTol, with the same class, for every
// uniform granularity and two Mix'n'Match mixes, switching mixes on one
// engine (the FFN rows grow on the device between them).
func TestGPUClassify(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		worst := 0.0
		for _, vm := range visionModels() {
			name, w, c := vm.name, vm.w, vm.w.Config
			e := loaded(t, weightsFile(t, w), d)
			for i, mix := range vm.mixes {
				m, err := c.ParseMix(mix)
				if err != nil {
					t.Fatal(err)
				}
				pixels := image(c, uint64(i))
				wantLogits, wantEmbedding := model.Classify(w, m, pixels)
				logits, embedding := classify(t, e, mix, pixels)
				if got, want := model.Argmax(logits), model.Argmax(wantLogits); got != want {
					t.Errorf("%s %s: gpu class %d; cpu class %d (logits %v; cpu %v)", name, mix, got, want, logits, wantLogits)
				}
				for what, pair := range map[string][2][]float32{"logits": {logits, wantLogits}, "embedding": {embedding, wantEmbedding}} {
					got, want := pair[0], pair[1]
					if len(got) != len(want) {
						t.Fatalf("%s %s: %d %s; want %d", name, mix, len(got), what, len(want))
					}
					for j := range want {
						err := math.Abs(float64(got[j])-float64(want[j])) / (1 + math.Abs(float64(want[j])))
						worst = max(worst, err)
						if !(err <= visionTol) {
							t.Errorf("%s %s: gpu %s[%d] = %v; cpu %v", name, mix, what, j, got[j], want[j])
							break
						}
					}
				}
			}
		}
		t.Logf("largest |gpu − cpu| / (1 + |cpu|): %.3g", worst)
	})
}

// TestGPUClassifySplit runs a MatViT with dim 32 > T = 4 patches on a
// device whose storage binding holds 4 KiB: every FFN matrix (8 KiB) is two
// slabs, so the products run per patch and the down projection adds two
// partial sums, instead of the one-slab kernels; the classification is
// still model.Classify's.
func TestGPUClassifySplit(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		c := model.Config{Vocab: 4, Dim: 32, Layers: 2, Heads: 2, FFNWidths: model.NestedWidths(64), Context: 4,
			RopeTheta: 10000, NormEps: 1e-5, Image: &model.ImageConfig{Size: 8, Patch: 4, Channels: 1}}
		w := model.NewWeights(c)
		w.InitRandom(5)
		e := loaded(t, weightsFile(t, w), &counting{Device: d, limit: 4 << 10})
		for i, mix := range []string{"S", "XL", "XL,S"} {
			m, _ := c.ParseMix(mix)
			pixels := image(c, uint64(i))
			wantLogits, wantEmbedding := model.Classify(w, m, pixels)
			logits, embedding := classify(t, e, mix, pixels)
			for what, pair := range map[string][2][]float32{"logits": {logits, wantLogits}, "embedding": {embedding, wantEmbedding}} {
				for j := range pair[1] {
					if err := math.Abs(float64(pair[0][j])-float64(pair[1][j])) / (1 + math.Abs(float64(pair[1][j]))); !(err <= visionTol) {
						t.Errorf("%s: gpu %s[%d] = %v; cpu %v", mix, what, j, pair[0][j], pair[1][j])
						break
					}
				}
			}
		}
		// After XL: its FFN matrices (8 KiB) in two slabs, a 4 KiB query in one.
		for name, slabs := range map[string]int{"layers.0.ffn_down": 2, "layers.0.ffn_gate": 2, "layers.0.query": 1} {
			if got := len(e.gpu.tensors[name].slabs); got != slabs {
				t.Errorf("%s in %d slabs; want %d", name, got, slabs)
			}
		}
		tooSmall := loaded(t, weightsFile(t, w), &counting{Device: d, limit: 256})
		m, _ := c.ParseMix("S")
		tooSmall.SetMix(m)
		if _, _, err := tooSmall.classifyGPU(image(c, 0)); !errors.Is(err, ErrBackend) {
			t.Errorf("classifyGPU with 256-byte bindings = %v; want ErrBackend", err)
		}
	})
}

// TestGPUClassifyPending: a readback the host has not completed makes
// classifyGPU return ErrPending with the work in flight; the same request
// then collects it (with a single read), another image gets ErrState; and
// the engine's errors come before any GPU work.
func TestGPUClassifyPending(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		w := visionModels()[0].w
		c := w.Config
		dev := &counting{Device: d, pendingOnce: true}
		e := loaded(t, weightsFile(t, w), dev)
		m, _ := e.ParseMix("M")
		e.SetMix(m)
		pixels, other := image(c, 1), image(c, 2)
		if _, _, err := e.classifyGPU(pixels[1:]); !errors.Is(err, ErrArg) {
			t.Errorf("classifyGPU with %d pixels = %v; want ErrArg", len(pixels)-1, err)
		}
		if _, _, err := e.classifyGPU(pixels); !errors.Is(err, ErrPending) {
			t.Fatalf("first call = %v; want ErrPending", err)
		}
		if _, _, err := e.classifyGPU(other); !errors.Is(err, ErrState) {
			t.Errorf("another image while one is in flight = %v; want ErrState", err)
		}
		logits, _, err := e.classifyGPU(pixels)
		if err != nil {
			t.Fatalf("second call = %v", err)
		}
		if want, _ := model.Classify(w, m, pixels); model.Argmax(logits) != model.Argmax(want) {
			t.Errorf("collected class %d; cpu %d", model.Argmax(logits), model.Argmax(want))
		}
		if dev.reads != 1 || dev.readBytes != 4*(c.Vocab+c.Dim) {
			t.Errorf("%d reads of %d bytes; want one of %d (logits and embedding)", dev.reads, dev.readBytes, 4*(c.Vocab+c.Dim))
		}
		if _, _, err := e.classifyGPU(other); !errors.Is(err, ErrPending) {
			t.Errorf("a new image after collecting = %v; want ErrPending (started)", err)
		}

		// The text forward pass on a vision model's buffers is refused, not run.
		e.gpu.err = nil
		e.gpu.forward(0, 1, m, false)
		if !errors.Is(e.gpu.err, ErrState) {
			t.Errorf("gpu.forward on a vision model: %v; want ErrState", e.gpu.err)
		}

		noGPU := loaded(t, weightsFile(t, w), nil)
		if _, _, err := noGPU.classifyGPU(pixels); !errors.Is(err, ErrState) {
			t.Errorf("classifyGPU before set_mix = %v; want ErrState", err)
		}
		noGPU.SetMix(m)
		if _, _, err := noGPU.classifyGPU(pixels); !errors.Is(err, ErrBackend) {
			t.Errorf("classifyGPU without an adapter = %v; want ErrBackend", err)
		}
	})
}

// TestGPUClassifyLanguageModel: a language model cannot classify.
func TestGPUClassifyLanguageModel(t *testing.T) {
	lm := loaded(t, weightsFile(t, weights.Random(weights.TinyConfig(), 7)), nil)
	m, _ := lm.ParseMix("S")
	lm.SetMix(m)
	if _, _, err := lm.classifyGPU(make([]float32, 784)); !errors.Is(err, ErrState) {
		t.Errorf("classifyGPU on a language model = %v; want ErrState", err)
	}
}

// BenchmarkClassify times one image through XL of a random MatViT shaped
// like the trained Fashion-MNIST model (dim 64, 4 layers, 16 patches of
// 7×7), on the CPU (model.Classify's batch, as the module's cpu backend)
// and on the gpu backend (lavapipe here), readback included.
func BenchmarkClassify(b *testing.B) {
	c := model.Config{Vocab: 10, Dim: 64, Layers: 4, Heads: 4, FFNWidths: model.NestedWidths(256), Context: 16,
		RopeTheta: 10000, NormEps: 1e-5, Image: &model.ImageConfig{Size: 28, Patch: 7, Channels: 1}}
	w := model.NewWeights(c)
	w.InitRandom(1)
	file, pixels := weightsFile(b, w), image(c, 1)
	b.Run("cpu", func(b *testing.B) {
		e := loaded(b, file, nil)
		m, _ := e.ParseMix("XL")
		e.SetMix(m)
		for range b.N {
			e.classifyCPU(pixels)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
	b.Run("gpu", func(b *testing.B) {
		d := webgputest.Open(b)
		defer d.Close()
		e := loaded(b, file, d)
		m, _ := e.ParseMix("XL")
		e.SetMix(m)
		run := func() {
			for {
				_, _, err := e.classifyGPU(pixels)
				if err == nil {
					return
				}
				if !errors.Is(err, ErrPending) {
					b.Fatal(err)
				}
			}
		}
		run() // compile the pipelines and upload the weights
		b.ResetTimer()
		for range b.N {
			run()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
}
