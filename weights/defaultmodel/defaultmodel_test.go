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
