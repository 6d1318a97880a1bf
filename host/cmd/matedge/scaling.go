package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "scaling", summary: "train MatFormers and baselines at several sizes and fit loss(N) = a·N^−α + c; writes SCALING.md", run: runScaling})
}

func runScaling(args []string) error {
	fs := newFlags("scaling", "[flags]", `Trains, for each model width in -dims, one MatFormer (joint loss over S, M,
L, XL) and one Baseline-XL (a standalone model of XL's width), all with the
same data, tokenizer, steps, batches and seed; measures validation loss; fits
loss(N) = a·N^(−α) + c over the XL models (N = non-embedding parameters) for
MatFormer and for the baselines; and writes OUT/SCALING.md, the plot
OUT/results/scaling.svg and every measurement to OUT/results/scaling.json
(-render redraws from it).`)
	data := fs.String("data", "austen", "corpus: austen, opticks, or a text file")
	cache := fs.String("cache", train.DefaultCache(), "where r-cran-janeaustenr is downloaded for -data austen")
	vocab := fs.Int("vocab", 1024, "tokenizer size")
	dims := fs.String("dims", "32,48,64,80,96", "comma list of model widths, one size each (FFN XL = 4×dim)")
	layers := fs.Int("layers", 4, "transformer blocks")
	heads := fs.Int("heads", 4, "attention heads")
	ctxLen := fs.Int("context", 128, "context = sequence length")
	batch := fs.Int("batch", 8, "sequences per step")
	steps := fs.Int("steps", 600, "steps of every run")
	lossWeights := fs.String("loss-weights", "", "comma list of MatFormer's per-granularity loss weights, S to XL (default 1 each)")
	lr := fs.Float64("lr", 3e-3, "peak learning rate")
	seed := fs.Uint64("seed", 1, "seed of weights and batches")
	outDir := fs.String("out", "runs/scaling", "directory for SCALING.md and results/ (the committed report is weights/: pass -out weights to replace it)")
	render := fs.String("render", "", "only rewrite SCALING.md and the plot from this scaling.json (no training)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if *render != "" {
		s, err := experiment.LoadScaling(*render)
		if err != nil {
			return err
		}
		return wrote("scaling", *outDir, "SCALING.md", s.Write(*outDir))
	}
	var widths []int
	for _, f := range strings.Split(*dims, ",") {
		d, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || d <= 0 || d%*heads != 0 {
			return fmt.Errorf("-dims: %q is not a positive multiple of -heads %d", f, *heads)
		}
		widths = append(widths, d)
	}
	if len(widths) < 3 {
		return fmt.Errorf("-dims: a power law needs at least 3 sizes, got %d", len(widths))
	}
	if *steps <= 0 || *batch <= 0 || *ctxLen <= 0 || *lr <= 0 {
		return fmt.Errorf("-steps, -batch, -context and -lr must be positive")
	}
	t, err := train.LoadTokenized(*data, *cache, *vocab)
	if err != nil {
		return err
	}
	setup := experiment.ScalingSetup{Args: args, Corpus: t.Corpus, Tokenizer: t.Tokenizer,
		TrainIDs: t.TrainIDs, ValidIDs: t.ValidIDs, Dims: widths,
		Base: train.Options{Config: model.Config{Vocab: *vocab, Layers: *layers, Heads: *heads, Context: *ctxLen, RopeTheta: 10000, NormEps: 1e-5},
			Batch: *batch, SeqLen: *ctxLen, Steps: *steps, LR: float32(*lr), Seed: *seed}}
	if *lossWeights != "" {
		if setup.Base.LossWeights, err = parseFloats(*lossWeights, 4); err != nil {
			return fmt.Errorf("-loss-weights: %w", err)
		}
	}
	s, err := experiment.Scaling(setup, trainWithProgress(t.Tokenizer, t.TrainIDs, t.ValidIDs))
	if err != nil {
		return err
	}
	for _, z := range s.Sizes {
		fmt.Fprintf(os.Stderr, "dim %d: MatFormer-XL %.4f, Baseline-XL %.4f nats/token\n", z.Dim, z.MatLoss[len(z.MatLoss)-1], z.BaselineLoss)
	}
	if err := s.Save(*outDir); err != nil {
		return err
	}
	return wrote("scaling", *outDir, "SCALING.md", s.Write(*outDir))
}
