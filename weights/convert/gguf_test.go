package convert

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/safetensors"
)

const hfCheckDir = "testdata/hfcheck"

// needsNode skips unless node and the npm packages of testdata/hfcheck
// (npm ci there; build.sh does it) are installed.
func needsNode(t *testing.T, packages bool) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("needs node: ", err)
	}
	for _, pkg := range []string{"gguf", "tokenizers"} {
		if _, err := os.Stat(filepath.Join(hfCheckDir, "node_modules", "@huggingface", pkg)); packages && err != nil {
			t.Skip("needs npm ci in weights/convert/" + hfCheckDir + " (./build.sh test runs it)")
		}
	}
}

type ggufSeen struct {
	DataOffset int            `json:"dataOffset"`
	Metadata   map[string]any `json:"metadata"`
	Types      map[string]any `json:"types"`
	Tensors    []struct {
		Name   string `json:"name"`
		Shape  []int  `json:"shape"`
		DType  int    `json:"dtype"`
		Offset int    `json:"offset"`
	} `json:"tensors"`
}

// TestGGUFParses reads exported GGUF files with @huggingface/gguf's parser:
// tensor names, shapes and types, and every metadata key and value, for a
// uniform and a per-layer mix, f32 and f16.
func TestGGUFParses(t *testing.T) {
	needsNode(t, true)
	w, tok := tinyModel(t, 8)
	c := w.Config
	for _, tc := range []struct {
		mix  model.Mix
		half bool
	}{{c.Uniform(3), false}, {model.Mix{0, 2}, true}} {
		t.Run(fmt.Sprintf("%s/half=%v", c.MixSpec(tc.mix), tc.half), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			var buf bytes.Buffer
			if err := ExportGGUF(&buf, w, tok, tc.mix, tc.half, "tiny"); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(path, buf.Bytes(), 0o644)
			cmd := exec.Command("node", "check.mjs", path)
			cmd.Dir = hfCheckDir
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node check.mjs: %v %s", err, stderrOf(err))
			}
			var seen ggufSeen
			if err := json.Unmarshal(out, &seen); err != nil {
				t.Fatal(err)
			}
			widths := []any{}
			for _, g := range tc.mix {
				widths = append(widths, float64(c.FFNWidths[g]))
			}
			var ffn any = widths
			if tc.mix[0] == tc.mix[1] {
				ffn = widths[0]
			}
			fileType := 0.0
			if tc.half {
				fileType = 1
			}
			tokens := make([]any, c.Vocab)
			for id := range tokens {
				if id < tok.Size() {
					tokens[id] = byteLevel(tok.Piece(id))
				} else {
					tokens[id] = fmt.Sprintf("<unused%d>", id)
				}
			}
			want := map[string]any{
				"version":                                3.0,
				"tensor_count":                           float64(2 + 9*c.Layers + 1),
				"kv_count":                               float64(18),
				"general.architecture":                   "llama",
				"general.name":                           "tiny",
				"general.file_type":                      fileType,
				"llama.vocab_size":                       float64(c.Vocab),
				"llama.context_length":                   float64(c.Context),
				"llama.embedding_length":                 float64(c.Dim),
				"llama.block_count":                      float64(c.Layers),
				"llama.feed_forward_length":              ffn,
				"llama.attention.head_count":             float64(c.Heads),
				"llama.attention.head_count_kv":          float64(c.Heads),
				"llama.rope.dimension_count":             float64(c.HeadDim()),
				"llama.rope.freq_base":                   float64(c.RopeTheta),
				"llama.attention.layer_norm_rms_epsilon": float64(c.NormEps),
				"tokenizer.ggml.model":                   "gpt2",
				"tokenizer.ggml.pre":                     "default",
				"tokenizer.ggml.tokens":                  tokens,
			}
			for k, v := range want {
				got, _ := json.Marshal(seen.Metadata[k])
				exp, _ := json.Marshal(v)
				if k == "llama.attention.layer_norm_rms_epsilon" {
					exp, _ = json.Marshal(float64(float32(1e-5)))
				}
				if !bytes.Equal(got, exp) {
					t.Errorf("metadata %s = %s; want %s", k, trim(got), trim(exp))
				}
			}
			if m, _ := seen.Metadata["tokenizer.ggml.merges"].([]any); len(m) != len(tok.Merges) || m[0] != byteLevel(tok.Piece(tok.Merges[0][0]))+" "+byteLevel(tok.Piece(tok.Merges[0][1])) {
				t.Errorf("merges: %d seen, first %v; want %d", len(m), m[:1], len(tok.Merges))
			}
			if len(seen.Metadata) != len(want)+2 { // + token_type and merges
				keys := make([]string, 0, len(seen.Metadata))
				for k := range seen.Metadata {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				t.Errorf("metadata keys %v", keys)
			}
			// Tensors: names, shapes (ne0 first) and types.
			type tensor struct {
				name  string
				shape []int
				dtype int
			}
			mat := 0
			if tc.half {
				mat = 1
			}
			d, v := c.Dim, c.Vocab
			wantT := []tensor{{"token_embd.weight", []int{d, v}, mat}}
			for l, g := range tc.mix {
				h := c.FFNWidths[g]
				p := fmt.Sprintf("blk.%d.", l)
				wantT = append(wantT, tensor{p + "attn_norm.weight", []int{d}, 0}, tensor{p + "attn_q.weight", []int{d, d}, mat},
					tensor{p + "attn_k.weight", []int{d, d}, mat}, tensor{p + "attn_v.weight", []int{d, d}, mat},
					tensor{p + "attn_output.weight", []int{d, d}, mat}, tensor{p + "ffn_norm.weight", []int{d}, 0},
					tensor{p + "ffn_gate.weight", []int{d, h}, mat}, tensor{p + "ffn_up.weight", []int{d, h}, mat},
					tensor{p + "ffn_down.weight", []int{h, d}, mat})
			}
			wantT = append(wantT, tensor{"output_norm.weight", []int{d}, 0}, tensor{"output.weight", []int{d, v}, mat})
			if len(seen.Tensors) != len(wantT) {
				t.Fatalf("%d tensors seen; want %d", len(seen.Tensors), len(wantT))
			}
			for i, wt := range wantT {
				st := seen.Tensors[i]
				if st.Name != wt.name || !slices.Equal(st.Shape, wt.shape) || st.DType != wt.dtype || st.Offset%32 != 0 {
					t.Errorf("tensor %d = %s %v type %d at %d; want %s %v type %d, 32-aligned", i, st.Name, st.Shape, st.DType, st.Offset, wt.name, wt.shape, wt.dtype)
				}
			}
			// Values, where the parser says each tensor starts: element
			// (i0, i1) of a [ne0, ne1] tensor is at i1·ne0 + i0.
			file := buf.Bytes()
			at := func(i int, k int) float32 {
				st := seen.Tensors[i]
				start := seen.DataOffset + st.Offset
				if st.DType == 1 {
					return safetensors.HalfToFloat(binary.LittleEndian.Uint16(file[start+2*k:]))
				}
				return math.Float32frombits(binary.LittleEndian.Uint32(file[start+4*k:]))
			}
			round := func(x float32, dtype int) float32 {
				if dtype == 1 {
					return safetensors.HalfToFloat(safetensors.FloatToHalf(x))
				}
				return x
			}
			byName := map[string]int{}
			for i, st := range seen.Tensors {
				byName[st.Name] = i
			}
			h1 := c.FFNWidths[tc.mix[1]]
			checks := []struct {
				tensor string
				want   func(i0, i1 int) float32
			}{
				{"token_embd.weight", func(i0, i1 int) float32 { return w.Embed[i1*d+i0] }},
				{"blk.1.attn_q.weight", func(i0, i1 int) float32 { return w.Layers[1].Query[i1*d+i0] }},
				{"blk.1.ffn_gate.weight", func(i0, i1 int) float32 { return w.Layers[1].Gate[i1*d+i0] }},
				{"blk.1.ffn_down.weight", func(i0, i1 int) float32 { return w.Layers[1].Down[i0*d+i1] }}, // [ne0 = hidden, ne1 = dim]
				{"blk.0.ffn_norm.weight", func(i0, _ int) float32 { return w.Layers[0].FFNNorm[i0] }},
				{"output.weight", func(i0, i1 int) float32 { return w.Head[i1*d+i0] }},
			}
			for _, ch := range checks {
				i := byName[ch.tensor]
				st := seen.Tensors[i]
				ne0, ne1 := st.Shape[0], 1
				if len(st.Shape) > 1 {
					ne1 = st.Shape[1]
				}
				if ch.tensor == "blk.1.ffn_down.weight" && ne0 != h1 {
					t.Fatalf("ffn_down ne0 %d; want layer 1's width %d", ne0, h1)
				}
				for i1 := range ne1 {
					for i0 := range ne0 {
						if got, want := at(i, i1*ne0+i0), round(ch.want(i0, i1), st.DType); got != want {
							t.Fatalf("%s (%d, %d) = %g; want %g", ch.tensor, i0, i1, got, want)
						}
					}
				}
			}
			for k, want := range map[string]string{"llama.rope.freq_base": "6", "llama.block_count": "4", "tokenizer.ggml.tokens": "[9,8]", "tokenizer.ggml.token_type": "[9,5]"} {
				if got, _ := json.Marshal(seen.Types[k]); string(got) != want {
					t.Errorf("metadata %s has type %s; want %s", k, got, want)
				}
			}
		})
	}
}

