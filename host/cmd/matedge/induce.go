package main

import (
	"fmt"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "induce", summary: "the induced-nesting experiment: dense model → safetensors → import → reorder → fine-tune, vs native MatFormer; writes INDUCE.md", run: runInduce})
}

func runInduce(args []string) error {
	fs := newFlags("induce", "[flags]", `Trains a native MatFormer and a dense Baseline-XL (largest width, XL loss
only) with the same data, steps, batches and seed; exports the baseline as a
Llama safetensors checkpoint and imports it back as a nested model; then
measures the validation loss of every granularity by naive slicing, after
reordering FFN neurons by importance, and along a fine-tune with the joint
loss (a point every -eval-every steps), against the native MatFormer.
Writes OUT/INDUCE.md, OUT/results/induce.svg and OUT/results/induce.json
(-render redraws from it).`)
	data := fs.String("data", "opticks", "corpus: austen, opticks, or a text file")
	cache := fs.String("cache", train.DefaultCache(), "where r-cran-janeaustenr is downloaded for -data austen")
	vocab := fs.Int("vocab", 512, "tokenizer size")
	dim := fs.Int("dim", 64, "model width")
	layers := fs.Int("layers", 4, "transformer blocks")
	heads := fs.Int("heads", 4, "attention heads")
	ctxLen := fs.Int("context", 64, "context = sequence length")
	batch := fs.Int("batch", 8, "sequences per step")
	steps := fs.Int("steps", 300, "pretraining steps of both runs")
	lr := fs.Float64("lr", 3e-3, "peak learning rate of pretraining")
	seed := fs.Uint64("seed", 1, "seed of weights and batches")
	lossWeights := fs.String("loss-weights", "", "native MatFormer's per-granularity loss weights, S to XL (default 1 each)")
	ftSteps := fs.Int("finetune-steps", 30, "fine-tuning steps")
	ftLR := fs.Float64("finetune-lr", 1e-3, "peak learning rate of the fine-tune")
	ftWarmup := fs.Int("finetune-warmup", 0, "fine-tune warmup steps; 0 means steps/20")
	ftWeights := fs.String("finetune-loss-weights", "", "fine-tune's per-granularity loss weights, S to XL (default: -loss-weights)")
	evalEvery := fs.Int("eval-every", 5, "fine-tune steps between the curve's points")
	calibration := fs.Int("calibration-tokens", 65536, "training tokens the importance scores are measured on")
	outDir := fs.String("out", "weights", "directory for INDUCE.md and results/")
	render := fs.String("render", "", "only rewrite INDUCE.md and the plot from this induce.json (no training)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if *render != "" {
		r, err := experiment.LoadInduction(*render)
		if err != nil {
			return err
		}
		return r.Write(*outDir)
	}
	if err := checkFlags(intAtLeast("steps", *steps, 1), intAtLeast("batch", *batch, 1), intAtLeast("context", *ctxLen, 2),
		intAtLeast("vocab", *vocab, 256), intAtLeast("finetune-steps", *ftSteps, 1), intAtLeast("finetune-warmup", *ftWarmup, 0),
		intAtLeast("eval-every", *evalEvery, 1), intAtLeast("calibration-tokens", *calibration, 1),
		finiteAbove("lr", *lr, 0), finiteAbove("finetune-lr", *ftLR, 0)); err != nil {
		return err
	}
	t, err := train.LoadTokenized(*data, *cache, *vocab)
	if err != nil {
		return err
	}
	cfg := model.Config{Vocab: *vocab, Dim: *dim, Layers: *layers, Heads: *heads, FFNWidths: model.NestedWidths(4 * *dim),
		Context: *ctxLen, RopeTheta: 10000, NormEps: 1e-5}
	if err := cfg.Validate(); err != nil {
		return err
	}
	setup := experiment.InduceSetup{Args: args, Corpus: t.Corpus, Tokenizer: t.Tokenizer,
		TrainIDs: t.TrainIDs, ValidIDs: t.ValidIDs,
		Base:              train.Options{Config: cfg, Batch: *batch, SeqLen: *ctxLen, Steps: *steps, LR: float32(*lr), Seed: *seed},
		FineTune:          train.Options{Batch: *batch, SeqLen: *ctxLen, Steps: *ftSteps, LR: float32(*ftLR), Warmup: *ftWarmup, Seed: *seed + 1},
		EvalEvery:         *evalEvery,
		CalibrationTokens: *calibration,
	}
	if *lossWeights != "" {
		if setup.Base.LossWeights, err = parseFloats(*lossWeights, len(cfg.FFNWidths)); err != nil {
			return fmt.Errorf("-loss-weights: %w", err)
		}
	}
	setup.FineTune.LossWeights = setup.Base.LossWeights
	if *ftWeights != "" {
		if setup.FineTune.LossWeights, err = parseFloats(*ftWeights, len(cfg.FFNWidths)); err != nil {
			return fmt.Errorf("-finetune-loss-weights: %w", err)
		}
	}
	r, err := experiment.Induce(setup, trainWithProgress(t.Tokenizer, t.TrainIDs, t.ValidIDs))
	if err != nil {
		return err
	}
	if err := r.Save(*outDir); err != nil {
		return err
	}
	return r.Write(*outDir)
}
