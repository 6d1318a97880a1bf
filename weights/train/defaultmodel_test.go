package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

// austenValidation is the committed validation split of the Austen corpus
// (testdata/austen-validation.txt), so that CI can check the default model
// without downloading the novels. TestAusten checks it against the real
// split where the novels are available; regenerate it with
//
//	MATEDGE_AUSTEN=DIR go test ./weights/train -run TestAusten -update
const austenValidationSHA256 = "e627d744ae4460a812fe43ebfcee818d0b61425ba529ac93aed1f5bfeb101744"

// TestDefaultModelQuality evaluates the embedded default model on the Austen
// validation split and checks that it reproduces the smallest granularity's
// validation loss stored in its header (the others are the same code on
// more rows). The header was measured by the training binary, whose kernel
// set (model.Kernels) may round differently from this test's, so the loss
// must agree to float32 rounding accumulated over the network: 1e-4 nats.
func TestDefaultModelQuality(t *testing.T) {
	w, h, err := weights.Load(bytes.NewReader(defaultmodel.Bytes), int64(len(defaultmodel.Bytes)))
	if err != nil {
		t.Fatal(err)
	}
	table, err := h.Quality()
	if err != nil {
		t.Fatal(err)
	}
	if table == nil || h.Meta["corpus"] != "austen" {
		t.Skip("the default model is not a trained Austen model with a quality table")
	}
	if testing.Short() {
		t.Skip("evaluates 60k tokens")
	}
	text, err := os.ReadFile("testdata/austen-validation.txt")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(text); hex.EncodeToString(sum[:]) != austenValidationSHA256 {
		t.Fatalf("testdata/austen-validation.txt has sha256 %x; want %s", sum, austenValidationSHA256)
	}
	seqLen, err := strconv.Atoi(h.Meta["seq_len"])
	if err != nil {
		t.Fatalf("meta seq_len %q: %v", h.Meta["seq_len"], err)
	}
	want := table[0]
	mix, err := w.Config.ParseMix(want.Mix)
	if err != nil {
		t.Fatal(err)
	}
	ids := h.Tokenizer.NewEncoder().Encode(text)
	loss, n := Evaluate(w, mix, ids, seqLen, 4)
	if n != want.Tokens || math.Abs(loss-want.LossNatsPerToken) > 1e-4 {
		t.Errorf("Evaluate(default, %s, validation) = %.6f nats/token over %d tokens; header says %.6f over %d",
			want.Mix, loss, n, want.LossNatsPerToken, want.Tokens)
	}
}
