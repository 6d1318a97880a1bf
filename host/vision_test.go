package host

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/host/webgpuhost"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

// visionFile writes a tiny random MatViT with a quality table and class
// names, as training would.
func visionFile(t *testing.T, seed uint64) (*model.Weights, []byte, *weights.Header) {
	t.Helper()
	w := weights.Random(weights.TinyVisionConfig(), seed)
	meta := map[string]string{"classes": "a,b,c,d,e,f,g,h,i,j"}
	weights.SetQuality(meta, []weights.Quality{
		{Mix: "S", LossNatsPerToken: 1, Accuracy: 0.7}, {Mix: "M", LossNatsPerToken: 0.9, Accuracy: 0.75},
		{Mix: "L", LossNatsPerToken: 0.8, Accuracy: 0.8}, {Mix: "XL", LossNatsPerToken: 0.7, Accuracy: 0.8},
	})
	var buf bytes.Buffer
	if err := weights.Write(&buf, w, model.Tokenizer{}, meta); err != nil {
		t.Fatal(err)
	}
	h, err := weights.ReadHeader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return w, buf.Bytes(), h
}

// randomImages returns n images of c's shape with values in [0, 1].
func randomImages(c model.Config, n int, seed uint64) [][]float32 {
	r := model.NewRNG(seed)
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, c.Image.Pixels())
		for j := range out[i] {
			out[i][j] = r.Float32()
		}
	}
	return out
}

