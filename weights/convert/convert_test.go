package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/safetensors"
)

// opticks is a slice of Newton's Opticks (shipped with Go): the text the
// test tokenizers learn on and the prompts come from.
var opticks = sync.OnceValue(func() []byte {
	b, _ := os.ReadFile(filepath.Join(runtime.GOROOT(), "src", "testdata", "Isaac.Newton-Opticks.txt"))
	if len(b) > 60000 {
		b = b[:60000]
	}
	return b
})

// tinyModel is a random-weights network with a BPE tokenizer trained on Opticks.
func tinyModel(t testing.TB, seed uint64) (*model.Weights, model.Tokenizer) {
	t.Helper()
	text := opticks()
	if len(text) == 0 {
		t.Fatal("no Opticks text in the Go installation")
	}
	tok := model.TrainBPE(text, 320)
	c := model.Config{Vocab: 330, Dim: 32, Layers: 2, Heads: 4, FFNWidths: model.NestedWidths(64),
		Context: 48, RopeTheta: 10000, NormEps: 1e-5}
	w := model.NewWeights(c)
	w.InitRandom(seed)
	// Norm gains away from one, so that a norm read from the wrong tensor shows.
	rng := model.NewRNG(seed + 1)
	for _, t := range w.Tensors() {
		if len(t.Shape) == 1 {
			for i := range t.Data {
				t.Data[i] = 0.5 + rng.Float32()
			}
		}
	}
	return w, tok
}

// greedy decodes n tokens after prompt with w running mix.
func greedy(w *model.Weights, mix model.Mix, prompt []int, n int) []int {
	s := model.NewState(w.Config)
	var logits []float32
	for pos, id := range prompt {
		logits = model.Forward(w, s, mix, id, pos)
	}
	var out []int
	for pos := len(prompt); len(out) < n && pos < w.Config.Context; pos++ {
		id := model.Argmax(logits)
		out = append(out, id)
		logits = model.Forward(w, s, mix, id, pos)
	}
	return out
}

func prompt(tok model.Tokenizer) []int {
	return tok.Encode([]byte("The Rays of Light which differ in Refrangibility"))[:12]
}

// TestRoundTrip: export → import gives the same tensors bit for bit, the
// same tokenizer and so the same greedy tokens; an exported S submodel
// imported as a one-granularity model runs exactly as S did.
func TestRoundTrip(t *testing.T) {
	w, tok := tinyModel(t, 1)
	c := w.Config
	p := prompt(tok)
	for g := range c.Granularities() {
		dir := t.TempDir()
		if err := ExportHF(dir, w, tok, c.Uniform(g), safetensors.F32); err != nil {
			t.Fatal(err)
		}
		G := c.Granularities()
		if g < G-1 {
			G = 1
		}
		imp, err := ImportHF(dir, ImportOptions{Granularities: G})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(imp.Tokenizer.Merges, tok.Merges) {
			t.Fatalf("%s: tokenizer merges differ after the round trip", c.GranularityName(g))
		}
		got := imp.Weights
		if G == c.Granularities() {
			if !slices.Equal(got.Config.FFNWidths, c.FFNWidths) || !slices.Equal(got.Data, w.Data) {
				t.Fatalf("XL round trip: config %+v; tensors equal %v", got.Config, slices.Equal(got.Data, w.Data))
			}
		}
		want := greedy(w, c.Uniform(g), p, 24)
		if out := greedy(got, got.Config.Uniform(got.Config.Granularities()-1), p, 24); !slices.Equal(out, want) {
			t.Errorf("%s: greedy tokens after export → import %v; want %v", c.GranularityName(g), out, want)
		}
	}
}

