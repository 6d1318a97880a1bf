package engine

import (
	"errors"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// TestHeaderTooLarge: a consistent header for a model larger than a wasm32
// module can hold, whose file size is not known yet (a download), is refused
// with ErrTooLarge before anything is allocated for it.
func TestHeaderTooLarge(t *testing.T) {
	c := model.Config{Vocab: 1 << 17, Dim: 4096, Layers: 32, Heads: 32, FFNWidths: model.NestedWidths(16384),
		Context: 4096, RopeTheta: 10000, NormEps: 1e-5}
	h := weights.Header{Config: c, Entries: weights.Plan(c, weights.F32)}
	last := h.Entries[len(h.Entries)-1]
	h.DataSize = last.Offset + last.Length
	file, err := weights.EncodeHeader(&h)
	if err != nil {
		t.Fatal(err)
	}
	var e Engine
	if _, err := e.LoadHeader(file, -1); !errors.Is(err, weights.ErrTooLarge) {
		t.Fatalf("LoadHeader(%d-byte model) = %v; want ErrTooLarge", h.DataSize, err)
	}
}
