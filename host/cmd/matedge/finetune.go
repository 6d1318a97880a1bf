package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/convert"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "finetune", summary: "induce nesting in a model: reorder FFN neurons by importance, then train with the joint loss", run: runFinetune})
}

func runFinetune(args []string) error {
	fs := newFlags("finetune", "[flags] MODEL.matw", `Makes the granularities of a model that was not trained nested (a dense
checkpoint brought in with matedge import) into useful submodels:

1. Reorder: every layer's FFN neurons are permuted (gate and up rows with the
   matching down row) by an importance score measured on the training text —
   mean |activation| × ‖down row‖ — so that each prefix holds the most
   important neurons. The full model computes the same function.
2. Fine-tune: training continues from those weights with MatFormer's joint
   loss over every granularity (-loss-weights), with a fresh AdamW, a short
   warmup and a cosine schedule.

Progress, checkpoints (-checkpoint-every; -resume continues from the last),
Ctrl-C (stops after the current step and writes a checkpoint) and the corpus
flags work as in matedge train. -steps 0 only reorders.`)
	data := fs.String("data", "austen", "corpus: austen, opticks, or a text file")
	cache := fs.String("cache", train.DefaultCache(), "where r-cran-janeaustenr is downloaded for -data austen")
	reorder := fs.Bool("reorder", true, "reorder FFN neurons by importance before fine-tuning")
	calibration := fs.Int("calibration-tokens", 65536, "training tokens the importance scores are measured on")
	steps := fs.Int("steps", 100, "fine-tuning steps (0: reorder only)")
	batch := fs.Int("batch", 8, "sequences per step")
	seq := fs.Int("seq", 0, "tokens per sequence; 0 means the context length")
	lr := fs.Float64("lr", 1e-3, "peak learning rate")
	minLR := fs.Float64("min-lr", 0, "final learning rate of the cosine schedule; 0 means lr/10")
	warmup := fs.Int("warmup", 0, "warmup steps; 0 means steps/20")
	clip := fs.Float64("clip", 1, "gradient norm limit")
	decay := fs.Float64("weight-decay", 0.1, "AdamW weight decay of matrices")
	lossWeights := fs.String("loss-weights", "", "comma list of per-granularity loss weights, S to XL (default 1 each)")
	seed := fs.Uint64("seed", 1, "seed of the batches")
	evalEvery := fs.Int("eval-every", 25, "steps between validation passes")
	evalTokens := fs.Int("eval-tokens", 8192, "validation tokens per pass")
	out := fs.String("out", "finetuned.matw", "weights file to write")
	ckpt := fs.String("checkpoint", "", "checkpoint file; empty means OUT.ckpt")
	ckptEvery := fs.Int("checkpoint-every", 50, "steps between checkpoints")
	resume := fs.Bool("resume", false, "continue the fine-tune in -checkpoint (MODEL.matw is then not read)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *ckpt == "" {
		*ckpt = *out + ".ckpt"
	}
	if err := checkFlags(intAtLeast("steps", *steps, 0), intAtLeast("batch", *batch, 1), intAtLeast("seq", *seq, 0),
		intAtLeast("warmup", *warmup, 0), intAtLeast("eval-every", *evalEvery, 0), intAtLeast("eval-tokens", *evalTokens, 0),
		intAtLeast("checkpoint-every", *ckptEvery, 0), intAtLeast("calibration-tokens", *calibration, 1),
		finiteAbove("lr", *lr, 0), finiteAtLeast("min-lr", *minLR, 0), finiteAtLeast("clip", *clip, 0), finiteAtLeast("weight-decay", *decay, 0),
		dirExists("out", *out), dirExists("checkpoint", *ckpt)); err != nil {
		return err
	}
	if !*resume && len(pos) != 1 {
		return fmt.Errorf("want one model file, got %d arguments (see -help)", len(pos))
	}
	corpus, err := train.LoadCorpus(*data, *cache)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "corpus %s: %d training + %d validation bytes\n", corpus.Name, len(corpus.Train), len(corpus.Validation))
	tokenize := func(tok model.Tokenizer) ([]int, []int) {
		enc := tok.NewEncoder()
		return enc.Encode(corpus.Train), enc.Encode(corpus.Validation)
	}

	var tr *train.Trainer
	if *resume {
		if tr, err = train.Resume(*ckpt, tokenize); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "resuming %s at step %d of %d\n", *ckpt, tr.Step, tr.Options.Steps)
	} else {
		ft := fineTune{path: pos[0], out: *out, reorder: *reorder, calibration: *calibration, lossWeights: *lossWeights, args: args,
			opts: train.Options{Batch: *batch, SeqLen: *seq, Steps: *steps, Warmup: *warmup, LR: float32(*lr), MinLR: float32(*minLR),
				WeightDecay: float32(*decay), ClipNorm: float32(*clip), Seed: *seed, EvalEvery: *evalEvery, EvalTokens: *evalTokens}}
		if tr, err = ft.start(corpus, tokenize); err != nil || tr == nil {
			return err // tr is nil when -steps 0 wrote the reordered model
		}
	}
	o := tr.Options
	fmt.Fprintf(os.Stderr, "fine-tune: %d steps of %d×%d tokens, lr %g→%g (warmup %d), loss weights %v\n", o.Steps, o.Batch, o.SeqLen, o.LR, o.MinLR, o.Warmup, o.LossWeights)
	if err := runTrainer(tr, *ckpt, *ckptEvery); err != nil {
		return err
	}
	_, validIDs := tokenize(tr.Tokenizer)
	meta := map[string]string{"kind": "finetuned", "command": tr.Meta["command"], "steps": strconv.Itoa(o.Steps), "objective": "matformer"}
	return writeModel(*out, tr.Weights, tr.Tokenizer, corpus, o.SeqLen, o.Batch, validIDs, meta)
}