// sameBits reports whether a and b hold the same float32 bits.
func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// TestClassifyMatchesReference: the module's logits and embedding are
// model.Classify's bit for bit, for uniform and Mix'n'Match mixes, a mix
// with only its own bytes fed, and several images in a row on one module.
func TestClassifyMatchesReference(t *testing.T) {
	ctx := context.Background()
	w, file, _ := visionFile(t, 3)
	c := w.Config
	images := randomImages(c, 3, 11)
	check := func(m *Module, spec string) {
		t.Helper()
		mix, err := c.ParseMix(spec)
		if err != nil {
			t.Fatal(err)
		}
		for i, px := range images {
			res, err := m.Classify(ctx, px, "", 0)
			if err != nil {
				t.Fatalf("%s image %d: %v", spec, i, err)
			}
			logits, emb := model.Classify(w, mix, px)
			model.Normalize(emb)
			probs := slices.Clone(logits)
			model.Softmax(probs)
			if !sameBits(res.Logits, logits) || !sameBits(res.Embedding, emb) || !sameBits(res.Probs, probs) {
				t.Errorf("%s image %d: module logits %v embedding %v; model.Classify %v %v", spec, i, res.Logits, res.Embedding, logits, emb)
			}
			if res.Class != slices.Index(logits, slices.Max(logits)) || res.Backend != "cpu" || res.Neighbors == nil || len(res.Neighbors) != 0 {
				t.Errorf("%s image %d: class %d backend %q neighbors %v", spec, i, res.Class, res.Backend, res.Neighbors)
			}
		}
	}
	// Only S's bytes fed.
	m := startWith(t, Config{GPU: webgpuhost.NoGPU})
	info, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S")
	if err != nil {
		t.Fatal(err)
	}
	if info.Architecture != weights.MatViT {
		t.Errorf("ModelInfo.architecture %q, want matvit", info.Architecture)
	}
	check(m, "S")
	if _, err := m.SetMix(ctx, "XL"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Classify(ctx, images[0], "cpu", 0); !errors.Is(err, ErrMissing) {
		t.Errorf("classify with XL's bytes missing = %v; want ERR_MISSING", err)
	}
	// The whole file: uniform and Mix'n'Match mixes.
	if _, err := m.FetchMix(ctx, bytes.NewReader(file), info, "XL"); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{"XL", "M", "S,XL", "XL,S"} {
		if _, err := m.SetMix(ctx, spec); err != nil {
			t.Fatal(err)
		}
		check(m, spec)
	}
	// A text model's info says so.
	lm := startWith(t, Config{GPU: webgpuhost.NoGPU})
	text := tinyFile(t, weights.Random(weights.TinyConfig(), 1))
	if info, _, err := lm.Load(ctx, bytes.NewReader(text), int64(len(text)), "S"); err != nil || info.Architecture != weights.MatFormerLM {
		t.Errorf("text model: architecture %v, %v", info, err)
	}
}

// TestClassifyRefuses: bad images and backends, and the wrong kind of model
// either way, each with its code and a clear message.
func TestClassifyRefuses(t *testing.T) {
	ctx := context.Background()
	w, file, _ := visionFile(t, 3)
	m := startWith(t, Config{GPU: webgpuhost.NoGPU})
	if _, err := m.Classify(ctx, make([]float32, 784), "", 0); !errors.Is(err, ErrState) {
		t.Errorf("classify before load_header = %v; want ERR_STATE", err)
	}
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "XL"); err != nil {
		t.Fatal(err)
	}
	px := randomImages(w.Config, 1, 1)[0]
	bad := slices.Clone(px)
	bad[5] = 255
	nan := slices.Clone(px)
	nan[0] = float32(math.NaN())
	for _, tc := range []struct {
		name    string
		pixels  []float32
		backend string
		k       int
		code    *Error
		says    string
	}{
		{"short", px[:100], "", 0, ErrArg, "want C·S·S = 784 floats (1·28·28"},
		{"long", append(slices.Clone(px), 0), "", 0, ErrArg, "784 floats"},
		{"a byte value", bad, "", 0, ErrArg, "pixel value 5 is 255"},
		{"NaN", nan, "", 0, ErrArg, "pixel value 0 is NaN"},
		{"negative k", px, "", -1, ErrArg, "k -1"},
		{"unknown backend", px, "tpu", 0, ErrArg, "backend \"tpu\""},
		{"gpu without a GPU", px, "gpu", 0, ErrBackend, "the host offers no GPU"},
	} {
		_, err := m.Classify(ctx, tc.pixels, tc.backend, tc.k)
		if !errors.Is(err, tc.code) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v; want %s saying %q", tc.name, err, tc.code.Msg, tc.says)
		}
	}
	if res, err := m.Classify(ctx, px, "auto", 0); err != nil || res.Backend != "cpu" {
		t.Errorf("auto without a GPU: %+v, %v; want cpu", res, err)
	}

	// Text exports refuse the vision model, with the message saying so.
	for name, call := range map[string]func() error{
		"reset":    func() error { _, err := m.Reset(ctx, abi.Options{}); return err },
		"prompt":   func() error { _, err := m.Prompt(ctx, "hello"); return err },
		"step":     func() error { _, _, _, err := m.Step(ctx); return err },
		"widths":   func() error { _, err := m.Widths(ctx); return err },
		"generate": func() error { _, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 4}, nil); return err },
	} {
		export := strings.Replace(name, "generate", "reset", 1) // Generate starts with a reset
		if err := call(); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "this is a vision model (matvit): "+export+" is for text generation") {
			t.Errorf("%s on a vision model = %v; want ERR_STATE saying it is a vision model", name, err)
		}
	}

	// speculation never fails: a vision model has no speculative sequence.
	if info, err := m.Speculation(ctx); err != nil || len(info.Draft) != 0 || info.Rounds != 0 || info.Proposed != 0 || info.Accepted != 0 || info.K != 0 {
		t.Errorf("speculation on a vision model = %+v, %v; want zeros", info, err)
	}

	// Vision exports refuse a language model.
	lm := startWith(t, Config{GPU: webgpuhost.NoGPU})
	text := tinyFile(t, weights.Random(weights.TinyConfig(), 1))
	if _, _, err := lm.Load(ctx, bytes.NewReader(text), int64(len(text)), "S"); err != nil {
		t.Fatal(err)
	}
	if _, err := lm.Classify(ctx, px, "", 0); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "language model") {
		t.Errorf("classify on a language model = %v; want ERR_STATE", err)
	}
	if _, err := lm.LoadIndex(ctx, []byte("MATI")); !errors.Is(err, ErrState) {
		t.Errorf("load_index on a language model = %v; want ERR_STATE", err)
	}
	if _, err := lm.IndexImage(ctx, 0); !errors.Is(err, ErrState) {
		t.Errorf("index_image on a language model = %v; want ERR_STATE", err)
	}
}

