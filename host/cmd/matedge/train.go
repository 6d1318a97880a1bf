package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "train", summary: "train a nested MatFormer (or a baseline) on text", run: runTrain})
}

func runTrain(args []string) error {
	fs := newFlags("train", "[flags]", `Trains a MatFormer language model in pure Go on all cores and writes it as a
.matw file. Each step sums the cross-entropy of every nested granularity
(S, M, L, XL) on the same batch; -baseline Z instead trains a standalone model
whose FFN has only granularity Z's width, with the same steps and batches.

The tokenizer is a byte-level BPE trained on the training split. A checkpoint
is written every -checkpoint-every steps; -resume continues from it and ends
with the same weights as an uninterrupted run. Ctrl-C stops after the current
step and writes a checkpoint.

Data: austen (Jane Austen's six novels from Debian's r-cran-janeaustenr,
fetched with apt-get download into -cache when not installed), opticks
(Newton's Opticks from the Go installation), or a text file. The last 5% of
each document is held out for validation.

-data fashion-mnist trains a MatViT image classifier instead (Zalando's
Fashion-MNIST from Debian's dataset-fashion-mnist): images cut into -patch
pixel squares, bidirectional attention, mean pooling, 10 classes; -batch
counts images, -eval-tokens validation images, and the last 5,000 training
images are held out for validation (the test set is left for matedge
vision-results).`)
	data := fs.String("data", "austen", "corpus: austen, opticks, or a text file; fashion-mnist for a vision model")
	patch := fs.Int("patch", 4, "vision: side of an image patch in pixels (divides the image size)")
	cache := fs.String("cache", train.DefaultCache(), "where to download and extract r-cran-janeaustenr")
	vocab := fs.Int("vocab", 2048, "tokenizer size (256 bytes + merges)")
	dim := fs.Int("dim", 128, "model width (d_model)")
	layers := fs.Int("layers", 4, "transformer blocks")
	heads := fs.Int("heads", 4, "attention heads")
	hidden := fs.Int("hidden", 0, "XL FFN hidden width; 0 means 4×dim")
	contextLen := fs.Int("context", 256, "context length (tokens)")
	granularities := fs.Int("granularities", 4, "nested FFN widths: hidden/2^(G-1) … hidden")
	baseline := fs.String("baseline", "", "train a standalone model of one granularity's width (S, M, L, XL) instead of the nested one")
	lossWeights := fs.String("loss-weights", "", "comma list of per-granularity loss weights (default 1 each)")
	steps := fs.Int("steps", 1000, "optimizer steps")
	batch := fs.Int("batch", 4, "sequences per step")
	seq := fs.Int("seq", 0, "tokens per sequence; 0 means the context length")
	lr := fs.Float64("lr", 3e-3, "peak learning rate")
	minLR := fs.Float64("min-lr", 0, "final learning rate of the cosine schedule; 0 means lr/10")
	warmup := fs.Int("warmup", 0, "warmup steps; 0 means steps/20")
	clip := fs.Float64("clip", 1, "gradient norm limit")
	decay := fs.Float64("weight-decay", 0.1, "AdamW weight decay of matrices")
	seed := fs.Uint64("seed", 1, "seed of the initial weights and of the batches")
	evalEvery := fs.Int("eval-every", 100, "steps between validation passes")
	evalTokens := fs.Int("eval-tokens", 8192, "validation tokens per periodic pass (the final pass uses all)")
	out := fs.String("out", "model.matw", "weights file to write")
	ckpt := fs.String("checkpoint", "", "checkpoint file; empty means OUT.ckpt")
	ckptEvery := fs.Int("checkpoint-every", 50, "steps between checkpoints")
	kernels := fs.String("kernels", model.ActiveKernels().Name, "CPU kernel set: "+strings.Join(model.AvailableKernels(), ", ")+" (the fastest this build and CPU allow is the default; build with GOEXPERIMENT=simd for avx2)")
	resume := fs.Bool("resume", false, "continue the run in -checkpoint (model and run flags are taken from it; -steps, if given, changes its length)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if *ckpt == "" {
		*ckpt = *out + ".ckpt"
	}
	if err := model.UseKernels(*kernels); err != nil {
		return fmt.Errorf("-kernels: %w", err)
	}
	// Refuse what would fail, or train something useless, before any work.
	if err := checkFlags(
		intAtLeast("steps", *steps, 1), intAtLeast("batch", *batch, 1), intAtLeast("seq", *seq, 0),
		intAtLeast("warmup", *warmup, 0), intAtLeast("eval-every", *evalEvery, 0), intAtLeast("eval-tokens", *evalTokens, 0),
		intAtLeast("checkpoint-every", *ckptEvery, 0), intAtLeast("vocab", *vocab, 256), intAtLeast("granularities", *granularities, 1),
		finiteAbove("lr", *lr, 0), finiteAtLeast("min-lr", *minLR, 0), finiteAtLeast("clip", *clip, 0), finiteAtLeast("weight-decay", *decay, 0),
		dirExists("out", *out), dirExists("checkpoint", *ckpt),
	); err != nil {
		return err
	}

	r := trainRun{data: *data, cache: *cache, patch: *patch, vocab: *vocab, dim: *dim, layers: *layers, heads: *heads, hidden: *hidden,
		context: *contextLen, granularities: *granularities, baseline: *baseline, lossWeights: *lossWeights, out: *out, ckpt: *ckpt,
		ckptEvery: *ckptEvery, resume: *resume, steps: *steps, stepsSet: flagSet(fs, "steps"),
		opts: train.Options{Batch: *batch, SeqLen: *seq, Steps: *steps, Warmup: *warmup, LR: float32(*lr), MinLR: float32(*minLR),
			WeightDecay: float32(*decay), ClipNorm: float32(*clip), Seed: *seed, EvalEvery: *evalEvery, EvalTokens: *evalTokens}}
	if train.IsImageSet(*data) {
		r.opts.SeqLen = 0 // a vision model's sequence is its patches
		return trainVision(args, r)
	}
	return trainText(args, r)
}

