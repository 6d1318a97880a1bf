// Package convert moves models between matedge and the formats other tools
// run: Hugging Face Llama checkpoints (model.safetensors + config.json +
// tokenizer.json) both ways, and GGUF (llama.cpp) out. It also reorders a
// dense model's FFN neurons by importance, the first step of inducing
// nesting in a model that was not trained nested.
//
// The layouts differ from matedge's in three ways, undone exactly on the way
// back: Hugging Face rotates the two halves of each head where matedge (like
// Meta's Llama code and llama.cpp) rotates adjacent pairs, so query and key
// rows are permuted within each head; down_proj is stored [dim][hidden] where
// matedge keeps the FFN neuron-major ([hidden][dim]); and grouped-query
// attention, which matedge does not run, is imported by repeating each
// key/value head for the query heads that share it (the same function).
package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/safetensors"
)

// File names of a Hugging Face checkpoint directory.
const (
	SafetensorsFile = "model.safetensors"
	IndexFile       = "model.safetensors.index.json" // a sharded checkpoint's map of tensor → shard
	ConfigFile      = "config.json"
	TokenizerFile   = "tokenizer.json"
	// TokenizerConfigFile tells transformers how to use tokenizer.json:
	// above all, not to "clean up" spaces before punctuation when decoding,
	// which would not give the text back.
	TokenizerConfigFile = "tokenizer_config.json"
)