// TestHalfExportClose: an F16 or BF16 export imports to weights within the
// format's rounding of the original.
func TestHalfExportClose(t *testing.T) {
	w, tok := tinyModel(t, 2)
	for _, dt := range []struct {
		dtype safetensors.DType
		rel   float64
	}{{safetensors.F16, 1.0 / 2048}, {safetensors.BF16, 1.0 / 256}} {
		dir := t.TempDir()
		if err := ExportHF(dir, w, tok, w.Config.Uniform(3), dt.dtype); err != nil {
			t.Fatal(err)
		}
		imp, err := ImportHF(dir, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range w.Data {
			if d := math.Abs(float64(imp.Weights.Data[i] - v)); d > dt.rel*math.Abs(float64(v))+1e-7 {
				t.Fatalf("%s: element %d = %g; want %g within %g", dt.dtype, i, imp.Weights.Data[i], v, dt.rel)
			}
		}
	}
}

// llamaNumPy is an independent Llama forward pass in the Hugging Face
// convention (rotate_half RoPE, down_proj [dim][hidden], y = x·Wᵀ), in
// float64 numpy over the exported directory: it reads config.json and
// model.safetensors (json + numpy.frombuffer) and prints the logits of every
// position of the tokens given.
const llamaNumPy = `
import json, struct, sys
import numpy as np
d, tokens = sys.argv[1], [int(x) for x in sys.argv[2].split(',')]
cfg = json.load(open(d + '/config.json'))
raw = open(d + '/model.safetensors', 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
hdr = json.loads(raw[8:8 + n])
data = raw[8 + n:]
def T(name):
    t = hdr[name]
    b, e = t['data_offsets']
    dt = {'F32': '<f4', 'F16': '<f2'}[t['dtype']]
    return np.frombuffer(data[b:e], dtype=dt).astype(np.float64).reshape(t['shape'])
H, D, L = cfg['num_attention_heads'], cfg['hidden_size'], cfg['num_hidden_layers']
hd, eps, theta = D // H, cfg['rms_norm_eps'], cfg['rope_theta']
def rms(x, g):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g
x = T('model.embed_tokens.weight')[tokens]
n = len(tokens)
inv = theta ** (-np.arange(0, hd, 2) / hd)
ang = np.arange(n)[:, None] * inv[None, :]
cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
def rope(q):
    h1, h2 = q[..., :hd // 2], q[..., hd // 2:]
    return q * cos + np.concatenate([-h2, h1], -1) * sin
mask = np.triu(np.ones((n, n)), 1) > 0
for l in range(L):
    p = 'model.layers.%d.' % l
    h = rms(x, T(p + 'input_layernorm.weight'))
    q = rope((h @ T(p + 'self_attn.q_proj.weight').T).reshape(n, H, hd))
    k = rope((h @ T(p + 'self_attn.k_proj.weight').T).reshape(n, H, hd))
    v = (h @ T(p + 'self_attn.v_proj.weight').T).reshape(n, H, hd)
    s = np.einsum('thd,uhd->htu', q, k) / np.sqrt(hd)
    s[:, mask] = -np.inf
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    o = np.einsum('htu,uhd->thd', a, v).reshape(n, D)
    x = x + o @ T(p + 'self_attn.o_proj.weight').T
    h = rms(x, T(p + 'post_attention_layernorm.weight'))
    g, u = h @ T(p + 'mlp.gate_proj.weight').T, h @ T(p + 'mlp.up_proj.weight').T
    x = x + (g / (1 + np.exp(-g)) * u) @ T(p + 'mlp.down_proj.weight').T
x = rms(x, T('model.norm.weight'))
head = T('lm_head.weight') if 'lm_head.weight' in hdr else T('model.embed_tokens.weight')
json.dump((x @ head.T).tolist(), sys.stdout)
`

// TestNumPyRunsExport checks the export with code this package did not
// write: Debian's numpy reads model.safetensors and config.json and runs the
// Hugging Face Llama forward pass; its logits match model.Forward's on the
// submodel exported (S and XL).
func TestNumPyRunsExport(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy").Run(); err != nil {
		t.Skip("needs python3-numpy (Debian): ", err)
	}
	w, tok := tinyModel(t, 3)
	p := prompt(tok)
	var ids []string
	for _, id := range p {
		ids = append(ids, strconv.Itoa(id))
	}
	for _, g := range []int{0, 3} {
		dir := t.TempDir()
		mix := w.Config.Uniform(g)
		if err := ExportHF(dir, w, tok, mix, safetensors.F32); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("/usr/bin/python3", "-c", llamaNumPy, dir, strings.Join(ids, ",")).Output()
		if err != nil {
			t.Fatalf("numpy forward: %v %s", err, stderrOf(err))
		}
		var logits [][]float64
		if err := json.Unmarshal(out, &logits); err != nil {
			t.Fatal(err)
		}
		s := model.NewState(w.Config)
		worst := 0.0
		for pos, id := range p {
			want := model.Forward(w, s, mix, id, pos)
			for v, x := range want {
				worst = max(worst, math.Abs(logits[pos][v]-float64(x)))
			}
		}
		if worst > 1e-4 {
			t.Errorf("%s: numpy logits differ from model.Forward by up to %g", w.Config.GranularityName(g), worst)
		}
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// TestGroupedQueryImport: a checkpoint with 2 key/value heads for 4 query
// heads imports as the multi-head network it is equivalent to.
func TestGroupedQueryImport(t *testing.T) {
	w, tok := tinyModel(t, 4)
	c := w.Config
	block := c.HeadDim() * c.Dim
	for l := range w.Layers { // heads 0,1 share key/value head 0; heads 2,3 share head 1
		for _, m := range [][]float32{w.Layers[l].Key, w.Layers[l].Value} {
			copy(m[block:2*block], m[:block])
			copy(m[3*block:4*block], m[2*block:3*block])
		}
	}
	dir := t.TempDir()
	if err := ExportHF(dir, w, tok, c.Uniform(3), safetensors.F32); err != nil {
		t.Fatal(err)
	}
	// Rewrite k_proj and v_proj with only heads 0 and 2, and the config.
	path := filepath.Join(dir, SafetensorsFile)
	b, _ := os.ReadFile(path)
	f, err := safetensors.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, info := range f.Tensors {
		x, _ := f.Float32(info.Name)
		shape := []int{}
		for _, s := range info.Shape {
			shape = append(shape, int(s))
		}
		if strings.HasSuffix(info.Name, "k_proj.weight") || strings.HasSuffix(info.Name, "v_proj.weight") {
			x = append(slices.Clone(x[:block]), x[2*block:3*block]...)
			shape[0] /= 2
		}
		ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: shape, Data: x})
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, buf.Bytes(), 0o644)
	editConfig(t, dir, map[string]any{"num_key_value_heads": 2})
	imp, err := ImportHF(dir, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(imp.Weights.Data, w.Data) {
		t.Fatal("grouped-query import does not reproduce the multi-head weights")
	}
	if len(imp.Notes) == 0 || !strings.Contains(strings.Join(imp.Notes, " "), "grouped-query") {
		t.Errorf("notes %q do not mention grouped-query attention", imp.Notes)
	}
}

func editConfig(t *testing.T, dir string, set map[string]any) {
	t.Helper()
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		if v == nil {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImportRefuses: every kind of checkpoint matedge cannot run gets a
// line that names the problem.
func TestImportRefuses(t *testing.T) {
	w, tok := tinyModel(t, 5)
	export := func(t *testing.T) string {
		dir := t.TempDir()
		if err := ExportHF(dir, w, tok, w.Config.Uniform(3), safetensors.F32); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	rewrite := func(t *testing.T, dir string, edit func([]safetensors.Tensor) []safetensors.Tensor) {
		path := filepath.Join(dir, SafetensorsFile)
		b, _ := os.ReadFile(path)
		f, err := safetensors.Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		var ts []safetensors.Tensor
		for _, info := range f.Tensors {
			x, _ := f.Float32(info.Name)
			var shape []int
			for _, s := range info.Shape {
				shape = append(shape, int(s))
			}
			ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: shape, Data: x})
		}
		var buf bytes.Buffer
		if err := safetensors.Write(&buf, edit(ts), nil); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, buf.Bytes(), 0o644)
	}
	cases := []struct {
		name string
		edit func(t *testing.T, dir string)
		want string
	}{
		{"other architecture", func(t *testing.T, dir string) {
			editConfig(t, dir, map[string]any{"model_type": "gpt2", "architectures": []string{"GPT2LMHeadModel"}})
		}, "unsupported architecture"},
		{"missing field", func(t *testing.T, dir string) { editConfig(t, dir, map[string]any{"rms_norm_eps": nil}) }, "rms_norm_eps is missing"},
		{"gelu", func(t *testing.T, dir string) { editConfig(t, dir, map[string]any{"hidden_act": "gelu"}) }, "hidden_act \"gelu\""},
		{"rope scaling", func(t *testing.T, dir string) {
			editConfig(t, dir, map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2}})
		}, "rope_scaling"},
		{"bias", func(t *testing.T, dir string) { editConfig(t, dir, map[string]any{"attention_bias": true}) }, "attention_bias"},
		{"kv heads", func(t *testing.T, dir string) { editConfig(t, dir, map[string]any{"num_key_value_heads": 3}) }, "num_key_value_heads 3"},
		{"long context", func(t *testing.T, dir string) {
			editConfig(t, dir, map[string]any{"max_position_embeddings": 131072})
		}, "pass a shorter context"},
		{"per-layer intermediate", func(t *testing.T, dir string) {
			editConfig(t, dir, map[string]any{"intermediate_size": []int{64, 32}})
		}, "intermediate_size is not one number but array"},
		{"string field", func(t *testing.T, dir string) { editConfig(t, dir, map[string]any{"hidden_size": "32"}) }, "config.json: json: cannot unmarshal string"},
		{"missing tensor", func(t *testing.T, dir string) {
			rewrite(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return slices.DeleteFunc(ts, func(x safetensors.Tensor) bool { return x.Name == "model.layers.1.mlp.up_proj.weight" })
			})
		}, "missing tensor model.layers.1.mlp.up_proj.weight"},
		{"wrong shape", func(t *testing.T, dir string) {
			rewrite(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				for i := range ts {
					if ts[i].Name == "model.norm.weight" {
						ts[i].Data, ts[i].Shape = ts[i].Data[:16], []int{16}
					}
				}
				return ts
			})
		}, "tensor model.norm.weight has shape [16]; config.json says [32]"},
		{"extra tensor", func(t *testing.T, dir string) {
			rewrite(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return append(ts, safetensors.Tensor{Name: "model.layers.0.self_attn.q_proj.bias", DType: safetensors.F32, Shape: []int{32}, Data: make([]float32, 32)})
			})
		}, "unexpected tensor model.layers.0.self_attn.q_proj.bias"},
		{"bad dtype", func(t *testing.T, dir string) {
			path := filepath.Join(dir, SafetensorsFile)
			b, _ := os.ReadFile(path)
			b = bytes.Replace(b, []byte(`"model.norm.weight":{"data_offsets":[`), []byte(`"model.norm.weight":{"data_offsets":[`), 1)
			i := bytes.Index(b, []byte(`"model.norm.weight":{"data_offsets"`))
			j := bytes.Index(b[i:], []byte(`"dtype":"F32"`))
			copy(b[i+j:], `"dtype":"I32"`)
			os.WriteFile(path, b, 0o644)
		}, "tensor model.norm.weight is I32"},
		{"sentencepiece tokenizer", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, TokenizerFile), []byte(`{"model":{"type":"BPE","byte_fallback":true,"vocab":{},"merges":[]},"pre_tokenizer":{"type":"Metaspace"},"decoder":{"type":"Sequence"}}`), 0o644)
		}, "not a byte-level BPE"},
		{"unigram tokenizer", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, TokenizerFile), []byte(`{"model":{"type":"Unigram"}}`), 0o644)
		}, "model.type is \"Unigram\""},
		{"truncated weights", func(t *testing.T, dir string) {
			path := filepath.Join(dir, SafetensorsFile)
			b, _ := os.ReadFile(path)
			os.WriteFile(path, b[:len(b)-3], 0o644)
		}, "safetensors"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := export(t)
			c.edit(t, dir)
			_, err := ImportHF(dir, ImportOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ImportHF = %v; want an error containing %q", err, c.want)
			}
		})
	}
}