func trim(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "…"
	}
	return string(b)
}

// TestChunkPatternMatchesChunks runs ChunkPattern in JavaScript's regular
// expression engine (node) over random and real text and checks that it
// cuts exactly where model.Chunks does.
func TestChunkPatternMatchesChunks(t *testing.T) {
	needsNode(t, false)
	alphabet := []string{" ", " ", "  ", "\n", "\r\n", "\t", "\v", "\f", "a", "Z", "'", "é", "—", "日本", "🙂", "7", "42", ".", ",", "!", "\x00", "\x1f", "\x7f", "_", "{"}
	rng := rand.New(rand.NewPCG(1, 2))
	texts := []string{string(opticks()[:4000]), "", " ", "  x", "\n x", "a  \n  b", "end  "}
	for range 300 {
		var s strings.Builder
		for range rng.IntN(30) {
			s.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		texts = append(texts, s.String())
	}
	in, _ := json.Marshal(texts)
	script := `const re = new RegExp(process.argv[1], "gu");
const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => t.match(re) ?? [])));`
	cmd := exec.Command("node", "-e", script, ChunkPattern)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v %s", err, stderrOf(err))
	}
	var got [][]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		var want []string
		for _, c := range model.Chunks([]byte(text)) {
			want = append(want, string(c))
		}
		if strings.Join(got[i], "") != text || !slices.Equal(got[i], want) {
			t.Errorf("text %q: the pattern cuts %q; model.Chunks cuts %q", text, got[i], want)
		}
	}
}

