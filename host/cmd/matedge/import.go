package main

import (
	"fmt"
	"os"

	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/convert"
	"github.com/matedge/matedge/weights/experiment"
)

func init() {
	register(command{name: "import", summary: "read a Llama safetensors checkpoint into a nested .matw", run: runImport})
}

func runImport(args []string) error {
	fs := newFlags("import", "[flags] CHECKPOINT_DIR", `Reads a Hugging Face Llama checkpoint directory — config.json,
model.safetensors (or a sharded model.safetensors.index.json), f32, f16 or
bf16, and a byte-level BPE tokenizer.json — into a .matw file whose FFN has
-granularities nested widths: intermediate_size/2^(G-1) … intermediate_size.

A dense model's FFN prefixes are not useful submodels until its neurons are
reordered and nesting is induced: run matedge finetune on the result.
Grouped-query attention is stored as multi-head (each key/value head
repeated); a tied LM head as a copy of the embedding. Anything matedge cannot
run (another architecture, biases, RoPE scaling, a tokenizer that is not
byte-level BPE, a missing, extra or misshapen tensor) is refused with a line
naming it.`)
	granularities := fs.Int("granularities", 4, "nested FFN widths to give the model")
	contextLen := fs.Int("context", 0, "context length; 0 means config.json's max_position_embeddings")
	out := fs.String("out", "imported.matw", "weights file to write")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("want one checkpoint directory, got %d arguments (see -help)", len(pos))
	}
	if err := checkFlags(intAtLeast("granularities", *granularities, 1), intAtLeast("context", *contextLen, 0), dirExists("out", *out)); err != nil {
		return err
	}
	imp, err := convert.ImportHF(pos[0], convert.ImportOptions{Granularities: *granularities, Context: *contextLen})
	if err != nil {
		return err
	}
	c := imp.Weights.Config
	for _, n := range imp.Notes {
		fmt.Fprintf(os.Stderr, "note: %s\n", n)
	}
	fmt.Fprintf(os.Stderr, "model: dim %d, %d layers, %d heads, FFN widths %v, context %d, vocab %d (%d byte-level BPE ids)\n",
		c.Dim, c.Layers, c.Heads, c.FFNWidths, c.Context, c.Vocab, imp.Tokenizer.Size())
	meta := map[string]string{"kind": "imported", "source": pos[0], "command": "matedge import " + experiment.ShellJoin(args)}
	n, err := weights.WriteFile(*out, imp.Weights, imp.Tokenizer, meta)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", *out, n)
	return nil
}