func TestPerLayerMixRefusedForHF(t *testing.T) {
	w, tok := tinyModel(t, 6)
	err := ExportHF(t.TempDir(), w, tok, model.Mix{0, 3}, safetensors.F32)
	if err == nil || !strings.Contains(err.Error(), "GGUF") {
		t.Fatalf("ExportHF(per-layer mix) = %v; want a refusal pointing to GGUF", err)
	}
}

// TestReorderKeepsFunction: permuting neurons by importance leaves the
// full-width network's logits unchanged (up to float summation order) and
// its greedy tokens identical, and puts the scores in descending order.
func TestReorderKeepsFunction(t *testing.T) {
	w, tok := tinyModel(t, 7)
	c := w.Config
	xl := c.Uniform(c.Granularities() - 1)
	ids := tok.Encode(opticks()[:20000])
	before := slices.Clone(w.Data)
	scores := Importance(w, ids, 32, 4, 4096)
	p := prompt(tok)
	wantTokens := greedy(w, xl, p, 30)
	s := model.NewState(c)
	var want [][]float32
	for pos, id := range p {
		want = append(want, slices.Clone(model.Forward(w, s, xl, id, pos)))
	}
	order := Reorder(w, scores)
	if slices.Equal(w.Data, before) {
		t.Fatal("Reorder changed nothing: the test cannot tell")
	}
	s = model.NewState(c)
	for pos, id := range p {
		got := model.Forward(w, s, xl, id, pos)
		for v := range got {
			if d := math.Abs(float64(got[v] - want[pos][v])); d > 1e-4 {
				t.Fatalf("position %d logit %d moved by %g after reordering", pos, v, d)
			}
		}
	}
	if got := greedy(w, xl, p, 30); !slices.Equal(got, wantTokens) {
		t.Errorf("greedy tokens after reordering %v; want %v", got, wantTokens)
	}
	after := Importance(w, ids, 32, 4, 4096)
	for l := range after {
		for k := 1; k < len(after[l]); k++ {
			if after[l][k] > after[l][k-1]*(1+1e-5) {
				t.Fatalf("layer %d: neuron %d scores %g after neuron %d's %g: not descending", l, k, after[l][k], k-1, after[l][k-1])
			}
		}
		if math.Abs(after[l][0]-scores[l][order[l][0]]) > 1e-6*scores[l][order[l][0]] {
			t.Errorf("layer %d: the first neuron scores %g, it scored %g before moving", l, after[l][0], scores[l][order[l][0]])
		}
	}
}

