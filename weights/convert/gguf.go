package convert

import (
	"fmt"
	"io"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/gguf"
	"github.com/matedge/matedge/weights/safetensors"
)

// GGUF token types (llama.cpp's llama_token_type).
const (
	tokenNormal = 1
	tokenUnused = 5
)

// ExportGGUF writes the submodel mix of w as a GGUF file of llama.cpp's
// "llama" architecture. Any mix works: a per-layer one stores
// llama.feed_forward_length as one length per layer. Matrices are stored as
// f16 when half is set, else f32; norms are always f32 (llama.cpp's
// convention). RoPE needs no permutation: llama.cpp's llama rotates adjacent
// pairs, as matedge does. The tokenizer is stored as a "gpt2" (byte-level
// BPE) vocabulary; ids beyond the tokenizer's, if the config has any, are
// unused placeholder tokens.
func ExportGGUF(out io.Writer, w *model.Weights, tok model.Tokenizer, mix model.Mix, half bool, name string) error {
	c := w.Config
	if err := c.CheckMix(mix); err != nil {
		return err
	}
	if err := tok.Validate(); err != nil {
		return err
	}
	var g gguf.Writer
	fileType := uint32(0) // all f32
	if half {
		fileType = 1 // mostly f16
	}
	g.String("general.architecture", "llama")
	g.String("general.name", name)
	g.Uint32("general.file_type", fileType)
	g.Uint32("llama.vocab_size", uint32(c.Vocab))
	g.Uint32("llama.context_length", uint32(c.Context))
	g.Uint32("llama.embedding_length", uint32(c.Dim))
	g.Uint32("llama.block_count", uint32(c.Layers))
	widths := make([]uint32, c.Layers)
	uniform := true
	for l, gr := range mix {
		widths[l] = uint32(c.FFNWidths[gr])
		uniform = uniform && widths[l] == widths[0]
	}
	if uniform {
		g.Uint32("llama.feed_forward_length", widths[0])
	} else {
		g.Uint32s("llama.feed_forward_length", widths)
	}
	g.Uint32("llama.attention.head_count", uint32(c.Heads))
	g.Uint32("llama.attention.head_count_kv", uint32(c.Heads))
	g.Uint32("llama.rope.dimension_count", uint32(c.HeadDim()))
	g.Float32("llama.rope.freq_base", c.RopeTheta)
	g.Float32("llama.attention.layer_norm_rms_epsilon", c.NormEps)

	tokens := make([]string, c.Vocab)
	types := make([]int32, c.Vocab)
	seen := map[string]int{}
	for id := range c.Vocab {
		if id < tok.Size() {
			tokens[id], types[id] = byteLevel(tok.Piece(id)), tokenNormal
			if first, dup := seen[tokens[id]]; dup {
				return fmt.Errorf("convert: tokenizer ids %d and %d have the same bytes; GGUF's vocabulary has one id per string", first, id)
			}
			seen[tokens[id]] = id
		} else {
			tokens[id], types[id] = fmt.Sprintf("<unused%d>", id), tokenUnused
		}
	}
	merges := make([]string, len(tok.Merges))
	for i, m := range tok.Merges {
		merges[i] = byteLevel(tok.Piece(m[0])) + " " + byteLevel(tok.Piece(m[1]))
	}
	g.String("tokenizer.ggml.model", "gpt2")
	g.String("tokenizer.ggml.pre", "default")
	g.Strings("tokenizer.ggml.tokens", tokens)
	g.Int32s("tokenizer.ggml.token_type", types)
	g.Strings("tokenizer.ggml.merges", merges)

	var err error
	add := func(name string, data []float32, dims ...uint64) {
		if err != nil {
			return
		}
		typ, dtype := gguf.F32, safetensors.F32
		if half && len(dims) > 1 {
			typ, dtype = gguf.F16, safetensors.F16
		}
		var b []byte
		if b, err = safetensors.Encode(dtype, data); err != nil {
			err = fmt.Errorf("convert: %s: %w", name, err)
			return
		}
		err = g.Tensor(name, dims, typ, b)
	}
	d, v := uint64(c.Dim), uint64(c.Vocab)
	add("token_embd.weight", w.Embed, d, v)
	for l, layer := range w.Layers {
		width := int(widths[l])
		h := uint64(width)
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", layer.AttnNorm, d)
		add(p+"attn_q.weight", layer.Query, d, d)
		add(p+"attn_k.weight", layer.Key, d, d)
		add(p+"attn_v.weight", layer.Value, d, d)
		add(p+"attn_output.weight", layer.Output, d, d)
		add(p+"ffn_norm.weight", layer.FFNNorm, d)
		add(p+"ffn_gate.weight", layer.Gate[:width*c.Dim], d, h)
		add(p+"ffn_up.weight", layer.Up[:width*c.Dim], d, h)
		add(p+"ffn_down.weight", transpose(layer.Down[:width*c.Dim], width, c.Dim), h, d)
	}
	add("output_norm.weight", w.FinalNorm, d)
	add("output.weight", w.Head, d, v)
	if err != nil {
		return err
	}
	_, err = g.WriteTo(out)
	return err
}
