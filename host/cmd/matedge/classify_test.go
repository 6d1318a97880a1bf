package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/train"
)

// visionModelFile writes a tiny random MatViT (Fashion-MNIST's input shape)
// with class names and a quality table into dir.
func visionModelFile(t *testing.T, dir, name string, seed uint64) (string, *model.Weights) {
	t.Helper()
	w := weights.Random(weights.TinyVisionConfig(), seed)
	meta := map[string]string{"classes": strings.Join(train.FashionMNISTClasses, ",")}
	weights.SetQuality(meta, []weights.Quality{{Mix: "S", LossNatsPerToken: 1, Accuracy: 0.7}, {Mix: "XL", LossNatsPerToken: 0.9, Accuracy: 0.8}})
	var buf bytes.Buffer
	if err := weights.Write(&buf, w, model.Tokenizer{}, meta); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, w
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// classifyJSON is what classify -json prints.
type classifyJSON struct {
	Mix     []string  `json:"mix"`
	Backend string    `json:"backend"`
	Class   int       `json:"class"`
	Name    string    `json:"name"`
	Probs   []float32 `json:"probs"`
	Logits  []float32 `json:"logits"`
	Label   *int      `json:"label"`
	Top     []struct {
		Class int     `json:"class"`
		Prob  float32 `json:"prob"`
	} `json:"top"`
}

// TestClassifyCommand: a PNG of the model's size gives model.Classify's
// logits exactly; one of another size and in colour is converted with a note
// on stderr; garbage, oversized images and language models are refused with
// one line; generate refuses the vision model.
func TestClassifyCommand(t *testing.T) {
	run := matedge(t)
	dir := t.TempDir()
	modelPath, w := visionModelFile(t, dir, "v.matw", 3)

	grey := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range grey.Pix {
		grey.Pix[i] = uint8(i * 7)
	}
	writePNG(t, filepath.Join(dir, "grey.png"), grey)
	stdout, stderr, code := run("classify", "-model", modelPath, "-image", filepath.Join(dir, "grey.png"), "-mix", "S,XL", "-json", "-top", "3")
	if code != 0 {
		t.Fatalf("classify: exit %d: %s", code, stderr)
	}
	var got classifyJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	px := make([]float32, 784)
	for i, b := range grey.Pix {
		px[i] = float32(float64(b) / 255)
	}
	logits, _ := model.Classify(w, model.Mix{0, 3}, px)
	if !slices.Equal(got.Logits, logits) || got.Backend != "cpu" || !slices.Equal(got.Mix, []string{"S", "XL"}) || len(got.Top) != 3 || len(got.Probs) != 10 {
		t.Errorf("classify -json = %+v; want logits %v on cpu with mix S,XL and 3 top classes", got, logits)
	}
	if top := got.Top[0]; top.Class != got.Class || got.Name != train.FashionMNISTClasses[got.Class] || top.Prob != slices.Max(got.Probs) {
		t.Errorf("top %+v, class %d %q, probs %v", got.Top, got.Class, got.Name, got.Probs)
	}
	if strings.Contains(stderr, "resized") {
		t.Errorf("a 28×28 image was resized: %s", stderr)
	}

	// Another size, in colour: resized and converted, with a note.
	rgba := image.NewRGBA(image.Rect(0, 0, 56, 40))
	for y := range 40 {
		for x := range 56 {
			rgba.Set(x, y, color.RGBA{uint8(4 * x), uint8(6 * y), 90, 255})
		}
	}
	writePNG(t, filepath.Join(dir, "colour.png"), rgba)
	stdout, stderr, code = run("classify", "-model", modelPath, "-image", filepath.Join(dir, "colour.png"), "-mix", "XL")
	if code != 0 || !strings.Contains(stderr, "resized from 56×40 to 28×28") || !strings.Contains(stderr, "converted to grey") || !strings.Contains(stdout, "%") {
		t.Errorf("a 56×40 colour PNG: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}

	// Refusals: one line on stderr, exit 1, nothing on stdout.
	garbage := filepath.Join(dir, "garbage.png")
	os.WriteFile(garbage, []byte("this is not an image at all"), 0o644)
	truncated := filepath.Join(dir, "truncated.png")
	b, _ := os.ReadFile(filepath.Join(dir, "grey.png"))
	os.WriteFile(truncated, b[:len(b)/2], 0o644)
	writePNG(t, filepath.Join(dir, "wide.png"), image.NewGray(image.Rect(0, 0, 5000, 1)))
	text := filepath.Join(dir, "text.matw")
	os.WriteFile(text, tinyFile(t), 0o644)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"classify", "-model", modelPath, "-image", garbage, "-mix", "S"}, "not a PNG, JPEG or GIF image"},
		{[]string{"classify", "-model", modelPath, "-image", truncated, "-mix", "S"}, "cannot decode the png image"},
		{[]string{"classify", "-model", modelPath, "-image", filepath.Join(dir, "wide.png"), "-mix", "S"}, "a 5000×1 image; this command reads 1 to 4096 pixels a side"},
		{[]string{"classify", "-model", modelPath, "-image", filepath.Join(dir, "missing.png"), "-mix", "S"}, "no such file"},
		{[]string{"classify", "-model", modelPath, "-image", "test:x", "-mix", "S"}, "want test:N"},
		{[]string{"classify", "-model", modelPath, "-image", garbage, "-mix", "XXL"}, "-mix"},
		{[]string{"classify", "-model", text, "-image", garbage, "-mix", "S"}, "classification and retrieval need a vision model"},
		{[]string{"generate", "-model", modelPath, "-mix", "S", "-n", "4"}, "this file holds a vision model"},
	} {
		stdout, stderr, code := run(tc.args...)
		// The error is the last line, whole: progress lines may come before it.
		if code != 1 || stdout != "" || !strings.Contains(lastLine(stderr), tc.says) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 saying %q", tc.args, code, stdout, stderr, tc.says)
		}
	}
}

