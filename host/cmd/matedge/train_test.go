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
		// The same -batch as train's: windows summed in the same groups give
		// the same float64 bits (another grouping rounds differently).
		stdout, stderr, code := run("eval", "-model", out, "-text", "opticks", "-mix", want.Mix, "-batch", "2", "-json")
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

// TestScaling runs a three-size sweep of tiny models and checks that the
// report, the plot and the JSON it renders from are written, and that
// -render reproduces the report from the JSON alone.
func TestScaling(t *testing.T) {
	run := matedge(t)
	dir := t.TempDir()
	_, stderr, code := run("scaling", "-data", "opticks", "-vocab", "260", "-dims", "8,16,24", "-layers", "1", "-context", "16",
		"-steps", "3", "-batch", "2", "-out", dir)
	if code != 0 {
		t.Fatalf("matedge scaling: exit %d\n%s", code, stderr)
	}
	report, err := os.ReadFile(filepath.Join(dir, "SCALING.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 8 |", "| 16 |", "| 24 |", "| MatFormer-XL |", "| Baseline-XL |"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("SCALING.md lacks %q:\n%s", want, report)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "results", "scaling.svg")); err != nil {
		t.Error(err)
	}
	again := t.TempDir()
	if _, stderr, code := run("scaling", "-render", filepath.Join(dir, "results", "scaling.json"), "-out", again); code != 0 {
		t.Fatalf("matedge scaling -render: exit %d\n%s", code, stderr)
	}
	rendered, _ := os.ReadFile(filepath.Join(again, "SCALING.md"))
	if string(rendered) != string(report) {
		t.Errorf("-render gave a different SCALING.md:\n%s\nwant:\n%s", rendered, report)
	}
	if _, stderr, code := run("scaling", "-dims", "8,12"); code == 0 || !strings.Contains(stderr, "at least 3 sizes") {
		t.Errorf("scaling -dims 8,12: exit %d, stderr %q; want a refusal", code, stderr)
	}
}

// TestSpeculate checks that speculative decoding of the tiny fixture gives
// the verifier's greedy tokens for every draft, k (fixed and auto) and cache
// mode, natively and in the module; that a separate draft cache is reported
// as twice the memory; and that a baseline pair (here the fixture drafting for
// itself, so every proposal is kept) is measured with separate caches.
func TestSpeculate(t *testing.T) {
	run := matedge(t)
	tiny := filepath.Join("..", "..", "..", "weights", "testdata", "tiny.matw")
	md := filepath.Join(t.TempDir(), "spec.md")
	stdout, stderr, code := run("speculate", "-model", tiny, "-text", "opticks", "-prompts", "2", "-prompt-tokens", "8", "-n", "12",
		"-k", "1,3,auto", "-temperatures", "0,0.8", "-module", "-baseline-draft", tiny, "-baseline-verify", tiny, "-markdown", md, "-json")
	if code != 0 {
		t.Fatalf("matedge speculate: exit %d\n%s", code, stderr)
	}
	var out specReport
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("speculate -json printed %q: %v", stdout, err)
	}
	// Per temperature: natively 3 drafts × 3 k × 2 caches + 3 baseline k;
	// in the module 3 drafts × 3 k.
	if want := 2 * (3*3*2 + 3 + 3*3); len(out.Rows) != want {
		t.Fatalf("%d rows; want %d", len(out.Rows), want)
	}
	if len(out.Alone) != 2*3 {
		t.Fatalf("%d verifier-alone rows; want 2 temperatures × (native, baseline, wazero)", len(out.Alone))
	}
	for _, r := range out.Rows {
		if r.Temperature == 0 && (r.SameAsVerifier == nil || !*r.SameAsVerifier) {
			t.Errorf("row %+v: greedy output is not the verifier's", r)
		}
		if r.Temperature > 0 && r.SameAsVerifier != nil {
			t.Errorf("row %+v: a sampled row claims equality", r)
		}
		if r.AcceptanceRate > 1 || (r.AcceptanceRate < 0 && (r.Where == "native" && r.K != 0)) || !(r.Speedup > 0) {
			t.Errorf("row %+v: want an acceptance rate in [0, 1] and a positive speed-up", r)
		}
		if r.Models == "Baseline" && (r.Shared || (r.K != 0 && r.AcceptanceRate != 1)) {
			t.Errorf("row %+v: the fixture drafting for itself shares no cache and keeps every greedy proposal", r)
		}
	}
	if out.Rows[1].CacheBytes != 2*out.Rows[0].CacheBytes {
		t.Errorf("separate cache %d bytes; shared %d", out.Rows[1].CacheBytes, out.Rows[0].CacheBytes)
	}
	b, err := os.ReadFile(md)
	if err != nil || !strings.Contains(string(b), "| wazero | MatFormer | S | auto | shared |") {
		t.Errorf("-markdown wrote %q (%v)", b, err)
	}
	// -render rewrites the same Markdown from the saved JSON alone.
	saved, again := filepath.Join(t.TempDir(), "spec.json"), filepath.Join(t.TempDir(), "again.md")
	os.WriteFile(saved, []byte(stdout), 0o644)
	if _, stderr, code := run("speculate", "-render", saved, "-markdown", again); code != 0 {
		t.Fatalf("speculate -render: exit %d\n%s", code, stderr)
	}
	if c, err := os.ReadFile(again); err != nil || string(c) != string(b) {
		t.Errorf("-render wrote %d bytes (%v); -markdown wrote %d", len(c), err, len(b))
	}
}

