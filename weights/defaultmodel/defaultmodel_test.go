package defaultmodel

import (
	"bytes"
	"testing"

	"github.com/matedge/matedge/weights"
)

func TestDefaultModelLoads(t *testing.T) {
	w, h, err := weights.Load(bytes.NewReader(Bytes), int64(len(Bytes)))
	if err != nil {
		t.Fatalf("weights.Load(default.matw) = %v", err)
	}
	if len(w.Data) == 0 || h.Config.Layers == 0 {
		t.Fatalf("default model is empty: %+v", h.Config)
	}
}

// TestDefaultModelVersion: the embedded model is in the current format, so
// its header is checked (it was rewritten from version 1 with matedge
// inspect -upgrade, tensor bytes unchanged).
func TestDefaultModelVersion(t *testing.T) {
	h, err := weights.ParseHeader(Bytes, int64(len(Bytes)))
	if err != nil {
		t.Fatal(err)
	}
	if h.FormatVersion != weights.Version {
		t.Fatalf("default.matw is format version %d; want %d (matedge inspect default.matw -upgrade default.matw)", h.FormatVersion, weights.Version)
	}
}