// TestClassifyGPU: -backend gpu runs the module's GPU vision path (lavapipe
// here) and agrees with the CPU: the same class, probabilities within float
// rounding of a different summation order.
func TestClassifyGPU(t *testing.T) {
	run := matedge(t)
	dir := t.TempDir()
	modelPath, _ := visionModelFile(t, dir, "vit.matw", 11)
	grey := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range grey.Pix {
		grey.Pix[i] = uint8(i * 7)
	}
	writePNG(t, filepath.Join(dir, "grey.png"), grey)
	var got [2]classifyJSON
	for i, backend := range []string{"cpu", "gpu"} {
		stdout, stderr, code := run("classify", "-model", modelPath, "-image", filepath.Join(dir, "grey.png"), "-backend", backend, "-mix", "S,XL", "-json")
		if code != 0 {
			if backend == "gpu" && strings.Contains(stderr, "no GPU") {
				t.Skipf("needs a WebGPU adapter (lavapipe: mesa-vulkan-drivers): %s", lastLine(stderr))
			}
			t.Fatalf("-backend %s: exit %d: %s", backend, code, stderr)
		}
		if err := json.Unmarshal([]byte(stdout), &got[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got[1].Backend != "gpu" || got[1].Class != got[0].Class || len(got[1].Probs) != len(got[0].Probs) {
		t.Fatalf("gpu %+v; cpu %+v", got[1], got[0])
	}
	for i, p := range got[1].Probs {
		if math.Abs(float64(p-got[0].Probs[i])) > 1e-5 {
			t.Errorf("probability %d: gpu %g, cpu %g", i, p, got[0].Probs[i])
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// fashionMNIST skips a test when the data set is neither installed nor
// downloadable here.
func fashionMNIST(t *testing.T) *train.Images {
	t.Helper()
	_, test, err := train.LoadImages("fashion-mnist", train.DefaultCache())
	if err != nil {
		t.Skipf("Fashion-MNIST is not available: %v", err)
	}
	return test
}

// TestIndexRetrieveCommands: index embeds test images through the module
// (with their pixels), retrieve finds a test image itself first, from a
// narrower encoder too, classify -image test:N reads the set's pixels
// exactly, -mix auto plans, and an index of another model is refused.
func TestIndexRetrieveCommands(t *testing.T) {
	test := fashionMNIST(t)
	run := matedge(t)
	dir := t.TempDir()
	modelPath, w := visionModelFile(t, dir, "v.matw", 3)
	otherPath, _ := visionModelFile(t, dir, "other.matw", 4)
	indexPath := filepath.Join(dir, "t.mati")
	stdout, stderr, code := run("index", "-model", modelPath, "-split", "test", "-limit", "40", "-images", "-dtype", "f16", "-out", indexPath, "-json")
	if code != 0 {
		t.Fatalf("index: exit %d: %s", code, stderr)
	}
	var summary struct {
		Count int      `json:"count"`
		Mix   []string `json:"mix"`
	}
	if err := json.Unmarshal([]byte(stdout), &summary); err != nil || summary.Count != 40 || !slices.Equal(summary.Mix, []string{"XL", "XL"}) {
		t.Errorf("index -json = %s (%v)", stdout, err)
	}
	b, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := weights.ReadIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Count != 40 || ix.DType != "f16" || ix.Image == nil || !slices.Equal(ix.Labels, test.Labels[:40]) || ix.Classes[0] != "T-shirt/top" {
		t.Errorf("index header %+v", ix.IndexHeader)
	}
	_, emb := model.Classify(w, model.Mix{3, 3}, test.At(7))
	model.Normalize(emb)
	for j, x := range ix.Embedding(7) {
		if math.Abs(float64(x-emb[j])) > 1e-3 {
			t.Fatalf("entry 7's embedding %v, model.Classify's %v", ix.Embedding(7), emb)
		}
	}
	for j, x := range test.At(7) {
		if ix.ImagePixels(7)[j] != uint8(math.Round(float64(x)*255)) {
			t.Fatal("entry 7's stored pixels are not the image's")
		}
	}

	// Retrieval: test image 7 is entry 7, for the index's encoder and S.
	for _, mix := range []string{"XL", "S"} {
		stdout, stderr, code = run("retrieve", "-model", modelPath, "-index", indexPath, "-image", "test:7", "-k", "3", "-mix", mix, "-json")
		var r struct {
			Neighbors []struct {
				Index int     `json:"index"`
				Label int     `json:"label"`
				Name  string  `json:"name"`
				Score float32 `json:"score"`
			} `json:"neighbors"`
			NNClass int  `json:"nn_class"`
			Label   *int `json:"label"`
		}
		if code != 0 {
			t.Fatalf("retrieve -mix %s: exit %d: %s", mix, code, stderr)
		}
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Neighbors) != 3 || r.Label == nil || *r.Label != test.Labels[7] || r.NNClass != r.Neighbors[0].Label {
			t.Errorf("retrieve -mix %s: %s", mix, stdout)
		}
		if mix == "XL" && (r.Neighbors[0].Index != 7 || r.Neighbors[0].Score < 0.99) {
			t.Errorf("retrieve -mix XL: the query itself is not first: %s", stdout)
		}
	}
	stdout, stderr, code = run("retrieve", "-model", modelPath, "-index", indexPath, "-image", "test:7", "-mix", "S")
	if code != 0 || !strings.Contains(stdout, "1-NN class: ") || !strings.Contains(stdout, "#") {
		t.Errorf("retrieve: exit %d\n%s%s", code, stdout, stderr)
	}
	// The index of another model is refused.
	stdout, stderr, code = run("retrieve", "-model", otherPath, "-index", indexPath, "-image", "test:7", "-mix", "S")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "index built by another model") {
		t.Errorf("another model's index: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// A weights file is not an index.
	if _, stderr, code := run("retrieve", "-model", modelPath, "-index", modelPath, "-image", "test:7", "-mix", "S"); code != 1 || !strings.Contains(stderr, "not a matedge retrieval index") {
		t.Errorf("a weights file as the index: exit %d, %s", code, stderr)
	}

	// classify test:N reads the set's values exactly; -mix auto plans.
	stdout, stderr, code = run("classify", "-model", modelPath, "-image", "test:7", "-mix", "auto", "-json")
	var got classifyJSON
	if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil {
		t.Fatalf("classify -mix auto: exit %d: %s%s", code, stdout, stderr)
	}
	logits, _ := model.Classify(w, model.Mix{3, 3}, test.At(7))
	if !slices.Equal(got.Logits, logits) || got.Label == nil || *got.Label != test.Labels[7] || !strings.Contains(stderr, "planned for budget balanced") {
		t.Errorf("classify test:7 -mix auto: %+v\nstderr %s; want XL's logits %v (the most accurate mix)", got, stderr, logits)
	}
}
