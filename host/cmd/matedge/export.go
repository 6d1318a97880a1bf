package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/weights/convert"
	"github.com/matedge/matedge/weights/safetensors"
)

func init() {
	register(command{name: "export", summary: "write a submodel as a Llama safetensors checkpoint or a GGUF file", run: runExport})
}

func runExport(args []string) error {
	fs := newFlags("export", "[flags] [MODEL.matw]", `Writes one submodel (a Mix) of a .matw file (the embedded default model when
none is given) in a format other tools run:

  -format hf    a Hugging Face Llama checkpoint directory: model.safetensors,
                config.json, a byte-level BPE tokenizer.json and
                tokenizer_config.json (uniform mixes: config.json has one
                intermediate_size)
  -format gguf  one GGUF file of llama.cpp's llama architecture (any mix: a
                per-layer one stores one feed_forward_length per layer)

The exported network computes what matedge computes for that mix: rotary
query/key rows are permuted to Hugging Face's half-split order (GGUF keeps
matedge's adjacent pairs, as llama.cpp expects), and the tokenizer.json
splits text with model.Chunks' rules as a regular expression.`)
	mixSpec := fs.String("mix", "", "submodel to export: S, M, L, XL, g0…, or one per layer (S,M,L,XL); default the largest")
	format := fs.String("format", "hf", "hf (safetensors + config.json + tokenizer.json) or gguf")
	dtype := fs.String("dtype", "f32", "element type: f32, f16, bf16 (hf); f32, f16 (gguf: norms stay f32)")
	out := fs.String("out", "", "output: a directory for hf, a .gguf file for gguf (required)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("one model file, got %d arguments", len(pos))
	}
	if *out == "" {
		return fmt.Errorf("-out is required (a directory for -format hf, a file for -format gguf)")
	}
	path := ""
	if len(pos) == 1 {
		path = pos[0]
	}
	w, h, name, err := host.LoadModel(path)
	if err != nil {
		return err
	}
	c := w.Config
	mix := c.Uniform(c.Granularities() - 1)
	if *mixSpec != "" {
		if mix, err = c.ParseMix(*mixSpec); err != nil {
			return fmt.Errorf("-mix: %w", err)
		}
	}
	switch *format {
	case "hf":
		dt := map[string]safetensors.DType{"f32": safetensors.F32, "f16": safetensors.F16, "bf16": safetensors.BF16}[*dtype]
		if dt == "" {
			return fmt.Errorf("-dtype %q: want f32, f16 or bf16", *dtype)
		}
		if err := convert.ExportHF(*out, w, h.Tokenizer, mix, dt); err != nil {
			return err
		}
		st, _ := os.Stat(filepath.Join(*out, convert.SafetensorsFile))
		fmt.Fprintf(os.Stderr, "exported %s mix %s as %s: %s/{%s,%s,%s,%s} (%d bytes of weights)\n", name, c.MixSpec(mix), *dtype, *out,
			convert.SafetensorsFile, convert.ConfigFile, convert.TokenizerFile, convert.TokenizerConfigFile, st.Size())
	case "gguf":
		if *dtype != "f32" && *dtype != "f16" {
			return fmt.Errorf("-dtype %q: GGUF export writes f32 or f16", *dtype)
		}
		if err := dirExists("out", *out); err != nil {
			return err
		}
		var buf bytes.Buffer
		base := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
		if err := convert.ExportGGUF(&buf, w, h.Tokenizer, mix, *dtype == "f16", base+"-"+strings.ReplaceAll(c.MixSpec(mix), ",", "")); err != nil {
			return err
		}
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "exported %s mix %s as %s GGUF: %s (%d bytes)\n", name, c.MixSpec(mix), *dtype, *out, buf.Len())
	default:
		return fmt.Errorf("-format %q: want hf or gguf", *format)
	}
	return nil
}
