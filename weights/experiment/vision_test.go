package experiment

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/train"
)

// stripes is a synthetic image set: an 8×8 image whose class (0…3) is the
// row band holding a bright stripe, on noise.
func stripes(n int, seed uint64) *train.Images {
	im := model.ImageConfig{Size: 8, Channels: 1}
	set := &train.Images{Name: "stripes", Image: im, Pixels: make([]float32, n*im.Pixels()), Labels: make([]int, n), Classes: []string{"0", "1", "2", "3"}}
	r := model.NewRNG(seed)
	for i := range n {
		img := set.At(i)
		for j := range img {
			img[j] = 0.4 * r.Float32()
		}
		c := int(r.Uint32() % 4)
		set.Labels[i] = c
		for x := range 8 {
			img[(2*c)*8+x] = 1
		}
	}
	return set
}

// trainTiny trains a tiny vision model (nested, or one baseline width) and
// writes it to dir.
func trainTiny(t *testing.T, dir, name string, widths []int, set, valid *train.Images) string {
	t.Helper()
	c := model.Config{Vocab: 4, Dim: 16, Layers: 2, Heads: 2, FFNWidths: widths, Context: 4, RopeTheta: 10000, NormEps: 1e-5,
		Image: &model.ImageConfig{Size: 8, Patch: 4, Channels: 1}}
	tr, err := train.NewVision(train.Options{Config: c, Batch: 16, Steps: 30, LR: 1e-2, Seed: 5}, set, valid)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background(), 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := weights.Write(&buf, tr.Weights, model.Tokenizer{}, map[string]string{"command": "matedge train " + name}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".matw")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVisionExperiment runs the whole MatViT report on tiny models: every
// table is filled, the MatViT diagonal and cross cells are well above
// chance on this easy task, the Markdown renders, and RESULTS.md keeps its
// other content around the vision section.
func TestVisionExperiment(t *testing.T) {
	dir := t.TempDir()
	set, test := stripes(400, 1), stripes(200, 2)
	widths := model.NestedWidths(32)
	v := &Vision{MatViT: trainTiny(t, dir, "matvit", widths, set, test), Train: set, Test: test, IndexLimit: 300, Args: []string{"-test"}}
	for g, w := range widths {
		v.Baselines[g] = trainTiny(t, dir, "base"+string(rune('0'+g)), []int{w}, set, test)
	}
	r, err := v.Run()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.MatAcc) != 4 || len(r.BaseAcc) != 4 || len(r.Retrieval[0]) != 4 || len(r.Retrieval[1]) != 4 || len(r.Mixes) != 3*2 {
		t.Fatalf("report shape: %d %d %d %d %d", len(r.MatAcc), len(r.BaseAcc), len(r.Retrieval[0]), len(r.Retrieval[1]), len(r.Mixes))
	}
	for g, a := range r.MatAcc {
		if a < 0.9 || r.Retrieval[0][3][g] < 0.9 {
			t.Errorf("MatViT-%s: accuracy %.2f, query against the XL index %.2f; want both ≥ 0.9 on stripes", r.Names[g], a, r.Retrieval[0][3][g])
		}
	}
	if r.MatAgree[3] != 1 {
		t.Errorf("XL agrees with itself on %.3f of images", r.MatAgree[3])
	}
	out := filepath.Join(dir, "report")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "RESULTS.md"), []byte("# text results\n\nkept\n"), 0o644)
	if err := r.Write(out); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(out); err != nil { // twice: the section is replaced, not appended again
		t.Fatal(err)
	}
	res, _ := os.ReadFile(filepath.Join(out, "RESULTS.md"))
	if !strings.HasPrefix(string(res), "# text results\n\nkept\n") || strings.Count(string(res), "<!-- begin vision -->") != 1 || !strings.Contains(string(res), "Retrieval: MatViT") {
		t.Fatalf("RESULTS.md:\n%s", res)
	}
	md, _ := os.ReadFile(filepath.Join(out, "VISION.md"))
	for _, want := range []string{"MatViT-XL ≥ 90 %", "index \\ query", "Consistency", "S,M"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("VISION.md lacks %q", want)
		}
	}
	// A whole-file rewrite (compare's) keeps the section.
	kept := keepSections(res, []byte("# new text results\n"))
	if !strings.HasPrefix(string(kept), "# new text results\n") || !strings.Contains(string(kept), "<!-- end vision -->") {
		t.Fatalf("keepSections:\n%s", kept)
	}
	// Render from the JSON gives the same Markdown.
	again, err := ReadVisionReport(filepath.Join(out, "results", "vision.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Write(out); err != nil {
		t.Fatal(err)
	}
	md2, _ := os.ReadFile(filepath.Join(out, "VISION.md"))
	if !bytes.Equal(md, md2) {
		t.Error("re-rendering vision.json changed VISION.md")
	}
}

// TestWriteKeepingSections: a report rewritten whole (speculate -markdown)
// keeps the section another tool wrote into it (web/bench/speculate.mjs's
// Chromium rows), and drops its own old text.
func TestWriteKeepingSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "SPECULATIVE.md")
	if err := WriteKeepingSections(path, []byte("# first\n")); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceSection(path, "chromium", "rows\n"); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeepingSections(path, []byte("# second\n")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# second\n\n<!-- begin chromium -->\nrows\n<!-- end chromium -->\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