// buildIndex embeds images natively with mix and writes an index.
func buildIndex(t *testing.T, w *model.Weights, h *weights.Header, mix model.Mix, images [][]float32, withImages bool) []byte {
	t.Helper()
	c := w.Config
	ix := &weights.Index{IndexHeader: weights.IndexHeader{ModelID: weights.ModelID(h), Mix: c.MixNames(mix), Dim: c.Dim,
		Count: len(images), Classes: strings.Split(h.Meta["classes"], ","), DType: "f32"}}
	if withImages {
		ix.Image = &weights.IndexImage{Size: c.Image.Size, Channels: c.Image.Channels}
	}
	for _, px := range images {
		logits, emb := model.Classify(w, mix, px)
		model.Normalize(emb)
		ix.Embeddings = append(ix.Embeddings, emb...)
		ix.Labels = append(ix.Labels, slices.Index(logits, slices.Max(logits)))
		if withImages {
			for _, x := range px {
				ix.Pixels = append(ix.Pixels, byte(math.Round(float64(x)*255)))
			}
		}
	}
	var buf bytes.Buffer
	if err := weights.WriteIndex(&buf, ix); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIndexRetrieval: an index built with XL answers queries embedded by
// S with the same neighbours as a native search; index_image returns the
// stored pixels; indexes of another model, damaged ones and missing images
// are refused.
func TestIndexRetrieval(t *testing.T) {
	ctx := context.Background()
	w, file, h := visionFile(t, 3)
	c := w.Config
	images := randomImages(c, 20, 5)
	indexFile := buildIndex(t, w, h, c.Uniform(c.Granularities()-1), images, true)
	m := startWith(t, Config{GPU: webgpuhost.NoGPU})
	if _, err := m.LoadIndex(ctx, indexFile); !errors.Is(err, ErrState) {
		t.Errorf("load_index before load_header = %v; want ERR_STATE", err)
	}
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.IndexImage(ctx, 0); !errors.Is(err, ErrState) {
		t.Errorf("index_image before load_index = %v; want ERR_STATE", err)
	}
	info, err := m.LoadIndex(ctx, indexFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Count != 20 || info.Dim != c.Dim || !info.HasImages || info.ModelID != weights.ModelID(h) || len(info.Classes) != 10 || len(info.Mix) != c.Layers {
		t.Errorf("IndexInfo %+v", info)
	}
	ix, err := weights.ReadIndex(indexFile)
	if err != nil {
		t.Fatal(err)
	}
	for i, px := range images[:4] {
		res, err := m.Classify(ctx, px, "cpu", 5)
		if err != nil {
			t.Fatal(err)
		}
		_, emb := model.Classify(w, c.Uniform(0), px)
		model.Normalize(emb)
		if want := ix.Nearest(emb, 5); !slices.Equal(res.Neighbors, want) {
			t.Errorf("query %d: neighbours %v, native %v", i, res.Neighbors, want)
		}
	}
	for _, i := range []int{0, 19} {
		got, err := m.IndexImage(ctx, i)
		if err != nil || !bytes.Equal(got, ix.ImagePixels(i)) {
			t.Errorf("index_image(%d) = %d bytes, %v", i, len(got), err)
		}
	}
	for _, i := range []int{-1, 20} {
		if _, err := m.IndexImage(ctx, i); !errors.Is(err, ErrArg) {
			t.Errorf("index_image(%d) = %v; want ERR_ARG", i, err)
		}
	}

	// Refused indexes leave the loaded one in place.
	w2, _, h2 := visionFile(t, 4)
	other := buildIndex(t, w2, h2, c.Uniform(0), images[:3], false)
	if _, err := m.LoadIndex(ctx, other); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "index built by another model") {
		t.Errorf("index of another model = %v; want ERR_FORMAT", err)
	}
	for name, b := range map[string][]byte{
		"truncated": indexFile[:len(indexFile)-1], "a weights file": file, "empty": nil,
	} {
		if _, err := m.LoadIndex(ctx, b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s as an index = %v; want ERR_FORMAT", name, err)
		}
	}
	if res, err := m.Classify(ctx, images[0], "", 1); err != nil || len(res.Neighbors) != 1 || res.Neighbors[0].Index != 0 {
		t.Errorf("after refused indexes: %+v, %v; want the first index, nearest entry 0", res, err)
	}
	// An index without images.
	plain := buildIndex(t, w, h, c.Uniform(0), images[:3], false)
	if info, err := m.LoadIndex(ctx, plain); err != nil || info.HasImages {
		t.Fatalf("index without images: %+v, %v", info, err)
	}
	if _, err := m.IndexImage(ctx, 0); !errors.Is(err, ErrState) {
		t.Errorf("index_image without images = %v; want ERR_STATE", err)
	}
}

// TestPlanVision: the plan export picks a vision model's most accurate
// encoder that fits (L: as accurate as XL, smaller) with reasons.
func TestPlanVision(t *testing.T) {
	ctx := context.Background()
	_, file, _ := visionFile(t, 3)
	m := startWith(t, Config{GPU: webgpuhost.NoGPU})
	if _, err := m.ReadHeader(ctx, bytes.NewReader(file), int64(len(file))); err != nil {
		t.Fatal(err)
	}
	res, err := m.Plan(ctx, abi.PlanRequest{Capabilities: planner.Capabilities{LogicalCores: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Error != "" || res.Plan.Spec != "L" || res.Plan.Backend != "cpu" || res.Plan.ExpectedAccuracy != 0.8 || len(res.Plan.Reasons) == 0 {
		t.Errorf("plan %+v", res)
	}
}
