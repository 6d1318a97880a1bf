package model

import (
	"math"
	"testing"
)

// tinyVision is a MatViT small enough for finite differences over every
// parameter: 8×8 grey images in 4×4 patches (T = 4), three classes.
func tinyVision() Config {
	return Config{Vocab: 3, Dim: 8, Layers: 2, Heads: 2, FFNWidths: NestedWidths(16), Context: 4,
		RopeTheta: 10000, NormEps: 1e-5, Image: &ImageConfig{Size: 8, Patch: 4, Channels: 1}}
}

func TestVisionConfigValidate(t *testing.T) {
	if err := tinyVision().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Config){
		"patch does not divide": func(c *Config) { c.Image.Patch = 3 },
		"context not patches":   func(c *Config) { c.Context = 5 },
		"one class":             func(c *Config) { c.Vocab = 1 },
		"two channels":          func(c *Config) { c.Image.Channels = 2 },
		"router":                func(c *Config) { c.RouterBudgets = 4 },
	} {
		c := tinyVision()
		im := *c.Image
		c.Image = &im
		edit(&c)
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v %+v", name, c, *c.Image)
		}
	}
}

func TestPatchesOf(t *testing.T) {
	im := ImageConfig{Size: 4, Patch: 2, Channels: 3}
	pixels := make([]float32, 2*im.Pixels())
	for i := range pixels {
		pixels[i] = float32(i)
	}
	out := make([]float32, len(pixels))
	PatchesOf(im, out, pixels)
	// image 1, patch 3 (bottom right), channel 2, row 1, column 0:
	// pixel (c=2, y=3, x=2) of image 1.
	got := out[(1*4+3)*im.PatchLen()+2*4+1*2+0]
	want := float32(1*im.Pixels() + 2*16 + 3*4 + 2)
	if got != want {
		t.Fatalf("patch value %g, want %g", got, want)
	}
}

// TestVisionGradient checks ∂loss/∂w of the whole vision network against
// finite differences, on a Mix with a different width per layer.
func TestVisionGradient(t *testing.T) {
	c := tinyVision()
	w := NewWeights(c)
	w.InitRandom(7)
	r := NewRNG(8)
	for i := range w.Data {
		w.Data[i] += (2*r.Float32() - 1) * 0.1
	}
	const batch = 3
	pixels := randomSlice(r, batch*c.Image.Pixels(), 1)
	labels := []int{2, -1, 0}
	mix := Mix{1, 3}
	b := NewBatch(c, batch, c.Context)
	grad := NewWeights(c)
	b.ForwardImages(w, mix, pixels, labels)
	b.BackwardImages(w, grad, 1)
	loss := func() float64 { return b.ForwardImages(w, mix, pixels, labels) }
	for _, tensor := range w.Tensors() {
		g, _ := grad.Tensor(tensor.Name)
		checkGrad(t, tensor.Name, tensor.Data, g.Data, 1e-2, 2e-3, loss)
	}
}

// TestClassifyMatchesBatch: one image through Classify gives the logits and
// embedding it gets inside a batch, and attention is bidirectional (the
// first patch sees the last: changing it changes everything).
func TestClassifyMatchesBatch(t *testing.T) {
	c := tinyVision()
	w := NewWeights(c)
	w.InitRandom(3)
	const batch = 2
	pixels := randomSlice(NewRNG(4), batch*c.Image.Pixels(), 1)
	b := NewBatch(c, batch, c.Context)
	mix := c.Uniform(2)
	b.ForwardImages(w, mix, pixels, nil)
	for i := range batch {
		logits, emb := Classify(w, mix, pixels[i*c.Image.Pixels():(i+1)*c.Image.Pixels()])
		for j, v := range logits {
			if want := b.Logits()[i*c.Vocab+j]; math.Abs(float64(v-want)) > 1e-6 {
				t.Fatalf("image %d logit %d: %g, in the batch %g", i, j, v, want)
			}
		}
		for j, v := range emb {
			if want := b.Embeddings()[i*c.Dim+j]; math.Abs(float64(v-want)) > 1e-6 {
				t.Fatalf("image %d embedding %d: %g, in the batch %g", i, j, v, want)
			}
		}
	}
	// Bidirectional: the first patch's activations depend on the last patch.
	img := append([]float32(nil), pixels[:c.Image.Pixels()]...)
	b1 := NewBatch(c, 1, c.Context)
	b1.ForwardImages(w, mix, img, nil)
	first := append([]float32(nil), b1.finalIn[:c.Dim]...)
	img[len(img)-1] += 1 // bottom-right pixel: in the last patch
	b1.ForwardImages(w, mix, img, nil)
	same := true
	for i, v := range b1.finalIn[:c.Dim] {
		same = same && v == first[i]
	}
	if same {
		t.Fatal("the first patch's output ignores the last patch: attention is causal")
	}
}
