package host

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/train"
)

// VisionModel is a vision model's file with its header read into a started
// module; Fetch then loads the bytes of one mix.
type VisionModel struct {
	Module  *Module
	Info    *abi.ModelInfo
	Name    string   // the file, for messages
	Classes []string // a name per class (ClassNames)
	Mix     []string // after Fetch: the granularity name per layer
	Spec    string   // after Fetch: the mix spec that runs

	file  io.ReaderAt
	close func()
}

// OpenVision opens a vision model's weights file, starts the module
// (wasmPath as StartModule takes it), hands it the header, and refuses a
// language model. Close ends both.
func OpenVision(ctx context.Context, path, wasmPath string) (*VisionModel, error) {
	file, size, name, err := OpenModel(path)
	if err != nil {
		return nil, err
	}
	closeFile := func() {
		if c, ok := file.(io.Closer); ok {
			c.Close()
		}
	}
	mod, closeModule, err := StartModule(ctx, wasmPath, Config{})
	if err != nil {
		closeFile()
		return nil, err
	}
	v := &VisionModel{Module: mod, Name: name, file: file, close: func() { closeModule(); closeFile() }}
	if v.Info, err = mod.ReadHeader(ctx, file, size); err != nil {
		v.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := v.Info.Header.RequireVisionModel(); err != nil {
		v.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	v.Classes = ClassNames(v.Info.Header)
	return v, nil
}

// Close stops the module and closes the file.
func (v *VisionModel) Close() { v.close() }

// Fetch selects mix and feeds the module the bytes it needs.
func (v *VisionModel) Fetch(ctx context.Context, mix string) error {
	info, err := v.Module.FetchMix(ctx, v.file, v.Info, mix)
	if err != nil {
		return fmt.Errorf("%s: %w", v.Name, err)
	}
	v.Mix, v.Spec = info.Mix, mix
	return nil
}

// ClassNames reads the header's meta "classes" (comma-separated, written
// by training); a class without a name is "class N".
func ClassNames(h *weights.Header) []string {
	names := strings.Split(h.Meta["classes"], ",")
	if h.Meta["classes"] == "" || len(names) != h.Config.Vocab {
		names = make([]string, h.Config.Vocab)
		for i := range names {
			names[i] = fmt.Sprintf("class %d", i)
		}
	}
	return names
}

// LabelName names a data set's label with a model's or an index's class
// names.
func LabelName(names []string, label int) string {
	if label >= 0 && label < len(names) {
		return names[label]
	}
	return fmt.Sprintf("class %d", label)
}

// RankedClass is one class with its probability.
type RankedClass struct {
	Class int     `json:"class"`
	Name  string  `json:"name"`
	Prob  float32 `json:"prob"`
}

// TopClasses returns the n most likely classes, most likely first (the
// lower class on ties).
func TopClasses(probs []float32, names []string, n int) []RankedClass {
	out := make([]RankedClass, len(probs))
	for i, p := range probs {
		out[i] = RankedClass{Class: i, Name: names[i], Prob: p}
	}
	slices.SortStableFunc(out, func(a, b RankedClass) int {
		switch {
		case a.Prob > b.Prob:
			return -1
		case a.Prob < b.Prob:
			return 1
		}
		return 0
	})
	return out[:min(n, len(out))]
}

// IndexOptions say how BuildIndex stores the embeddings.
type IndexOptions struct {
	Backend string // cpu, gpu or auto
	DType   string // f32 or f16
	Images  bool   // store each image's pixels (u8) too
	// Progress, when not nil, is told how many images are done after each.
	Progress func(done int)
}

// BuildIndex embeds every image of set with the fetched mix and returns the
// retrieval index and the share of the images the encoder classifies as
// their label.
func (v *VisionModel) BuildIndex(ctx context.Context, set *train.Images, o IndexOptions) (*weights.Index, float64, error) {
	h := v.Info.Header
	im := h.Config.Image
	if set.Image.Size != im.Size || set.Image.Channels != im.Channels {
		return nil, 0, fmt.Errorf("%s: the model takes %d×%d images of %d channels, %s's are %d×%d of %d", v.Name,
			im.Size, im.Size, im.Channels, set.Name, set.Image.Size, set.Image.Size, set.Image.Channels)
	}
	ix := &weights.Index{IndexHeader: weights.IndexHeader{ModelID: weights.ModelID(h), Mix: v.Mix, Dim: h.Config.Dim,
		Count: set.Len(), Classes: set.Classes, Labels: set.Labels, DType: o.DType}}
	if o.Images {
		ix.Image = &weights.IndexImage{Size: im.Size, Channels: im.Channels}
		ix.Pixels = make([]byte, 0, set.Len()*im.Pixels())
	}
	ix.Embeddings = make([]float32, 0, set.Len()*h.Config.Dim)
	correct := 0
	for i := range set.Len() {
		px := set.At(i)
		res, err := v.Module.Classify(ctx, px, o.Backend, 0)
		if err != nil {
			return nil, 0, fmt.Errorf("image %d: %w", i, err)
		}
		if res.Class == set.Labels[i] {
			correct++
		}
		ix.Embeddings = append(ix.Embeddings, res.Embedding...)
		if o.Images {
			for _, x := range px {
				ix.Pixels = append(ix.Pixels, uint8(min(255, max(0, x*255+0.5))))
			}
		}
		if o.Progress != nil {
			o.Progress(i + 1)
		}
	}
	return ix, float64(correct) / float64(max(1, set.Len())), nil
}
