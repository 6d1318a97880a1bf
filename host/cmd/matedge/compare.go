package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "compare", summary: "reproduce the MatFormer vs baseline comparison; writes RESULTS.md and SVG plots", run: runCompare})
}

func runCompare(args []string) error {
	fs := newFlags("compare", "[flags]", `Trains one MatFormer (joint loss over S, M, L, XL) and four baselines (a
standalone model per width) with the same data, steps, batches and seed, then
measures: validation loss of each, Mix'n'Match models against the line through
the trained points, consistency (greedy next-token agreement with XL), training
FLOPs, and samples. Writes OUT/RESULTS.md, OUT/results/*.svg and every
measurement to OUT/results/compare.json (-render redraws from it). With
-default, the quality table of a trained full-size model is reported too.`)
	data := fs.String("data", "opticks", "corpus: austen, opticks, or a text file")
	cache := fs.String("cache", train.DefaultCache(), "where r-cran-janeaustenr is downloaded for -data austen")
	vocab := fs.Int("vocab", 512, "tokenizer size")
	dim := fs.Int("dim", 64, "model width")
	layers := fs.Int("layers", 4, "transformer blocks")
	heads := fs.Int("heads", 4, "attention heads")
	ctxLen := fs.Int("context", 64, "context = sequence length")
	batch := fs.Int("batch", 8, "sequences per step")
	steps := fs.Int("steps", 300, "steps of every run")
	lr := fs.Float64("lr", 3e-3, "peak learning rate")
	lossWeights := fs.String("loss-weights", "", "comma list of MatFormer's per-granularity loss weights, S to XL (default 1 each)")
	ablate := fs.String("ablate-weights", "", "space-separated loss weightings (each a comma list, S to XL) to train extra MatFormers with and compare")
	seed := fs.Uint64("seed", 1, "seed of weights, batches and the Mix'n'Match sample")
	mixCount := fs.Int("mixes", 14, "Mix'n'Match models to measure")
	prompt := fs.String("prompt", "The Rays of Light", "prompt of the samples")
	defaultPath := fs.String("default", "", "a trained full-size MatFormer .matw whose quality table to include")
	fullBaselines := fs.String("baselines", "", "with -default: comma list of full-size baseline .matw files, S to XL (empty entries for missing ones)")
	fullTokens := fs.Int("consistency-tokens", 16384, "with -baselines: validation tokens for full-scale consistency")
	note := fs.String("note", "", "with -default: a note on how the full-size models were trained, quoted as given")
	outDir := fs.String("out", "runs/compare", "directory for RESULTS.md and results/ (the committed report is weights/: pass -out weights to replace it)")
	render := fs.String("render", "", "only rewrite RESULTS.md and the plots from this compare.json (no training)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkFlags(intAtLeast("steps", *steps, 1), intAtLeast("batch", *batch, 1), intAtLeast("context", *ctxLen, 2),
		intAtLeast("vocab", *vocab, 256), intAtLeast("mixes", *mixCount, 0), intAtLeast("consistency-tokens", *fullTokens, 1),
		finiteAbove("lr", *lr, 0)); err != nil {
		return err
	}
	full := &experiment.FullScale{DefaultPath: *defaultPath, Cache: *cache, Tokens: *fullTokens, Note: *note, Args: args}
	if *fullBaselines != "" {
		full.Baselines = strings.Split(*fullBaselines, ",")
	}
	if *render != "" {
		r, err := experiment.LoadComparison(*render)
		if err != nil {
			return err
		}
		return wrote("compare", *outDir, "RESULTS.md", r.Write(*outDir, full))
	}
	t, err := train.LoadTokenized(*data, *cache, *vocab)
	if err != nil {
		return err
	}
	cfg := model.Config{Vocab: *vocab, Dim: *dim, Layers: *layers, Heads: *heads, FFNWidths: model.NestedWidths(4 * *dim),
		Context: *ctxLen, RopeTheta: 10000, NormEps: 1e-5}
	setup := experiment.CompareSetup{Args: args, Corpus: t.Corpus, Tokenizer: t.Tokenizer,
		TrainIDs: t.TrainIDs, ValidIDs: t.ValidIDs,
		Base:  train.Options{Config: cfg, Batch: *batch, SeqLen: *ctxLen, Steps: *steps, LR: float32(*lr), Seed: *seed},
		Mixes: *mixCount, Prompt: *prompt}
	if *lossWeights != "" {
		if setup.MatFormerLossWeights, err = parseFloats(*lossWeights, len(cfg.FFNWidths)); err != nil {
			return fmt.Errorf("-loss-weights: %w", err)
		}
	}
	for _, spec := range strings.Fields(*ablate) {
		lw, err := parseFloats(spec, len(cfg.FFNWidths))
		if err != nil {
			return fmt.Errorf("-ablate-weights %q: %w", spec, err)
		}
		setup.Ablations = append(setup.Ablations, lw)
	}
	r, err := experiment.Compare(setup, trainWithProgress(t.Tokenizer, t.TrainIDs, t.ValidIDs))
	if err != nil {
		return err
	}
	if err := r.Save(*outDir); err != nil {
		return err
	}
	return wrote("compare", *outDir, "RESULTS.md", r.Write(*outDir, full))
}

// trainWithProgress is an experiment.TrainFunc that shows each run's
// progress bar on stderr.
func trainWithProgress(tok model.Tokenizer, trainIDs, validIDs []int) experiment.TrainFunc {
	return func(name string, opts train.Options) (*train.Trainer, error) {
		tr, err := train.New(opts, tok, trainIDs, validIDs)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "training %s\n", name)
		bar := newProgressBar(opts.Config)
		err = tr.Run(context.Background(), 0, nil, bar.update)
		bar.finish()
		return tr, err
	}
}