// trainRun is what `matedge train` was asked for.
type trainRun struct {
	data, cache                                       string
	patch, vocab, dim, layers, heads, hidden, context int
	granularities                                     int
	baseline, lossWeights, out, ckpt                  string
	ckptEvery, steps                                  int
	resume, stepsSet                                  bool
	opts                                              train.Options // run options; Config is filled from the rest
}

// trainText trains a language model on a corpus and writes it.
func trainText(args []string, r trainRun) error {
	corpus, err := train.LoadCorpus(r.data, r.cache)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "corpus %s: %d documents, %d training + %d validation bytes, sha256 %s\n",
		corpus.Name, len(corpus.Documents), len(corpus.Train), len(corpus.Validation), corpus.SHA256)
	tokenize := func(tok model.Tokenizer) ([]int, []int) {
		enc := tok.NewEncoder()
		return enc.Encode(corpus.Train), enc.Encode(corpus.Validation)
	}
	tr, err := textTrainer(args, r, corpus, tokenize)
	if err != nil {
		return err
	}
	o := tr.Options
	fmt.Fprintf(os.Stderr, "model: dim %d, %d layers, %d heads, FFN widths %v, context %d, vocab %d; %d non-embedding params (largest), %d in all\n",
		o.Config.Dim, o.Config.Layers, o.Config.Heads, o.Config.FFNWidths, o.Config.Context, o.Config.Vocab,
		o.Config.NonEmbeddingParams(o.Config.Uniform(o.Config.Granularities()-1)), len(tr.Weights.Data))
	fmt.Fprintf(os.Stderr, "run: %d steps of %d×%d tokens, lr %g→%g (warmup %d), %.3g FLOPs per step, %s kernels\n",
		o.Steps, o.Batch, o.SeqLen, o.LR, o.MinLR, o.Warmup, o.Objective().FLOPs(o.Config, o.Batch, o.SeqLen), model.ActiveKernels().Name)

	if err := runTrainer(tr, r.ckpt, r.ckptEvery); err != nil {
		return err
	}

	meta := map[string]string{
		"command":   "matedge train " + experiment.ShellJoin(args),
		"seed":      strconv.FormatUint(o.Seed, 10),
		"steps":     strconv.Itoa(o.Steps),
		"seq_len":   strconv.Itoa(o.SeqLen),
		"objective": o.ObjectiveName(),
		"kind":      "trained",
	}
	if r.resume {
		meta["command"] = train.ResumedCommand(tr.Meta["command"], meta["command"])
	}
	_, validIDs := tokenize(tr.Tokenizer)
	return writeModel(r.out, tr.Weights, tr.Tokenizer, corpus, o.SeqLen, o.Batch, validIDs, meta)
}