// TestReadGPT2StyleTokenizer: a tokenizer.json with GPT-2's pre-tokenizer
// (ByteLevel with its regex), merges written as pairs, shuffled ids and a
// special token reads into the same merges, with the id map and a note.
func TestReadGPT2StyleTokenizer(t *testing.T) {
	_, tok := tinyModel(t, 9)
	b, err := TokenizerJSON(tok)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	json.Unmarshal(b, &doc)
	doc["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc["added_tokens"] = []any{map[string]any{"id": 0, "content": "<|endoftext|>", "special": true}}
	m := doc["model"].(map[string]any)
	vocab := map[string]int{"<|endoftext|>": 0}
	for s, id := range m["vocab"].(map[string]any) {
		vocab[s] = tok.Size() - int(id.(float64)) // reversed ids, after the special token
	}
	m["vocab"] = vocab
	var pairs [][2]string
	for _, s := range m["merges"].([]any) {
		l, r, _ := strings.Cut(s.(string), " ")
		pairs = append(pairs, [2]string{l, r})
	}
	m["merges"] = pairs
	b, _ = json.Marshal(doc)
	imp, err := ReadTokenizerJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(imp.Tokenizer.Merges, tok.Merges) {
		t.Fatal("merges differ")
	}
	for id, hf := range imp.HFID {
		if hf != tok.Size()-id {
			t.Fatalf("HFID[%d] = %d; want %d", id, hf, tok.Size()-id)
		}
	}
	notes := strings.Join(imp.Notes, " ")
	if !strings.Contains(notes, "GPT-2") || !strings.Contains(notes, "special") {
		t.Errorf("notes %q do not mention GPT-2's split and the special token", notes)
	}
}

// TestImportMapsTokenIDs: a checkpoint whose vocabulary numbers the tokens
// differently (here reversed) imports to matedge's numbering with the
// embedding and head rows moved along: the original weights come back.
func TestImportMapsTokenIDs(t *testing.T) {
	w, tok := tinyModel(t, 10)
	c := w.Config
	dir := t.TempDir()
	if err := ExportHF(dir, w, tok, c.Uniform(3), safetensors.F32); err != nil {
		t.Fatal(err)
	}
	hfID := func(id int) int { // the tokenizer's ids reversed; spare rows (no token) stay, and keep their order
		if id < tok.Size() {
			return tok.Size() - 1 - id
		}
		return id
	}
	b, _ := os.ReadFile(filepath.Join(dir, TokenizerFile))
	var doc map[string]any
	json.Unmarshal(b, &doc)
	m := doc["model"].(map[string]any)
	vocab := map[string]int{}
	for s, id := range m["vocab"].(map[string]any) {
		vocab[s] = hfID(int(id.(float64)))
	}
	m["vocab"] = vocab
	b, _ = json.Marshal(doc)
	os.WriteFile(filepath.Join(dir, TokenizerFile), b, 0o644)

	path := filepath.Join(dir, SafetensorsFile)
	raw, _ := os.ReadFile(path)
	f, err := safetensors.Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, info := range f.Tensors {
		x, _ := f.Float32(info.Name)
		var shape []int
		for _, s := range info.Shape {
			shape = append(shape, int(s))
		}
		if info.Name == "model.embed_tokens.weight" || info.Name == "lm_head.weight" {
			moved := make([]float32, len(x))
			for id := range c.Vocab {
				copy(moved[hfID(id)*c.Dim:(hfID(id)+1)*c.Dim], x[id*c.Dim:(id+1)*c.Dim])
			}
			x = moved
		}
		ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: shape, Data: x})
	}
	var buf bytes.Buffer
	safetensors.Write(&buf, ts, nil)
	os.WriteFile(path, buf.Bytes(), 0o644)

	imp, err := ImportHF(dir, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(imp.Weights.Data, w.Data) {
		t.Fatal("renumbered checkpoint did not import to the original weights")
	}
}

