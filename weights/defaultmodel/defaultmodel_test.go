package defaultmodel

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

var update = flag.Bool("update", false, "rewrite default.matw from the generator (only for a random placeholder model)")

// placeholderConfig is the random model shipped until a trained one replaces it.
func placeholderConfig() model.Config {
	return model.Config{Vocab: 256, Dim: 64, Layers: 4, Heads: 4, FFNWidths: model.NestedWidths(256),
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
}

func TestDefaultModelLoads(t *testing.T) {
	w, h, err := weights.Load(bytes.NewReader(Bytes), int64(len(Bytes)))
	if err != nil {
		t.Fatalf("weights.Load(default.matw) = %v", err)
	}
	if len(w.Data) == 0 || h.Config.Layers == 0 {
		t.Fatalf("default model is empty: %+v", h.Config)
	}
}

// TestPlaceholderDrift fails when the committed random placeholder differs
// from what its generator writes. Regenerate with:
//
//	go test ./weights/defaultmodel -run TestPlaceholderDrift -update
func TestPlaceholderDrift(t *testing.T) {
	h, err := weights.ReadHeader(bytes.NewReader(Bytes), int64(len(Bytes)))
	if err != nil && !*update {
		t.Fatal(err)
	}
	if !*update && h.Meta["kind"] != "random" {
		t.Skip("default model is trained, not the random placeholder")
	}
	var buf bytes.Buffer
	meta := map[string]string{"kind": "random", "seed": "1", "note": "untrained placeholder; regenerate: go test ./weights/defaultmodel -run TestPlaceholderDrift -update"}
	if err := weights.Write(&buf, weights.Random(placeholderConfig(), 1), model.Tokenizer{}, meta); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(Name, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(buf.Bytes(), Bytes) {
		t.Fatalf("default.matw differs from its generator; rerun with -update")
	}
}
