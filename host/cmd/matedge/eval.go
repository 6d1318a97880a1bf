package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "eval", summary: "measure a submodel's loss on a text (nats/token, bits/byte)", run: runEval})
}

// evalResult is what eval prints with -json.
type evalResult struct {
	LossNatsPerToken float64 `json:"loss_nats_per_token"`
	BitsPerByte      float64 `json:"bits_per_byte"`
	Tokens           int     `json:"tokens"`
}

func runEval(args []string) error {
	fs := newFlags("eval", "-text FILE [-model PATH] [flags]", `Measures the cross-entropy of one submodel of a weights file (the embedded
default model when -model is not given) on a text, natively on the CPU: nats
per token (of the file's own tokenizer) and bits per byte (comparable across
tokenizers). The text is cut into windows of the sequence length the model was
trained with (its "seq_len" meta), each starting with an empty context, as
training's validation does; weights/doc.go ("Quality and evaluation") gives
the exact windows and formulas.

-text takes a file, or austen / opticks for the validation split of that
corpus: the split the quality table in a trained file's header was measured on.`)
	modelPath := fs.String("model", "", "weights file (.matw); empty uses the embedded default model")
	text := fs.String("text", "", "text file, or austen / opticks for that corpus's validation split")
	mixFlag := fs.String("mix", "XL", "submodel: a granularity (S, M, L, XL) or one per layer (S,M,L,XL)")
	seq := fs.Int("seq", 0, "window length; 0 means the model's training seq_len, else its context")
	batch := fs.Int("batch", 4, "windows evaluated together")
	cache := fs.String("cache", train.DefaultCache(), "where r-cran-janeaustenr is downloaded for -text austen")
	asJSON := fs.Bool("json", false, `print {"loss_nats_per_token", "bits_per_byte", "tokens"}`)
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *text == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("need -text, and no arguments")
	}
	// A window batch holds batch × seq × vocab logits and probabilities.
	if err := checkFlags(intAtLeast("batch", *batch, 1), intAtLeast("seq", *seq, 0)); err != nil {
		return err
	}
	if *batch > 256 {
		return fmt.Errorf("-batch %d: at most 256 windows at once", *batch)
	}
	w, h, name, err := host.LoadModel(*modelPath)
	if err != nil {
		return err
	}
	mix, err := w.Config.ParseMix(*mixFlag)
	if err != nil {
		return err
	}
	st := newStatus("eval", *quiet)
	defer st.Stop()
	if *text == "austen" || *text == "opticks" {
		st.Stage("loading the %s corpus", *text)
	}
	data, err := train.EvalText(*text, *cache)
	if err != nil {
		return err
	}
	seqLen := train.EvalSeqLen(*seq, w.Config, h.Meta)
	if seqLen <= 0 || seqLen > w.Config.Context || *batch <= 0 {
		return fmt.Errorf("-seq %d -batch %d: want 1 ≤ seq ≤ context (%d) and batch ≥ 1", seqLen, *batch, w.Config.Context)
	}
	ids := h.Tokenizer.NewEncoder().Encode(data)
	if len(ids) < 2 {
		return fmt.Errorf("%s: %d tokens, need at least 2", *text, len(ids))
	}
	st.Stage("evaluating %s on %d tokens", w.Config.MixSpec(mix), len(ids))
	loss, n := train.Evaluate(w, mix, ids, seqLen, *batch)
	st.Idle()
	res := evalResult{LossNatsPerToken: loss, BitsPerByte: train.BitsPerByte(loss, n, len(data)), Tokens: n}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("%s of %s on %s: %.4f nats/token, %.4f bits/byte over %d tokens\n", w.Config.MixSpec(mix), name, *text, res.LossNatsPerToken, res.BitsPerByte, res.Tokens)
	return nil
}