// readTensors reads every tensor of a safetensors file.
func readTensors(t *testing.T, path string) []safetensors.Tensor {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, info := range f.Tensors {
		x, _ := f.Float32(info.Name)
		var shape []int
		for _, s := range info.Shape {
			shape = append(shape, int(s))
		}
		ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: shape, Data: x})
	}
	return ts
}

func writeTensors(t *testing.T, path string, ts []safetensors.Tensor) {
	t.Helper()
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestShardedAndTied: a checkpoint split into two shards with an index
// imports to the same weights; one with tied embeddings and no lm_head
// imports with the head a copy of the embedding.
func TestShardedAndTied(t *testing.T) {
	w, tok := tinyModel(t, 11)
	dir := t.TempDir()
	if err := ExportHF(dir, w, tok, w.Config.Uniform(3), safetensors.F32); err != nil {
		t.Fatal(err)
	}
	ts := readTensors(t, filepath.Join(dir, SafetensorsFile))
	os.Remove(filepath.Join(dir, SafetensorsFile))
	index := map[string]map[string]string{"weight_map": {}}
	half := len(ts) / 2
	for i, x := range ts {
		index["weight_map"][x.Name] = []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i/half%2]
	}
	writeTensors(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), ts[:half])
	writeTensors(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), ts[half:])
	b, _ := json.Marshal(index)
	os.WriteFile(filepath.Join(dir, IndexFile), b, 0o644)
	imp, err := ImportHF(dir, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(imp.Weights.Data, w.Data) {
		t.Fatal("sharded checkpoint imported to different weights")
	}

	tied := t.TempDir()
	if err := ExportHF(tied, w, tok, w.Config.Uniform(3), safetensors.F32); err != nil {
		t.Fatal(err)
	}
	ts = slices.DeleteFunc(readTensors(t, filepath.Join(tied, SafetensorsFile)), func(x safetensors.Tensor) bool { return x.Name == "lm_head.weight" })
	writeTensors(t, filepath.Join(tied, SafetensorsFile), ts)
	editConfig(t, tied, map[string]any{"tie_word_embeddings": true})
	imp, err = ImportHF(tied, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(imp.Weights.Head, w.Embed) || !slices.Equal(imp.Weights.Embed, w.Embed) {
		t.Error("tied checkpoint: head is not the embedding")
	}
}

func TestImportanceWithoutText(t *testing.T) {
	w, _ := tinyModel(t, 12)
	before := slices.Clone(w.Data)
	Reorder(w, Importance(w, nil, 32, 4, 0))
	if !slices.Equal(w.Data, before) {
		t.Error("reordering by empty calibration text moved neurons")
	}
}

// FuzzReadTokenizerJSON: no tokenizer.json makes the reader panic, and what
// it accepts is a valid tokenizer whose id map has no repeats.
func FuzzReadTokenizerJSON(f *testing.F) {
	tok := model.TrainBPE([]byte("the rays of light, the rays of the sun; 42 rays"), 280)
	b, err := TokenizerJSON(tok)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"}}`))
	f.Add([]byte(`{"model":{"type":"BPE","merges":[["a","b"],"c d",1]},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"ByteLevel"}]},"decoder":{"type":"ByteLevel"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		imp, err := ReadTokenizerJSON(b)
		if err != nil {
			return
		}
		if err := imp.Tokenizer.Validate(); err != nil {
			t.Fatalf("accepted an invalid tokenizer: %v", err)
		}
		if len(imp.HFID) != imp.Tokenizer.Size() {
			t.Fatalf("%d ids mapped for %d", len(imp.HFID), imp.Tokenizer.Size())
		}
	})
}
