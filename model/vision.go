package model

import (
	"fmt"
	"math"
)

// MatViT: the same nested transformer as an image encoder and classifier
// (the seed paper's second half). A Config with Image set describes one:
//
//	pixels [C][S][S] in [0, 1]
//	  → cut into T = (S/P)² patches of P·P·C values, row by row
//	  → x_t = patch_embed · patch_t + pos_embed[t]          ([T][D])
//	  → the blocks of the language model, with bidirectional attention and no RoPE
//	  → mean over the T rows, final_norm                     (the embedding, [D])
//	  → head · embedding                                     (class logits, [classes])
//
// The FFNs are nested as in the language model, so every Mix is an encoder,
// and all of them share one metric space: an index built with XL's
// embeddings answers queries embedded by S (adaptive retrieval).
//
// The config's Vocab is the number of classes and Context the number of
// patches; the tensors are those of the language model with embed replaced
// by patch_embed and pos_embed.

// ImageConfig is the input of a vision model.
type ImageConfig struct {
	Size     int `msgpack:"size" json:"size"`         // height and width in pixels
	Patch    int `msgpack:"patch" json:"patch"`       // side of a square patch; divides Size
	Channels int `msgpack:"channels" json:"channels"` // 1 (grey) or 3 (RGB)
}

// Patches is T, the number of patches of an image.
func (im ImageConfig) Patches() int { n := im.Size / im.Patch; return n * n }

// PatchLen is the number of values in one patch, P·P·C.
func (im ImageConfig) PatchLen() int { return im.Patch * im.Patch * im.Channels }

// Pixels is the number of values in one image, C·S·S.
func (im ImageConfig) Pixels() int { return im.Channels * im.Size * im.Size }

func (im *ImageConfig) validate(c Config) error {
	switch {
	case im.Size <= 0 || im.Size > 1024:
		return fmt.Errorf("model: image size %d out of range [1, 1024]", im.Size)
	case im.Patch <= 0 || im.Size%im.Patch != 0:
		return fmt.Errorf("model: patch %d does not divide image size %d", im.Patch, im.Size)
	case im.Channels != 1 && im.Channels != 3:
		return fmt.Errorf("model: %d image channels, want 1 or 3", im.Channels)
	case c.Context != im.Patches():
		return fmt.Errorf("model: context %d, but a %d-pixel image has %d patches of %d", c.Context, im.Size, im.Patches(), im.Patch)
	case c.Vocab < 2:
		return fmt.Errorf("model: a classifier needs at least 2 classes (vocab), have %d", c.Vocab)
	case c.RouterBudgets != 0:
		return fmt.Errorf("model: a vision model has no token router")
	}
	return nil
}

// IsVision reports whether c is a MatViT image model.
func (c Config) IsVision() bool { return c.Image != nil }

// imageScratch is the part of a Batch only a vision model uses.
type imageScratch struct {
	patches    []float32 // [N][P·P·C] the input cut into patches
	labels     []int     // [B] class of each image; -1 means no loss
	pooled     []float32 // [B][D] mean of the last block's output over the patches
	pooledNorm []float32 // [B][D] final_norm(pooled): the embedding
	pooledRstd []float32 // [B]
	dPooled    []float32 // [B][D]
}

// PatchesOf cuts images ([B][C][S][S], B = len(out)/(T·P·P·C)) into
// patches, out [B][T][C][P][P]: patch t = (row, col) of the (S/P)×(S/P) grid,
// row by row.
func PatchesOf(im ImageConfig, out, pixels []float32) {
	s, p, ch := im.Size, im.Patch, im.Channels
	grid, plen := s/p, im.PatchLen()
	images := len(pixels) / im.Pixels()
	for b := range images {
		img := pixels[b*im.Pixels() : (b+1)*im.Pixels()]
		for t := range grid * grid {
			row := out[(b*grid*grid+t)*plen : (b*grid*grid+t+1)*plen]
			y0, x0 := (t/grid)*p, (t%grid)*p
			i := 0
			for c := range ch {
				for dy := range p {
					copy(row[i:i+p], img[c*s*s+(y0+dy)*s+x0:])
					i += p
				}
			}
		}
	}
}