// fineTune is a fine-tune that starts from a model file.
type fineTune struct {
	path, out   string
	reorder     bool
	calibration int
	lossWeights string
	args        []string
	opts        train.Options // Config is the model's; SeqLen 0 means its context
}

// start loads the model, reorders its FFN neurons by importance (-reorder),
// and returns the trainer that fine-tunes it; with -steps 0 it writes the
// reordered model instead and returns nil.
func (f fineTune) start(corpus *train.Corpus, tokenize func(model.Tokenizer) ([]int, []int)) (*train.Trainer, error) {
	w, h, name, err := host.LoadModel(f.path)
	if err != nil {
		return nil, err
	}
	c := w.Config
	trainIDs, validIDs := tokenize(h.Tokenizer)
	seqLen := f.opts.SeqLen
	if seqLen == 0 {
		seqLen = c.Context
	}
	if seqLen > c.Context {
		return nil, fmt.Errorf("-seq %d: the model's context is %d", seqLen, c.Context)
	}
	evalIDs := validIDs
	if f.opts.EvalTokens > 0 && len(evalIDs) > f.opts.EvalTokens+1 {
		evalIDs = evalIDs[:f.opts.EvalTokens+1]
	}
	report := func(what string) {
		var s strings.Builder
		for g := range c.Granularities() {
			loss, _ := train.Evaluate(w, c.Uniform(g), evalIDs, seqLen, f.opts.Batch)
			fmt.Fprintf(&s, " %s %.4f", c.GranularityName(g), loss)
		}
		fmt.Fprintf(os.Stderr, "%s validation (nats/token):%s\n", what, s.String())
	}
	fmt.Fprintf(os.Stderr, "model %s: dim %d, %d layers, FFN widths %v\n", name, c.Dim, c.Layers, c.FFNWidths)
	if f.reorder {
		report("as loaded")
		calib := trainIDs[:min(len(trainIDs), f.calibration)]
		convert.Reorder(w, convert.Importance(w, calib, seqLen, f.opts.Batch, 0))
		report(fmt.Sprintf("reordered on %d tokens,", len(calib)))
	}
	command := "matedge finetune " + experiment.ShellJoin(f.args)
	if f.opts.Steps == 0 {
		return nil, writeModel(f.out, w, h.Tokenizer, corpus, seqLen, f.opts.Batch, validIDs, map[string]string{"kind": "reordered", "command": command})
	}
	opts := f.opts
	opts.Config, opts.SeqLen = c, seqLen
	if f.lossWeights != "" {
		if opts.LossWeights, err = parseFloats(f.lossWeights, c.Granularities()); err != nil {
			return nil, fmt.Errorf("-loss-weights: %w", err)
		}
	}
	tr, err := train.FineTune(opts, w, h.Tokenizer, trainIDs, validIDs)
	if err != nil {
		return nil, err
	}
	tr.Meta = map[string]string{"command": command}
	return tr, nil
}