// LlamaConfig is the part of a Hugging Face config.json that describes a
// Llama network, as ExportHF writes it.
type LlamaConfig struct {
	Architectures         []string `json:"architectures"`
	ModelType             string   `json:"model_type"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	HeadDim               int      `json:"head_dim"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	RMSNormEps            float32  `json:"rms_norm_eps"`
	RopeTheta             float32  `json:"rope_theta"`
	VocabSize             int      `json:"vocab_size"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	HiddenAct             string   `json:"hidden_act"`
	AttentionBias         bool     `json:"attention_bias"`
	MLPBias               bool     `json:"mlp_bias"`
	RopeScaling           any      `json:"rope_scaling"`
	TorchDType            string   `json:"torch_dtype"`
}

// hfNames are the Hugging Face names of layer l's tensors.
func hfLayer(l int, name string) string { return fmt.Sprintf("model.layers.%d.%s.weight", l, name) }

// rotaryToHalves permutes the rows of a [heads·headDim][cols] query or key
// matrix from adjacent-pair rotary order (matedge) to half-split order
// (Hugging Face): row h·hd + p·hd/2 + i of the result is row h·hd + 2i + p of w.
func rotaryToHalves(w []float32, heads, headDim, cols int) []float32 {
	out := make([]float32, len(w))
	half := headDim / 2
	for h := range heads {
		for i := range half {
			for p := range 2 {
				dst := (h*headDim + p*half + i) * cols
				src := (h*headDim + 2*i + p) * cols
				copy(out[dst:dst+cols], w[src:src+cols])
			}
		}
	}
	return out
}

// rotaryToPairs is rotaryToHalves undone.
func rotaryToPairs(w []float32, heads, headDim, cols int) []float32 {
	out := make([]float32, len(w))
	half := headDim / 2
	for h := range heads {
		for i := range half {
			for p := range 2 {
				src := (h*headDim + p*half + i) * cols
				dst := (h*headDim + 2*i + p) * cols
				copy(out[dst:dst+cols], w[src:src+cols])
			}
		}
	}
	return out
}

// transpose returns the [cols][rows] transpose of a row-major [rows][cols] matrix.
func transpose(w []float32, rows, cols int) []float32 {
	out := make([]float32, len(w))
	for r := range rows {
		for c := range cols {
			out[c*rows+r] = w[r*cols+c]
		}
	}
	return out
}

// uniformWidth is the FFN width of a mix that uses one granularity in every
// layer, or an error: a Llama config.json has one intermediate_size.
func uniformWidth(c model.Config, mix model.Mix) (int, error) {
	if err := c.CheckMix(mix); err != nil {
		return 0, err
	}
	for _, g := range mix[1:] {
		if g != mix[0] {
			return 0, fmt.Errorf("convert: mix %s uses different FFN widths per layer, which a Llama config.json (one intermediate_size) cannot describe; export it as GGUF, which can", c.MixSpec(mix))
		}
	}
	return c.FFNWidths[mix[0]], nil
}

// ExportHF writes the submodel mix of w as a Hugging Face Llama checkpoint in
// dir: model.safetensors with tensors of dtype (F32, F16 or BF16; norms
// too), config.json, tokenizer.json and tokenizer_config.json. The mix must
// be uniform.
func ExportHF(dir string, w *model.Weights, tok model.Tokenizer, mix model.Mix, dtype safetensors.DType) error {
	c := w.Config
	width, err := uniformWidth(c, mix)
	if err != nil {
		return err
	}
	tokJSON, err := TokenizerJSON(tok)
	if err != nil {
		return err
	}
	d, hd := c.Dim, c.HeadDim()
	t := func(name string, data []float32, shape ...int) safetensors.Tensor {
		return safetensors.Tensor{Name: name, DType: dtype, Shape: shape, Data: data}
	}
	tensors := []safetensors.Tensor{t("model.embed_tokens.weight", w.Embed, c.Vocab, d)}
	for l, layer := range w.Layers {
		tensors = append(tensors,
			t(hfLayer(l, "input_layernorm"), layer.AttnNorm, d),
			t(hfLayer(l, "self_attn.q_proj"), rotaryToHalves(layer.Query, c.Heads, hd, d), d, d),
			t(hfLayer(l, "self_attn.k_proj"), rotaryToHalves(layer.Key, c.Heads, hd, d), d, d),
			t(hfLayer(l, "self_attn.v_proj"), layer.Value, d, d),
			t(hfLayer(l, "self_attn.o_proj"), layer.Output, d, d),
			t(hfLayer(l, "post_attention_layernorm"), layer.FFNNorm, d),
			t(hfLayer(l, "mlp.gate_proj"), layer.Gate[:width*d], width, d),
			t(hfLayer(l, "mlp.up_proj"), layer.Up[:width*d], width, d),
			t(hfLayer(l, "mlp.down_proj"), transpose(layer.Down[:width*d], width, d), d, width),
		)
	}
	tensors = append(tensors, t("model.norm.weight", w.FinalNorm, d), t("lm_head.weight", w.Head, c.Vocab, d))

	cfg := LlamaConfig{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		HiddenSize: d, IntermediateSize: width, NumHiddenLayers: c.Layers,
		NumAttentionHeads: c.Heads, NumKeyValueHeads: c.Heads, HeadDim: hd,
		MaxPositionEmbeddings: c.Context, RMSNormEps: c.NormEps, RopeTheta: c.RopeTheta,
		VocabSize: c.Vocab, HiddenAct: "silu",
		TorchDType: map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}[dtype],
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, SafetensorsFile))
	if err != nil {
		return err
	}
	if err := safetensors.Write(f, tensors, map[string]string{"format": "pt"}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), append(cfgJSON, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, TokenizerFile), append(tokJSON, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, TokenizerConfigFile), TokenizerConfig(c), 0o644)
}

// TokenizerConfig is the tokenizer_config.json written beside
// tokenizer.json: a fast tokenizer with no special tokens added, decoding
// without space clean-up, up to the context length.
func TokenizerConfig(c model.Config) []byte {
	b, _ := json.MarshalIndent(map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"clean_up_tokenization_spaces": false,
		"add_bos_token":                false,
		"add_eos_token":                false,
		"model_max_length":             c.Context,
	}, "", "  ")
	return append(b, '\n')
}

// ImportOptions shape the matedge model an import makes.
type ImportOptions struct {
	// Granularities is how many nested FFN widths to give the model:
	// intermediate_size/2^(G-1) … intermediate_size (default 4: S, M, L, XL).
	Granularities int
	// Context overrides max_position_embeddings (matedge allows at most 65536).
	Context int
}

// Imported is a checkpoint read into matedge's form.
type Imported struct {
	Weights   *model.Weights
	Tokenizer model.Tokenizer
	Notes     []string // what the import changed or cannot carry, one sentence each
}

// ErrArchitecture: config.json describes a network matedge does not run.
var ErrArchitecture = errors.New("unsupported architecture")

// readConfig reads config.json, refusing each field matedge cannot honour
// with a line naming it.
func readConfig(b []byte) (LlamaConfig, []string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return LlamaConfig{}, nil, fmt.Errorf("config.json: %w", err)
	}
	cfg := LlamaConfig{NumKeyValueHeads: -1, MaxPositionEmbeddings: 2048, RopeTheta: 10000, HiddenAct: "silu"}
	if err := json.Unmarshal(b, &cfg); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "intermediate_size" {
			return LlamaConfig{}, nil, fmt.Errorf("config.json: intermediate_size is not one number but %s; matedge's FFN has one width for every layer", typeErr.Value)
		}
		return LlamaConfig{}, nil, fmt.Errorf("config.json: %w", err)
	}
	var problems []error
	bad := func(format string, a ...any) {
		problems = append(problems, fmt.Errorf("config.json: "+format, a...))
	}
	llama := cfg.ModelType == "llama"
	for _, a := range cfg.Architectures {
		llama = llama || a == "LlamaForCausalLM"
	}
	if !llama {
		return cfg, nil, fmt.Errorf("config.json: %w: model_type %q, architectures %v; matedge imports Llama (model_type \"llama\", LlamaForCausalLM)", ErrArchitecture, cfg.ModelType, cfg.Architectures)
	}
	for _, f := range []string{"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "rms_norm_eps"} {
		if _, ok := raw[f]; !ok {
			bad("%s is missing", f)
		}
	}
	if cfg.HiddenAct != "silu" {
		bad("hidden_act %q: matedge's FFN is SwiGLU (silu)", cfg.HiddenAct)
	}
	if cfg.AttentionBias {
		bad("attention_bias true: matedge has no biases")
	}
	if cfg.MLPBias {
		bad("mlp_bias true: matedge has no biases")
	}
	if cfg.RopeScaling != nil {
		bad("rope_scaling %v: matedge runs plain RoPE", cfg.RopeScaling)
	}
	if cfg.NumAttentionHeads > 0 && cfg.HiddenSize%cfg.NumAttentionHeads == 0 && cfg.HeadDim != 0 && cfg.HeadDim != cfg.HiddenSize/cfg.NumAttentionHeads {
		bad("head_dim %d is not hidden_size/num_attention_heads (%d): matedge's heads split the residual stream", cfg.HeadDim, cfg.HiddenSize/cfg.NumAttentionHeads)
	}
	var notes []string
	if cfg.NumKeyValueHeads == -1 {
		cfg.NumKeyValueHeads = cfg.NumAttentionHeads
	}
	if cfg.NumKeyValueHeads != cfg.NumAttentionHeads {
		if cfg.NumKeyValueHeads <= 0 || cfg.NumAttentionHeads%cfg.NumKeyValueHeads != 0 {
			bad("num_key_value_heads %d does not divide num_attention_heads %d", cfg.NumKeyValueHeads, cfg.NumAttentionHeads)
		} else {
			notes = append(notes, fmt.Sprintf("grouped-query attention (%d key/value heads for %d query heads) is stored with each key/value head repeated: the same function, %d× the key/value weights", cfg.NumKeyValueHeads, cfg.NumAttentionHeads, cfg.NumAttentionHeads/cfg.NumKeyValueHeads))
		}
	}
	return cfg, notes, errors.Join(problems...)
}

// tensorSource finds tensors in a single or sharded checkpoint.
type tensorSource struct {
	files map[string]*safetensors.File // tensor name → the file holding it
}

func openSource(dir string) (*tensorSource, func(), error) {
	src := &tensorSource{files: map[string]*safetensors.File{}}
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	shards := []string{SafetensorsFile}
	if _, err := os.Stat(filepath.Join(dir, SafetensorsFile)); err != nil {
		idx, ierr := os.ReadFile(filepath.Join(dir, IndexFile))
		if ierr != nil {
			return nil, closeAll, fmt.Errorf("no %s or %s in %s", SafetensorsFile, IndexFile, dir)
		}
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(idx, &index); err != nil {
			return nil, closeAll, fmt.Errorf("%s: %w", IndexFile, err)
		}
		set := map[string]bool{}
		shards = shards[:0]
		for _, shard := range index.WeightMap {
			if filepath.Base(shard) != shard {
				return nil, closeAll, fmt.Errorf("%s: shard %q is not a file name in the checkpoint's directory", IndexFile, shard)
			}
			if !set[shard] {
				set[shard] = true
				shards = append(shards, shard)
			}
		}
		sort.Strings(shards)
	}
	for _, shard := range shards {
		f, err := os.Open(filepath.Join(dir, shard))
		if err != nil {
			return nil, closeAll, err
		}
		opened = append(opened, f)
		st, err := f.Stat()
		if err != nil {
			return nil, closeAll, err
		}
		sf, err := safetensors.Open(f, st.Size())
		if err != nil {
			return nil, closeAll, fmt.Errorf("%s: %w", shard, err)
		}
		for _, t := range sf.Tensors {
			if _, dup := src.files[t.Name]; dup {
				return nil, closeAll, fmt.Errorf("%s: tensor %q is in two shards", shard, t.Name)
			}
			src.files[t.Name] = sf
		}
	}
	return src, closeAll, nil
}

// ImportHF reads a Hugging Face Llama checkpoint directory (config.json,
// model.safetensors or a sharded one, tokenizer.json) into a nested matedge
// model. Every problem is refused with one line naming it: an architecture
// other than Llama, a config field matedge cannot honour, a missing, extra
// or misshapen tensor, a dtype other than F32, F16 and BF16, a tokenizer
// that is not byte-level BPE.
func ImportHF(dir string, opts ImportOptions) (*Imported, error) {
	if opts.Granularities == 0 {
		opts.Granularities = 4
	}
	cfgBytes, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	hc, notes, err := readConfig(cfgBytes)
	if err != nil {
		return nil, err
	}
	tokBytes, err := os.ReadFile(filepath.Join(dir, TokenizerFile))
	if err != nil {
		return nil, err
	}
	it, err := ReadTokenizerJSON(tokBytes)
	if err != nil {
		return nil, err
	}
	notes = append(notes, it.Notes...)

	widths := make([]int, opts.Granularities)
	for g := range widths {
		widths[g] = hc.IntermediateSize >> (opts.Granularities - 1 - g)
	}
	contextLen := hc.MaxPositionEmbeddings
	if opts.Context > 0 {
		contextLen = opts.Context
	}
	c := model.Config{Vocab: hc.VocabSize, Dim: hc.HiddenSize, Layers: hc.NumHiddenLayers, Heads: hc.NumAttentionHeads,
		FFNWidths: widths, Context: contextLen, RopeTheta: hc.RopeTheta, NormEps: hc.RMSNormEps}
	if err := c.Validate(); err != nil {
		hint := ""
		if contextLen > 1<<16 {
			hint = " (max_position_embeddings is larger than matedge runs; pass a shorter context)"
		}
		return nil, fmt.Errorf("config.json: %w%s", err, hint)
	}
	if it.Tokenizer.Size() > c.Vocab {
		return nil, fmt.Errorf("tokenizer.json has %d byte-level ids, vocab_size is %d", it.Tokenizer.Size(), c.Vocab)
	}
	// perm[id] is the checkpoint's row of matedge id id: bytes and merges
	// first, then every other row in order (special tokens, padding).
	perm := make([]int, 0, c.Vocab)
	used := make([]bool, c.Vocab)
	for id, hf := range it.HFID {
		if hf < 0 || hf >= c.Vocab {
			return nil, fmt.Errorf("tokenizer.json: token %q has id %d, outside vocab_size %d", it.Tokenizer.Piece(id), hf, c.Vocab)
		}
		if used[hf] {
			return nil, fmt.Errorf("tokenizer.json: id %d names two tokens", hf)
		}
		used[hf] = true
		perm = append(perm, hf)
	}
	for hf, u := range used {
		if !u {
			perm = append(perm, hf)
		}
	}

	src, closeAll, err := openSource(dir)
	defer closeAll()
	if err != nil {
		return nil, err
	}
	d, hd, kv := c.Dim, c.HeadDim(), hc.NumKeyValueHeads
	hidden := hc.IntermediateSize
	wantShapes := map[string][]int64{
		"model.embed_tokens.weight": {int64(c.Vocab), int64(d)},
		"model.norm.weight":         {int64(d)},
	}
	if !hc.TieWordEmbeddings {
		wantShapes["lm_head.weight"] = []int64{int64(c.Vocab), int64(d)}
	}
	for l := range c.Layers {
		for name, shape := range map[string][]int64{
			"input_layernorm": {int64(d)}, "post_attention_layernorm": {int64(d)},
			"self_attn.q_proj": {int64(d), int64(d)}, "self_attn.k_proj": {int64(kv * hd), int64(d)},
			"self_attn.v_proj": {int64(kv * hd), int64(d)}, "self_attn.o_proj": {int64(d), int64(d)},
			"mlp.gate_proj": {int64(hidden), int64(d)}, "mlp.up_proj": {int64(hidden), int64(d)},
			"mlp.down_proj": {int64(d), int64(hidden)},
		} {
			wantShapes[hfLayer(l, name)] = shape
		}
	}
	var problems []error
	var names []string
	for name := range wantShapes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, ok := src.files[name]
		if !ok {
			problems = append(problems, fmt.Errorf("missing tensor %s", name))
			continue
		}
		info, _ := f.Info(name)
		if info.DType != safetensors.F32 && info.DType != safetensors.F16 && info.DType != safetensors.BF16 {
			problems = append(problems, fmt.Errorf("tensor %s is %s; matedge imports F32, F16 and BF16", name, info.DType))
		}
		if !slices.Equal(info.Shape, wantShapes[name]) {
			problems = append(problems, fmt.Errorf("tensor %s has shape %v; config.json says %v", name, info.Shape, wantShapes[name]))
		}
	}
	var extra []string
	for name := range src.files {
		if _, ok := wantShapes[name]; !ok && !strings.HasSuffix(name, "rotary_emb.inv_freq") {
			if name == "lm_head.weight" && hc.TieWordEmbeddings {
				continue // some tied checkpoints store it anyway; the embedding is used, as transformers does
			}
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		problems = append(problems, fmt.Errorf("unexpected tensor %s (a bias, or a layer of another architecture?)", name))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}

	read := func(name string) []float32 {
		x, err := src.files[name].Float32(name)
		if err != nil {
			problems = append(problems, err)
		}
		return x
	}
	w := model.NewWeights(c)
	permuteRows := func(dst, src []float32) {
		for id, hf := range perm {
			copy(dst[id*d:(id+1)*d], src[hf*d:(hf+1)*d])
		}
	}
	embed := read("model.embed_tokens.weight")
	head := embed
	if !hc.TieWordEmbeddings {
		head = read("lm_head.weight")
	} else {
		notes = append(notes, "tie_word_embeddings: the LM head is stored as a copy of the embedding")
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	permuteRows(w.Embed, embed)
	permuteRows(w.Head, head)
	copy(w.FinalNorm, read("model.norm.weight"))
	for l := range w.Layers {
		layer := &w.Layers[l]
		copy(layer.AttnNorm, read(hfLayer(l, "input_layernorm")))
		copy(layer.FFNNorm, read(hfLayer(l, "post_attention_layernorm")))
		copy(layer.Query, rotaryToPairs(read(hfLayer(l, "self_attn.q_proj")), c.Heads, hd, d))
		copy(layer.Key, repeatHeads(rotaryToPairs(read(hfLayer(l, "self_attn.k_proj")), kv, hd, d), kv, c.Heads, hd*d))
		copy(layer.Value, repeatHeads(read(hfLayer(l, "self_attn.v_proj")), kv, c.Heads, hd*d))
		copy(layer.Output, read(hfLayer(l, "self_attn.o_proj")))
		copy(layer.Gate, read(hfLayer(l, "mlp.gate_proj")))
		copy(layer.Up, read(hfLayer(l, "mlp.up_proj")))
		copy(layer.Down, transpose(read(hfLayer(l, "mlp.down_proj")), d, hidden))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	for _, t := range w.Tensors() {
		for i, v := range t.Data {
			if v != v || v-v != 0 {
				return nil, fmt.Errorf("tensor for %s holds a non-finite value at element %d", t.Name, i)
			}
		}
	}
	return &Imported{Weights: w, Tokenizer: it.Tokenizer, Notes: notes}, nil
}

// repeatHeads expands kv heads of size block to heads by repeating each for
// the heads/kv query heads that share it (grouped-query attention as
// multi-head attention).
func repeatHeads(w []float32, kv, heads, block int) []float32 {
	if kv == heads {
		return w
	}
	out := make([]float32, heads*block)
	for h := range heads {
		src := h / (heads / kv)
		copy(out[h*block:(h+1)*block], w[src*block:(src+1)*block])
	}
	return out
}