// TestTrainRefusals: flags that would fail late or train nothing are refused
// before any work, and a diverging run stops with a clear message.
func TestTrainRefusals(t *testing.T) {
	run := matedge(t)
	dir := t.TempDir()
	tiny := []string{"-data", "opticks", "-vocab", "260", "-dim", "8", "-layers", "1", "-heads", "2", "-context", "16", "-batch", "2"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{append([]string{"train", "-steps", "-1"}, tiny...), "-steps -1"},
		{append([]string{"train", "-out", filepath.Join(dir, "missing", "m.matw")}, tiny...), "does not exist"},
		{append([]string{"train", "-lr", "NaN"}, tiny...), "-lr NaN"},
		{append([]string{"train", "-steps", "40", "-lr", "1e30", "-clip", "0", "-out", filepath.Join(dir, "d.matw")}, tiny...), "diverged"},
		{[]string{"eval", "-text", "opticks", "-batch", "100000"}, "at most 256"},
		{[]string{"compare", "-steps", "-1"}, "-steps -1"},
	} {
		_, stderr, code := run(tt.args...)
		if code == 0 || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "panic") {
			t.Errorf("matedge %v: exit %d, stderr %q; want a refusal saying %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestTrainVision trains a tiny MatViT on Fashion-MNIST with the CLI: the
// file is a vision model with the class names and an accuracy per preset
// mix, and text generation refuses it. (Resuming is weights/train's test.)
func TestTrainVision(t *testing.T) {
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"); err != nil {
		t.Skipf("needs dataset-fashion-mnist (apt-get install dataset-fashion-mnist; ./build.sh test installs it): %v", err)
	}
	run := matedge(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "vit.matw")
	args := []string{"train", "-data", "fashion-mnist", "-patch", "7", "-dim", "16", "-layers", "2", "-heads", "2",
		"-steps", "4", "-batch", "8", "-eval-every", "2", "-eval-tokens", "64", "-checkpoint-every", "2"}
	_, stderr, code := run(append(args, "-out", out)...)
	if code != 0 {
		t.Fatalf("matedge train: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "step 2 validation (nats/image)") || !strings.Contains(stderr, "% accuracy") {
		t.Errorf("train printed no vision validation:\n%s", stderr)
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	h, err := weights.ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	table, _ := h.Quality()
	if !h.IsVision() || h.Meta["classes"] == "" || len(table) != 6 || table[0].Accuracy <= 0 || table[0].Tokens != 5000 {
		t.Fatalf("architecture %q, classes %q, quality %+v", h.Architecture, h.Meta["classes"], table)
	}
	if _, stderr, code := run("generate", "-model", out, "-n", "2"); code == 0 || !strings.Contains(stderr, "vision model") {
		t.Errorf("generate on a vision model: exit %d, stderr %q; want a refusal naming the vision model", code, stderr)
	}
}
