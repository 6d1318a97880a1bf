package train

import (
	"fmt"
	"math"

	"github.com/matedge/matedge/model"
)

// NewVision starts a run of a vision model (opts.Config.Image set) on
// labelled images: Batch images per step, validated on valid (EvalTokens
// counts validation images per periodic pass).
func NewVision(opts Options, trainSet, valid *Images) (*Trainer, error) {
	c := opts.Config
	if !c.IsVision() {
		return nil, fmt.Errorf("train: NewVision needs a vision config")
	}
	opts.SeqLen = c.Context
	opts.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	for _, s := range []*Images{trainSet, valid} {
		if s.Image.Size != c.Image.Size || s.Image.Channels != c.Image.Channels {
			return nil, fmt.Errorf("train: %s has %d×%d images with %d channels; the model takes %d×%d with %d", s.Name,
				s.Image.Size, s.Image.Size, s.Image.Channels, c.Image.Size, c.Image.Size, c.Image.Channels)
		}
		if s.Len() == 0 {
			return nil, fmt.Errorf("train: %s holds no images", s.Name)
		}
		for i, l := range s.Labels {
			if l < 0 || l >= c.Vocab {
				return nil, fmt.Errorf("train: %s image %d has label %d; the model has %d classes", s.Name, i, l, c.Vocab)
			}
		}
	}
	w := model.NewWeights(c)
	w.InitRandom(opts.Seed)
	opt := model.NewAdamW(len(w.Data))
	opt.WeightDecay = opts.WeightDecay
	return &Trainer{
		Options: opts, Weights: w, Optimizer: opt,
		images: trainSet, validImages: valid,
		batch:   model.NewBatch(c, opts.Batch, opts.SeqLen),
		grad:    model.NewWeights(c),
		pixels:  make([]float32, opts.Batch*c.Image.Pixels()),
		targets: make([]int, opts.Batch),
	}, nil
}

// sampleImages fills pixels and targets (labels) for step with Batch images
// drawn, like sample's windows, from a generator seeded by (seed, step).
func (t *Trainer) sampleImages(step int) {
	rng := model.NewRNG(t.Options.Seed ^ (uint64(step+1) * 0x9E3779B97F4A7C15))
	n := uint32(t.images.Len())
	px := t.Options.Config.Image.Pixels()
	for b := range t.Options.Batch {
		i := int(rng.Uint32() % n)
		copy(t.pixels[b*px:(b+1)*px], t.images.At(i))
		t.targets[b] = t.images.Labels[i]
	}
}

// ForEachBatch runs mix over every image of set, batch images at a time
// (the last batch padded with blank, unlabelled images), and calls fn after
// each with the index of its first image, how many of set's images it
// holds, and the batch: Logits, Embeddings and, per image, NLL.
func ForEachBatch(w *model.Weights, mix model.Mix, set *Images, batch int, fn func(first, n int, b *model.Batch)) {
	c := w.Config
	px := c.Image.Pixels()
	b := model.NewBatch(c, batch, c.Context)
	pixels, labels := make([]float32, batch*px), make([]int, batch)
	for first := 0; first < set.Len(); first += batch {
		n := min(batch, set.Len()-first)
		copy(pixels, set.Pixels[first*px:(first+n)*px])
		clear(pixels[n*px:])
		for i := range batch {
			labels[i] = -1
			if i < n {
				labels[i] = set.Labels[first+i]
			}
		}
		b.ForwardImages(w, mix, pixels, labels)
		fn(first, n, b)
	}
}

// EvaluateImages returns the mean cross-entropy (nats per image) and the
// accuracy of w running mix on set, batch images at a time.
func EvaluateImages(w *model.Weights, mix model.Mix, set *Images, batch int) (loss, accuracy float64) {
	if set.Len() == 0 {
		return math.NaN(), math.NaN()
	}
	vocab := w.Config.Vocab
	var sum float64
	correct := 0
	ForEachBatch(w, mix, set, batch, func(first, n int, b *model.Batch) {
		for i, v := range b.NLL()[:n] {
			sum += v
			if model.Argmax(b.Logits()[i*vocab:(i+1)*vocab]) == set.Labels[first+i] {
				correct++
			}
		}
	})
	return sum / float64(set.Len()), float64(correct) / float64(set.Len())
}