// ForwardImages runs images ([B][C][S][S], values in [0, 1]) through mix and
// returns the mean cross-entropy of labels ([B]; -1 skips an image; nil
// computes logits and embeddings only and returns 0). Logits are then
// [B][classes] at the start of Logits(), embeddings [B][D] in Embeddings().
func (b *Batch) ForwardImages(w *Weights, mix Mix, pixels []float32, labels []int) float64 {
	c := b.Config
	im := c.Image
	if im == nil {
		panic("model: ForwardImages on a language model")
	}
	n, d, v := b.B*b.T, c.Dim, c.Vocab
	if len(pixels) != b.B*im.Pixels() || (labels != nil && len(labels) != b.B) {
		panic("model: ForwardImages: pixels must be [B][C][S][S] and labels [B]")
	}
	if err := c.CheckMix(mix); err != nil {
		panic(err)
	}
	b.mix = append(b.mix[:0], mix...)
	x := &b.image
	PatchesOf(*im, x.patches, pixels)
	in := b.layers[0].in
	matMulT(in, x.patches, w.PatchEmbed, n, im.PatchLen(), d)
	for r := range n {
		Add(in[r*d:(r+1)*d], w.PosEmbed[(r%b.T)*d:(r%b.T+1)*d])
	}
	for l := range w.Layers {
		out := b.finalIn
		if l+1 < c.Layers {
			out = b.layers[l+1].in
		}
		b.blockForward(&w.Layers[l], &b.layers[l], c.FFNWidths[mix[l]], out)
	}
	meanPool(x.pooled, b.finalIn, b.B, b.T, d)
	rmsNormForward(x.pooledNorm, x.pooledRstd, x.pooled, w.FinalNorm, c.NormEps)
	logits := b.logits[:b.B*v]
	matMulT(logits, x.pooledNorm, w.Head, b.B, d, v)
	if labels == nil {
		for i := range x.labels {
			x.labels[i] = -1
		}
		return 0
	}
	copy(x.labels, labels)
	return crossEntropyForward(b.probs[:b.B*v], logits, b.nll, labels, v)
}

// Embeddings returns the image embeddings of the last ForwardImages, [B][D].
func (b *Batch) Embeddings() []float32 { return b.image.pooledNorm }

// BackwardImages is Backward for the last ForwardImages, which must have had
// labels: it adds scale · ∂loss/∂w to grad.
func (b *Batch) BackwardImages(w, grad *Weights, scale float32) {
	c := b.Config
	im := c.Image
	n, d, v := b.B*b.T, c.Dim, c.Vocab
	x := &b.image
	dLogits := b.probs[:b.B*v]
	crossEntropyBackward(dLogits, x.labels, v, scale)
	matTMulAdd(grad.Head, dLogits, x.pooledNorm, b.B, v, d)
	dNorm := b.dNorm[:b.B*d]
	clear(dNorm)
	matMulAdd(dNorm, dLogits, w.Head, b.B, v, d)
	clear(x.dPooled)
	rmsNormBackward(x.dPooled, grad.FinalNorm, dNorm, x.pooled, x.pooledRstd, w.FinalNorm)
	inv := 1 / float32(b.T)
	for r := range n {
		dst, src := b.dResid[r*d:(r+1)*d], x.dPooled[(r/b.T)*d:(r/b.T+1)*d]
		for i := range dst {
			dst[i] = src[i] * inv
		}
	}
	for l := c.Layers - 1; l >= 0; l-- {
		b.blockBackward(&w.Layers[l], &grad.Layers[l], &b.layers[l], c.FFNWidths[b.mix[l]])
	}
	for r := range n {
		t := r % b.T
		Add(grad.PosEmbed[t*d:(t+1)*d], b.dResid[r*d:(r+1)*d])
	}
	matTMulAdd(grad.PatchEmbed, b.dResid, x.patches, n, d, im.PatchLen())
}

// GradientImages is Gradient for a vision model: it sets grad to
// ∂objective/∂w on one batch of images and labels and returns each Mix's
// cross-entropy.
func (b *Batch) GradientImages(w, grad *Weights, obj Objective, pixels []float32, labels []int) []float64 {
	return obj.gradient(grad,
		func(mix Mix) float64 { return b.ForwardImages(w, mix, pixels, labels) },
		func(scale float32) { b.BackwardImages(w, grad, scale) })
}

// meanPool sets out[b] = mean over t of x[b][t] (x [B][T][D]).
func meanPool(out, x []float32, batch, seqLen, d int) {
	clear(out)
	inv := 1 / float32(seqLen)
	for b := range batch {
		o := out[b*d : (b+1)*d]
		for t := range seqLen {
			Add(o, x[(b*seqLen+t)*d:(b*seqLen+t+1)*d])
		}
		for i := range o {
			o[i] *= inv
		}
	}
}

// Classify runs one image ([C][S][S], values in [0, 1]) through mix and
// returns its class logits and its embedding. It is the reference the
// module's and the GPU's vision paths are compared to.
func Classify(w *Weights, mix Mix, pixels []float32) (logits, embedding []float32) {
	b := NewBatch(w.Config, 1, w.Config.Context)
	b.ForwardImages(w, mix, pixels, nil)
	return append([]float32(nil), b.logits[:w.Config.Vocab]...), append([]float32(nil), b.image.pooledNorm...)
}

// Normalize scales v to unit length in place (a zero vector stays zero):
// retrieval compares embeddings by cosine, the dot product of unit vectors.
func Normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
}
