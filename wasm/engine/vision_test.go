package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
)

// visionEngine loads a tiny random vision model whole, mix XL.
func visionEngine(t *testing.T) (*Engine, *model.Weights) {
	t.Helper()
	w := weights.Random(weights.TinyVisionConfig(), 2)
	var buf bytes.Buffer
	if err := weights.Write(&buf, w, model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	e := &Engine{}
	if _, err := e.LoadHeader(file, int64(len(file))); err != nil {
		t.Fatal(err)
	}
	if err := e.Feed(0, file); err != nil {
		t.Fatal(err)
	}
	mix, _ := e.ParseMix("XL")
	if err := e.SetMix(mix); err != nil {
		t.Fatal(err)
	}
	return e, w
}

func pixelBytes(px []float32) []byte {
	b := make([]byte, 4*len(px))
	for i, x := range px {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// TestClassifyGPUHook: Classify's one call into the GPU vision path, with a
// stand-in GPU: gpu and auto run it and say so; a GPU that cannot run the
// model (ErrBackend) leaves auto on the CPU, and any other error of it is
// returned.
func TestClassifyGPUHook(t *testing.T) {
	e, w := visionEngine(t)
	px := make([]float32, w.Config.Image.Pixels())
	for i := range px {
		px[i] = float32(i%29) / 28
	}
	req := func(backend string) abi.ImageRequest {
		return abi.ImageRequest{Pixels: pixelBytes(px), Backend: backend}
	}
	logits, _ := model.Classify(w, w.Config.Uniform(3), px)
	defer func(saved func(*Engine, []float32) ([]float32, []float32, error)) { gpuClassify = saved }(gpuClassify)

	fake := slices.Repeat([]float32{0.5}, w.Config.Vocab)
	gpuClassify = func(_ *Engine, pixels []float32) ([]float32, []float32, error) {
		return slices.Clone(fake), make([]float32, w.Config.Dim), nil
	}
	for _, backend := range []string{"gpu", "auto"} {
		if res, err := e.Classify(req(backend)); err != nil || res.Backend != "gpu" || !slices.Equal(res.Logits, fake) {
			t.Errorf("%s with the GPU path = %+v, %v; want the hook's logits", backend, res, err)
		}
	}
	if res, err := e.Classify(req("cpu")); err != nil || res.Backend != "cpu" {
		t.Errorf("cpu with the GPU path = %v, %v", res.Backend, err)
	}

	gpuClassify = func(*Engine, []float32) ([]float32, []float32, error) {
		return nil, nil, fmt.Errorf("%w: no adapter", ErrBackend)
	}
	if res, err := e.Classify(req("auto")); err != nil || res.Backend != "cpu" || !slices.Equal(res.Logits, logits) {
		t.Errorf("auto, GPU unavailable = %v, %v; want the CPU", res.Backend, err)
	}
	if _, err := e.Classify(req("gpu")); !errors.Is(err, ErrBackend) {
		t.Errorf("gpu, GPU unavailable = %v; want ErrBackend", err)
	}
	broken := errors.New("shader failed")
	gpuClassify = func(*Engine, []float32) ([]float32, []float32, error) { return nil, nil, broken }
	if _, err := e.Classify(req("auto")); !errors.Is(err, broken) {
		t.Errorf("auto, GPU path failing = %v; want its error", err)
	}
}
