package train

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
)

// quadrants is a synthetic image set a MatViT can learn in a few steps: an
// 8×8 image whose class is the quadrant holding a bright square, on noise.
func quadrants(n int, seed uint64) *Images {
	im := model.ImageConfig{Size: 8, Channels: 1}
	set := &Images{Name: "quadrants", Image: im, Pixels: make([]float32, n*im.Pixels()), Labels: make([]int, n), Classes: []string{"tl", "tr", "bl", "br"}}
	r := model.NewRNG(seed)
	for i := range n {
		img := set.At(i)
		for j := range img {
			img[j] = 0.3 * r.Float32()
		}
		c := int(r.Uint32() % 4)
		set.Labels[i] = c
		y0, x0 := 4*(c/2), 4*(c%2)
		for y := range 3 {
			for x := range 3 {
				img[(y0+y)*8+x0+x] = 1
			}
		}
	}
	return set
}

func visionOptions(steps int) Options {
	return Options{Config: model.Config{Vocab: 4, Dim: 16, Layers: 2, Heads: 2, FFNWidths: model.NestedWidths(32), Context: 4,
		RopeTheta: 10000, NormEps: 1e-5, Image: &model.ImageConfig{Size: 8, Patch: 4, Channels: 1}},
		Batch: 16, Steps: steps, LR: 1e-2, Seed: 3, EvalEvery: 10}
}

// TestVisionTrainerLearns: every granularity goes from chance to (nearly)
// perfect on held-out images, and the run is deterministic.
func TestVisionTrainerLearns(t *testing.T) {
	trainSet, valid := quadrants(512, 1), quadrants(128, 2)
	run := func() *Trainer {
		tr, err := NewVision(visionOptions(60), trainSet, valid)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Run(context.Background(), 0, nil, nil); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, b := run(), run()
	if !slices.Equal(a.Weights.Data, b.Weights.Data) {
		t.Fatal("two runs with the same options differ")
	}
	last := a.History[len(a.History)-1]
	for g, acc := range last.Accuracy {
		if acc < 0.9 {
			t.Errorf("granularity %d: validation accuracy %.3f after 60 steps; want ≥ 0.9 (history %+v)", g, acc, a.History)
		}
	}
}

// TestVisionResume: a vision run stopped at a checkpoint and resumed ends
// with the weights of an uninterrupted one; a text run's checkpoint is refused.
func TestVisionResume(t *testing.T) {
	trainSet, valid := quadrants(256, 1), quadrants(64, 2)
	whole, err := NewVision(visionOptions(8), trainSet, valid)
	if err != nil {
		t.Fatal(err)
	}
	if err := whole.Run(context.Background(), 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vit.ckpt")
	first, _ := NewVision(visionOptions(8), trainSet, valid)
	ctx, cancel := context.WithCancel(context.Background())
	save := func(tr *Trainer) error {
		if tr.Step == 4 {
			cancel()
		}
		return tr.Save(path)
	}
	if err := first.Run(ctx, 2, save, nil); err != context.Canceled {
		t.Fatalf("interrupted Run = %v", err)
	}
	resumed, err := ResumeVision(path, trainSet, valid)
	if err != nil {
		t.Fatal(err)
	}
	if err := resumed.Run(context.Background(), 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(whole.Weights.Data, resumed.Weights.Data) {
		t.Fatal("resumed vision run differs from the uninterrupted one")
	}
	if _, err := Resume(path, func(model.Tokenizer) ([]int, []int) { return nil, nil }); err == nil {
		t.Fatal("Resume (text) accepted a vision checkpoint")
	}
}

func TestNewVisionRefuses(t *testing.T) {
	trainSet, valid := quadrants(16, 1), quadrants(16, 2)
	bad := quadrants(16, 3)
	bad.Labels[5] = 7
	if _, err := NewVision(visionOptions(1), bad, valid); err == nil {
		t.Error("a label past the classes was accepted")
	}
	big := quadrants(16, 4)
	big.Image.Size = 16
	if _, err := NewVision(visionOptions(1), trainSet, big); err == nil {
		t.Error("images of another size were accepted")
	}
}

func TestParseIDX(t *testing.T) {
	head := func(magic uint32, dims ...uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, magic)
		for _, d := range dims {
			b = binary.BigEndian.AppendUint32(b, d)
		}
		return b
	}
	images := append(head(0x803, 2, 2, 2), 0, 255, 51, 0, 1, 2, 3, 4)
	labels := append(head(0x801, 2), 3, 9)
	set, err := ParseIDX(images, labels)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 || set.Image.Size != 2 || set.Pixels[1] != 1 || set.Pixels[2] != 0.2 || set.Labels[1] != 9 {
		t.Fatalf("parsed %+v", set)
	}
	for name, pair := range map[string][2][]byte{
		"labels as images":   {labels, labels},
		"truncated images":   {images[:len(images)-1], labels},
		"count mismatch":     {images, append(head(0x801, 3), 1, 2, 3)},
		"not square":         {append(head(0x803, 1, 2, 3), 1, 2, 3, 4, 5, 6), append(head(0x801, 1), 0)},
		"empty":              {nil, nil},
		"lying count (2^32)": {head(0x803, 0xffffffff, 1, 1), labels},
	} {
		if _, err := ParseIDX(pair[0], pair[1]); !errors.Is(err, ErrIDX) {
			t.Errorf("%s: err = %v; want ErrIDX", name, err)
		}
	}
}

// TestFashionMNIST reads the real data set where LoadImages finds it.
func TestFashionMNIST(t *testing.T) {
	if _, err := debDir("dataset-fashion-mnist", FashionMNISTDir, "t10k-labels-idx1-ubyte.gz", DefaultCache()); err != nil {
		t.Skipf("needs dataset-fashion-mnist: %v", err)
	}
	trainSet, test, err := LoadImages("fashion-mnist", DefaultCache())
	if err != nil {
		t.Fatal(err)
	}
	if trainSet.Len() != 60000 || test.Len() != 10000 || trainSet.Image.Size != 28 || len(trainSet.Classes) != 10 {
		t.Fatalf("train %d, test %d images of %d pixels, %d classes", trainSet.Len(), test.Len(), trainSet.Image.Size, len(trainSet.Classes))
	}
	// Balanced: 6,000 and 1,000 images per class.
	for _, s := range []*Images{trainSet, test} {
		count := make([]int, 10)
		for _, l := range s.Labels {
			count[l]++
		}
		for c, n := range count {
			if n != s.Len()/10 {
				t.Errorf("%s: class %d has %d images", s.Name, c, n)
			}
		}
	}
	if _, _, err := LoadImages("cifar", DefaultCache()); err == nil {
		t.Error("an unknown image set was accepted")
	}
}
