package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

func loadFile(t *testing.T, path string) (*model.Weights, *weights.Header) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	w, h, err := weights.Load(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return w, h
}

func greedyTokens(w *model.Weights, mix model.Mix, prompt []int, n int) []int {
	s := model.NewState(w.Config)
	var logits []float32
	for pos, id := range prompt {
		logits = model.Forward(w, s, mix, id, pos)
	}
	var out []int
	for pos := len(prompt); len(out) < n; pos++ {
		id := model.Argmax(logits)
		out = append(out, id)
		logits = model.Forward(w, s, mix, id, pos)
	}
	return out
}

// TestExportImportRoundTrip: the default model exported as a Llama
// checkpoint and imported back is the same model (every weight, the
// tokenizer, the greedy tokens); GGUF export takes a per-layer mix that the
// safetensors export refuses with a pointer to it; import refuses a
// checkpoint of another architecture with one line.
func TestExportImportRoundTrip(t *testing.T) {
	run := matedge(t)
	dir := t.TempDir()
	hf := filepath.Join(dir, "hf")
	if _, stderr, code := run("export", "-mix", "XL", "-out", hf); code != 0 {
		t.Fatalf("matedge export: exit %d\n%s", code, stderr)
	}
	back := filepath.Join(dir, "back.matw")
	if _, stderr, code := run("import", "-out", back, hf); code != 0 {
		t.Fatalf("matedge import: exit %d\n%s", code, stderr)
	}
	want, wh := loadFile(t, writeTemp(t, defaultmodel.Bytes))
	got, gh := loadFile(t, back)
	// A Llama checkpoint has no place for matedge's token routers, which sit
	// after every other tensor in memory: the rest must come back bit for bit.
	routers := len(want.RouterBudget)
	for _, l := range want.Layers {
		routers += len(l.Router)
	}
	if got.Config.RouterBudgets != 0 || !slices.Equal(got.Data, want.Data[:len(want.Data)-routers]) || !slices.Equal(gh.Tokenizer.Merges, wh.Tokenizer.Merges) {
		t.Fatal("export → import changed the default model's weights or tokenizer")
	}
	prompt := wh.Tokenizer.Encode([]byte("It is a truth universally acknowledged"))
	xl := want.Config.Uniform(3)
	if a, b := greedyTokens(got, xl, prompt, 16), greedyTokens(want, xl, prompt, 16); !slices.Equal(a, b) {
		t.Errorf("greedy tokens after the round trip %v; want %v", a, b)
	}

	_, stderr, code := run("export", "-mix", "S,M,L,XL", "-out", filepath.Join(dir, "mixed"))
	if code == 0 || !strings.Contains(stderr, "GGUF") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("export of a per-layer mix as hf: exit %d, %q; want one line pointing to GGUF", code, stderr)
	}
	gguf := filepath.Join(dir, "m.gguf")
	if _, stderr, code := run("export", "-format", "gguf", "-dtype", "f16", "-mix", "S,M,L,XL", "-out", gguf); code != 0 {
		t.Fatalf("matedge export -format gguf: exit %d\n%s", code, stderr)
	}
	if b, err := os.ReadFile(gguf); err != nil || string(b[:4]) != "GGUF" {
		t.Errorf("GGUF file: %v, starts %q", err, b[:4])
	}

	cfg := filepath.Join(hf, "config.json")
	b, _ := os.ReadFile(cfg)
	neox := strings.NewReplacer(`"model_type": "llama"`, `"model_type": "gpt_neox"`, `"LlamaForCausalLM"`, `"GPTNeoXForCausalLM"`).Replace(string(b))
	os.WriteFile(cfg, []byte(neox), 0o644)
	_, stderr, code = run("import", "-out", filepath.Join(dir, "x.matw"), hf)
	if code == 0 || !strings.Contains(stderr, "unsupported architecture") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("import of a GPT-NeoX config: exit %d, %q; want one line naming the architecture", code, stderr)
	}
}

func writeTemp(t *testing.T, b []byte) string {
	path := filepath.Join(t.TempDir(), "m.matw")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFinetuneCLI reorders and fine-tunes a small trained dense model for a
// few steps with checkpoints, and resumes it.
func TestFinetuneCLI(t *testing.T) {
	run := matedge(t)
	dir := t.TempDir()
	dense := filepath.Join(dir, "dense.matw")
	if _, stderr, code := run("train", "-data", "opticks", "-vocab", "300", "-dim", "16", "-layers", "2", "-heads", "2",
		"-context", "32", "-steps", "8", "-batch", "2", "-eval-every", "0", "-baseline", "XL", "-out", dense); code != 0 {
		t.Fatalf("matedge train -baseline XL: exit %d\n%s", code, stderr)
	}
	hf := filepath.Join(dir, "hf")
	if _, stderr, code := run("export", "-out", hf, dense); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}
	nested := filepath.Join(dir, "nested.matw")
	if _, stderr, code := run("import", "-out", nested, hf); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	out := filepath.Join(dir, "ft.matw")
	_, stderr, code := run("finetune", "-data", "opticks", "-steps", "4", "-batch", "2", "-eval-every", "2", "-eval-tokens", "256",
		"-calibration-tokens", "512", "-checkpoint-every", "2", "-out", out, nested)
	if code != 0 {
		t.Fatalf("finetune: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"as loaded validation", "reordered on 512 tokens", "step 2 validation", "wrote " + out} {
		if !strings.Contains(stderr, want) {
			t.Errorf("finetune output lacks %q:\n%s", want, stderr)
		}
	}
	w, h := loadFile(t, out)
	if q, err := h.Quality(); err != nil || len(q) != 6 || w.Config.Granularities() != 4 {
		t.Errorf("fine-tuned model: quality %v %v, widths %v", q, err, w.Config.FFNWidths)
	}
	// Resuming the finished run's checkpoint with more steps continues it.
	if _, stderr, code := run("finetune", "-data", "opticks", "-resume", "-out", out); code != 0 || !strings.Contains(stderr, "resuming") {
		t.Fatalf("finetune -resume: exit %d\n%s", code, stderr)
	}
}

// TestInduce runs the experiment at a toy size and checks the report and
// that -render reproduces it from the JSON.
func TestInduce(t *testing.T) {
	run := matedge(t)
	dir := t.TempDir()
	_, stderr, code := run("induce", "-vocab", "260", "-dim", "16", "-layers", "1", "-heads", "2", "-context", "16",
		"-steps", "6", "-batch", "2", "-finetune-steps", "2", "-eval-every", "1", "-calibration-tokens", "256", "-out", dir)
	if code != 0 {
		t.Fatalf("matedge induce: exit %d\n%s", code, stderr)
	}
	report, err := os.ReadFile(filepath.Join(dir, "INDUCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bit-identical", "| S |", "| XL |", "| 2 |", "reordering alone beats naive slicing"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("INDUCE.md lacks %q:\n%s", want, report)
		}
	}
	again := t.TempDir()
	if _, stderr, code := run("induce", "-render", filepath.Join(dir, "results", "induce.json"), "-out", again); code != 0 {
		t.Fatalf("induce -render: exit %d\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(again, "INDUCE.md")); string(b) != string(report) {
		t.Error("-render wrote a different INDUCE.md")
	}
}