// TestTokenizerJSONInHuggingFace encodes texts with Hugging Face's own
// JavaScript tokenizers from the exported tokenizer.json and
// tokenizer_config.json: the ids are matedge's, and decoding gives the text
// back.
func TestTokenizerJSONInHuggingFace(t *testing.T) {
	needsNode(t, true)
	_, tok := tinyModel(t, 13)
	b, err := TokenizerJSON(tok)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path, cfgPath := filepath.Join(dir, TokenizerFile), filepath.Join(dir, TokenizerConfigFile)
	os.WriteFile(path, b, 0o644)
	os.WriteFile(cfgPath, TokenizerConfig(model.Config{Context: 64}), 0o644)
	texts := []string{string(opticks()[20000:26000]), "It is a truth universally acknowledged, that a single man",
		"don't  split\n\n  here\t42 times — «déjà vu» 🙂 x", "   ", "a\r\nb", "end with space "}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{" ", "  ", "\n", "\t", "the", "Light", "'", "é", "—", "7", "42", ".", ",", "(", "🙂"}
	for range 100 {
		var s strings.Builder
		for range rng.IntN(20) {
			s.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		texts = append(texts, s.String())
	}
	in, _ := json.Marshal(texts)
	cmd := exec.Command("node", "tokenize.mjs", path, cfgPath)
	cmd.Dir = hfCheckDir
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node tokenize.mjs: %v %s", err, stderrOf(err))
	}
	var got []struct {
		IDs     []int  `json:"ids"`
		Decoded string `json:"decoded"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		want := tok.Encode([]byte(text))
		if !slices.Equal(got[i].IDs, want) {
			t.Errorf("text %q: Hugging Face's tokenizer gives %v; matedge %v", trim([]byte(text)), trim([]byte(fmt.Sprint(got[i].IDs))), trim([]byte(fmt.Sprint(want))))
		}
		if got[i].Decoded != text {
			t.Errorf("text %q decodes as %q", trim([]byte(text)), trim([]byte(got[i].Decoded)))
		}
	}
}
