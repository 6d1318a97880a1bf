package weights

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
)

// TestRouterEntries: a model with routers stores them as entries of section
// 0 (every mix needs them), reads them back, and checks them like every other
// tensor: a flipped byte is ErrChecksum.
func TestRouterEntries(t *testing.T) {
	w := RandomRouted(Random(TinyConfig(), 7), 3)
	c := w.Config
	var buf bytes.Buffer
	if err := Write(&buf, w, model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	got, h, err := Load(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.RouterBudget, w.RouterBudget) || !slices.Equal(got.Layers[2].Router, w.Layers[2].Router) {
		t.Fatal("routers did not survive a round trip")
	}
	var routerEntry *Entry
	for i, e := range h.Entries {
		if e.Tensor == model.LayerTensor(1, model.Router) {
			routerEntry = &h.Entries[i]
		}
		if (e.Tensor == model.RouterBudgetTensor || e.Tensor == model.LayerTensor(1, model.Router)) && !e.NeededBy(c.Uniform(0)) {
			t.Errorf("entry %s is not needed by S", e.Tensor)
		}
	}
	if routerEntry == nil {
		t.Fatal("no entry for layers.1.router")
	}
	bad := slices.Clone(file)
	bad[h.DataStart+routerEntry.Offset+5] ^= 0x10
	if _, _, err := Load(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrChecksum) {
		t.Errorf("Load(router byte flipped) = %v; want ErrChecksum", err)
	}
	// A header whose config promises routers must list their entries.
	h2 := *h
	h2.Entries = slices.DeleteFunc(slices.Clone(h.Entries), func(e Entry) bool { return e.Tensor == "router_budget" })
	if err := h2.Validate(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Validate(no router_budget entry) = %v; want ErrCorrupt", err)
	}
}