// textTrainer resumes the run in r.ckpt, or starts one: a tokenizer trained
// on the corpus and a model of r's shape.
func textTrainer(args []string, r trainRun, corpus *train.Corpus, tokenize func(model.Tokenizer) ([]int, []int)) (*train.Trainer, error) {
	if r.resume {
		tr, err := train.Resume(r.ckpt, tokenize)
		if err != nil {
			return nil, err
		}
		if err := setSteps(tr, r, true); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "resuming %s at step %d of %d\n", r.ckpt, tr.Step, tr.Options.Steps)
		return tr, nil
	}
	cfg := model.Config{Vocab: r.vocab, Dim: r.dim, Layers: r.layers, Heads: r.heads, FFNWidths: model.NestedWidthsOf(r.hidden, r.dim, r.granularities),
		Context: r.context, RopeTheta: 10000, NormEps: 1e-5}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := withObjective(r.opts, cfg, r.lossWeights, r.baseline)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	tok := model.TrainBPE(corpus.Train, r.vocab)
	fmt.Fprintf(os.Stderr, "tokenizer: %d ids trained in %.1fs\n", tok.Size(), time.Since(start).Seconds())
	trainIDs, validIDs := tokenize(tok)
	tr, err := train.New(opts, tok, trainIDs, validIDs)
	if err != nil {
		return nil, err
	}
	tr.Meta = map[string]string{"command": "matedge train " + experiment.ShellJoin(args)}
	return tr, nil
}

// setSteps changes a resumed run's length to -steps when the command line
// set it, refusing one the checkpoint has passed; say tells the user.
func setSteps(tr *train.Trainer, r trainRun, say bool) error {
	if !r.stepsSet || r.steps == tr.Options.Steps {
		return nil
	}
	if r.steps <= tr.Step {
		return fmt.Errorf("-steps %d: the checkpoint is already at step %d", r.steps, tr.Step)
	}
	if say {
		fmt.Fprintf(os.Stderr, "changing the run's length from %d to %d steps (the cosine schedule follows from here on)\n", tr.Options.Steps, r.steps)
	}
	tr.Options.Steps = r.steps
	return nil
}

// withObjective sets opts's config and objective from -loss-weights and
// -baseline: the nested model with its per-granularity loss weights, or a
// standalone model of one granularity's width.
func withObjective(opts train.Options, cfg model.Config, lossWeights, baseline string) (train.Options, error) {
	opts.Config = cfg
	if lossWeights != "" {
		w, err := parseFloats(lossWeights, cfg.Granularities())
		if err != nil {
			return opts, fmt.Errorf("-loss-weights: %w", err)
		}
		opts.LossWeights = w
	}
	if baseline != "" {
		g, err := cfg.ParseMix(baseline)
		if err != nil {
			return opts, fmt.Errorf("-baseline: %w", err)
		}
		opts.Config = train.BaselineConfig(cfg, g[0])
		opts.LossWeights = nil
	}
	return opts, nil
}

// runTrainer runs tr to its last step with a progress bar and a checkpoint
// in ckpt every ckptEvery steps. Ctrl-C stops after the current step and
// saves a checkpoint; a diverging run stops with the last good one kept.
func runTrainer(tr *train.Trainer, ckpt string, ckptEvery int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bar := newProgressBar(tr.Options.Config)
	err := tr.Run(ctx, ckptEvery, func(t *train.Trainer) error { return t.Save(ckpt) }, bar.update)
	bar.finish()
	if errors.Is(err, context.Canceled) {
		if err := tr.Save(ckpt); err != nil {
			return err
		}
		return fmt.Errorf("interrupted at step %d; checkpoint in %s (continue with -resume)", tr.Step, ckpt)
	}
	if errors.Is(err, train.ErrDiverged) {
		return fmt.Errorf("%w; no model written, the last checkpoint is in %s", err, ckpt)
	}
	return err
}

