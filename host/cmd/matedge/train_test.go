package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matedge/matedge/weights"
)

// TestTrainEval trains a tiny model on the Opticks fixture with the CLI and
// checks that eval reproduces the quality table train wrote into its header.
func TestTrainEval(t *testing.T) {
	run := matedge(t)
	out := filepath.Join(t.TempDir(), "tiny.matw")
	_, stderr, code := run("train", "-data", "opticks", "-vocab", "300", "-dim", "16", "-layers", "2", "-heads", "2",
		"-context", "32", "-steps", "6", "-batch", "2", "-eval-every", "3", "-eval-tokens", "256", "-out", out)
	if code != 0 {
		t.Fatalf("matedge train: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "step 3 validation") {
		t.Errorf("train printed no periodic validation:\n%s", stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	h, err := weights.ReadHeader(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	table, err := h.Quality()
	if err != nil || len(table) != 6 {
		t.Fatalf("quality table = %+v, %v; want 4 uniform mixes and 2 presets", table, err)
	}
	for _, want := range []weights.Quality{table[0], table[4]} {
		stdout, stderr, code := run("eval", "-model", out, "-text", "opticks", "-mix", want.Mix, "-json")
		if code != 0 {
			t.Fatalf("matedge eval -mix %s: exit %d\n%s", want.Mix, code, stderr)
		}
		var got evalResult
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("eval -json printed %q: %v", stdout, err)
		}
		if got.LossNatsPerToken != want.LossNatsPerToken || got.BitsPerByte != want.BitsPerByte || got.Tokens != want.Tokens {
			t.Errorf("eval -mix %s = %+v; header says %+v", want.Mix, got, want)
		}
	}
}
