package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
)

// A vision model (weights.MatViT) is loaded, fed and given a mix like a
// language model; then Classify runs one image through the mix and, with a
// retrieval index loaded (LoadIndex), finds its nearest entries. The text
// exports refuse it (textOnly).

// gpuClassify runs one image on the GPU backend (classifyGPU,
// gpu_vision.go): logits and the (not yet normalised) embedding, as
// model.Classify returns them, or an error matching ErrBackend when the
// device cannot run the model, so that backend "auto" falls back to the CPU.
// A variable so that tests can stand in for the GPU.
var gpuClassify = (*Engine).classifyGPU

// textOnly refuses a text export on a vision model.
func (e *Engine) textOnly(export string) error {
	if h := e.header; h != nil && h.IsVision() {
		im := h.Config.Image
		return fmt.Errorf("%w: this is a vision model (matvit): %s is for text generation; use classify (%d classes of %d×%d images)", ErrState, export, h.Config.Vocab, im.Size, im.Size)
	}
	return nil
}

// visionOnly refuses a vision export before load_header or on a language model.
func (e *Engine) visionOnly(export string) error {
	if e.header == nil {
		return fmt.Errorf("%w: %s before load_header", ErrState, export)
	}
	if !e.header.IsVision() {
		return fmt.Errorf("%w: this is a language model (matformer-lm): %s needs a vision model (matvit)", ErrState, export)
	}
	return nil
}

// Classify runs req's image through the current mix (set_mix) on the
// requested backend and, when req.K > 0 and an index is loaded, looks up
// its nearest entries.
func (e *Engine) Classify(req abi.ImageRequest) (abi.ImageResult, error) {
	if err := e.Allowed(CallClassify); err != nil {
		return abi.ImageResult{}, err
	}
	c := e.header.Config
	if missing := e.asm.Missing(e.mix); len(missing) > 0 {
		return abi.ImageResult{}, fmt.Errorf("%w: %d bytes in %d ranges, first at offset %d", ErrMissing, weights.Bytes(missing), len(missing), missing[0].Offset)
	}
	im := c.Image
	if want := im.Pixels(); len(req.Pixels) != 4*want {
		return abi.ImageResult{}, fmt.Errorf("%w: pixels are %d bytes; want C·S·S = %d floats (%d·%d·%d, %d bytes of f32 little-endian)",
			ErrArg, len(req.Pixels), want, im.Channels, im.Size, im.Size, 4*want)
	}
	if req.K < 0 || req.K > weights.MaxIndexCount {
		return abi.ImageResult{}, fmt.Errorf("%w: k %d (want 0 to %d)", ErrArg, req.K, weights.MaxIndexCount)
	}
	pixels := make([]float32, im.Pixels())
	for i := range pixels {
		x := math.Float32frombits(binary.LittleEndian.Uint32(req.Pixels[4*i:]))
		if !(x >= 0 && x <= 1) { // NaN too
			return abi.ImageResult{}, fmt.Errorf("%w: pixel value %d is %g; want values in [0, 1] (bytes divided by 255)", ErrArg, i, x)
		}
		pixels[i] = x
	}
	var logits, embedding []float32
	backend := "cpu"
	switch req.Backend {
	case "", "cpu":
	case "gpu", "auto":
		var err error
		logits, embedding, err = gpuClassify(e, pixels)
		switch {
		case err == nil:
			backend = "gpu"
		case req.Backend == "auto" && errors.Is(err, ErrBackend):
			logits, embedding = nil, nil // the CPU runs it below
		default:
			return abi.ImageResult{}, err
		}
	default:
		return abi.ImageResult{}, fmt.Errorf("%w: backend %q (want cpu, gpu or auto)", ErrArg, req.Backend)
	}
	if backend == "cpu" {
		logits, embedding = e.classifyCPU(pixels)
	}
	probs := append([]float32(nil), logits...)
	model.Softmax(probs)
	model.Normalize(embedding)
	res := abi.ImageResult{Class: model.Argmax(logits), Probs: probs, Logits: logits, Embedding: embedding, Backend: backend,
		Neighbors: []weights.Neighbor{}}
	if e.index != nil && req.K > 0 {
		res.Neighbors = e.index.Nearest(embedding, req.K)
	}
	return res, nil
}

// classifyCPU is model.Classify on a batch kept across calls (an index of
// thousands of images allocates it once): the same operations, the same bits.
func (e *Engine) classifyCPU(pixels []float32) (logits, embedding []float32) {
	w := e.asm.Weights
	if e.visionBatch == nil {
		e.visionBatch = model.NewBatch(w.Config, 1, w.Config.Context)
	}
	b := e.visionBatch
	b.ForwardImages(w, e.mix, pixels, nil)
	return append([]float32(nil), b.Logits()[:w.Config.Vocab]...), append([]float32(nil), b.Embeddings()...)
}

// LoadIndex decodes a .mati file and keeps it for Classify's neighbours; it
// must have been built by the loaded model (weights.ModelID).
func (e *Engine) LoadIndex(b []byte) (abi.IndexInfo, error) {
	if err := e.Allowed(CallLoadIndex); err != nil {
		return abi.IndexInfo{}, err
	}
	ix, err := weights.ReadIndex(b)
	if err != nil {
		return abi.IndexInfo{}, err
	}
	if err := ix.CheckModel(e.header); err != nil {
		return abi.IndexInfo{}, err
	}
	e.index = ix
	return abi.IndexInfo{Count: ix.Count, Dim: ix.Dim, Mix: ix.Mix, Classes: ix.Classes, ModelID: ix.ModelID, HasImages: ix.Image != nil}, nil
}

// IndexImage returns the stored pixels of index entry i, [C][S][S] bytes.
func (e *Engine) IndexImage(i int) ([]byte, error) {
	if err := e.Allowed(CallIndexImage); err != nil {
		return nil, err
	}
	if i < 0 || i >= e.index.Count {
		return nil, fmt.Errorf("%w: entry %d of an index of %d", ErrArg, i, e.index.Count)
	}
	return e.index.ImagePixels(i), nil
}
