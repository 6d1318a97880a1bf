package train

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/vmihailenco/msgpack/v5"
)

// TestCheckpointStreams: Save, which streams the weights and moments from
// memory, writes the bytes of the checkpoint document Resume reads: magic,
// version and msgpack.Marshal of a checkpoint with the arrays as bytes.
func TestCheckpointStreams(t *testing.T) {
	tok, trainIDs, validIDs := tokenized(t)
	tr, err := New(tinyOptions(2), tok, trainIDs, validIDs[:1025])
	if err != nil {
		t.Fatal(err)
	}
	tr.Step, tr.Optimizer.Step = 5, 5
	for i := range tr.Optimizer.M {
		tr.Optimizer.M[i], tr.Optimizer.V[i] = float32(i)*1e-3, float32(i%7)*1e-4
	}
	tr.History = []Point{{Step: 4, Train: []float64{1, 2}, Validation: []float64{3, 4}}}
	tr.Meta = map[string]string{"command": "test"}
	path := filepath.Join(t.TempDir(), "run.ckpt")
	if err := tr.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := msgpack.Marshal(&checkpoint{
		Options: tr.Options, Step: tr.Step, Tokenizer: model.Tokenizer{Merges: tr.Tokenizer.Merges},
		AdamStep: tr.Optimizer.Step, Weights: weights.EncodeF32(tr.Weights.Data),
		M: weights.EncodeF32(tr.Optimizer.M), Moment2: weights.EncodeF32(tr.Optimizer.V), History: tr.History, Meta: tr.Meta,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := binary.LittleEndian.AppendUint32([]byte(checkpointMagic), checkpointVersion)
	want = append(want, doc...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Save wrote %d bytes that differ from the %d of the checkpoint document", len(got), len(want))
	}
}