// writeModel measures the quality table on the whole validation split (the
// corpus's, tokenized as validIDs), records it and the corpus in meta, and
// writes the model to out, saying so on stderr.
func writeModel(out string, w *model.Weights, tok model.Tokenizer, corpus *train.Corpus, seqLen, batch int, validIDs []int, meta map[string]string) error {
	quality, n, err := train.WriteModel(out, w, tok, corpus, seqLen, batch, validIDs, meta)
	for _, q := range quality {
		fmt.Fprintf(os.Stderr, "validation %-12s %9d params  %.4f nats/token  %.4f bits/byte\n", q.Mix, q.NonEmbeddingParams, q.LossNatsPerToken, q.BitsPerByte)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", out, n)
	return nil
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseFloats(s string, n int) ([]float32, error) {
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("%d values, want %d", len(parts), n)
	}
	out := make([]float32, n)
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return nil, err
		}
		out[i] = float32(v)
	}
	return out, nil
}

// progressBar renders training progress on stderr: a redrawn bar on a
// terminal, one line every few steps in a log file.
type progressBar struct {
	config   model.Config
	terminal bool
	last     time.Time
}

func newProgressBar(c model.Config) *progressBar {
	fi, err := os.Stderr.Stat()
	return &progressBar{config: c, terminal: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (p *progressBar) update(pr train.Progress) {
	var losses strings.Builder
	for g, l := range pr.Loss {
		fmt.Fprintf(&losses, " %s %.3f", p.config.GranularityName(g), l)
	}
	const width = 24
	done := width * pr.Step / pr.Steps
	bar := strings.Repeat("█", done) + strings.Repeat("·", width-done)
	rate := fmt.Sprintf("%.0f tok/s", pr.TokensPerSec)
	if im := p.config.Image; im != nil {
		rate = fmt.Sprintf("%.0f images/s", pr.TokensPerSec/float64(im.Patches()))
	}
	line := fmt.Sprintf("%s %d/%d loss%s | lr %.2g | %s | ETA %s",
		bar, pr.Step, pr.Steps, losses.String(), pr.LR, rate, pr.ETA.Round(time.Second))
	if p.terminal {
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	} else if time.Since(p.last) > 30*time.Second || pr.Step == pr.Steps || pr.Validation != nil {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), line)
		p.last = time.Now()
	}
	if pr.Validation != nil {
		var v strings.Builder
		for g, l := range pr.Validation {
			fmt.Fprintf(&v, " %s %.4f", p.config.GranularityName(g), l)
		}
		if p.terminal {
			fmt.Fprintln(os.Stderr)
		}
		unit := "nats/token"
		if p.config.IsVision() {
			unit = "nats/image"
			v.WriteString(" | accuracy")
			for g, a := range pr.Accuracy {
				fmt.Fprintf(&v, " %s %.2f%%", p.config.GranularityName(g), 100*a)
			}
		}
		fmt.Fprintf(os.Stderr, "step %d validation (%s):%s\n", pr.Step, unit, v.String())
	}
}

func (p *progressBar) finish() {
	if p.terminal {
		fmt.Fprintln(os.Stderr)
	}
}

// A flagCheck is nil or says what is wrong with one flag.
type flagCheck error

// checkFlags returns the first failed check.
func checkFlags(checks ...flagCheck) error {
	for _, c := range checks {
		if c != nil {
			return c
		}
	}
	return nil
}

func intAtLeast(name string, v, least int) flagCheck {
	if v < least {
		return fmt.Errorf("-%s %d: want at least %d", name, v, least)
	}
	return nil
}

func finiteAtLeast(name string, v, least float64) flagCheck {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < least {
		return fmt.Errorf("-%s %g: want a finite number ≥ %g", name, v, least)
	}
	return nil
}

func finiteAbove(name string, v, above float64) flagCheck {
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= above {
		return fmt.Errorf("-%s %g: want a finite number > %g", name, v, above)
	}
	return nil
}

// dirExists checks that the folder a file flag writes into is there.
func dirExists(name, path string) flagCheck {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("-%s %s: folder %s does not exist", name, path, dir)
	}
	return nil
}
