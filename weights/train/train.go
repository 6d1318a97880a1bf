// Package train trains MatFormer networks on text: the corpora (Jane Austen
// from Debian's r-cran-janeaustenr, Newton's Opticks from the Go tree, any
// file), batches drawn by a seeded generator, the loop around model's
// backward pass and AdamW, validation, and checkpoints that resume to the
// bit-identical result of an uninterrupted run.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/matedge/matedge/model"
)

// Options describe a training run. Everything that changes the result is
// here, so a checkpoint that stores Options can resume the same run.
type Options struct {
	Config      model.Config `msgpack:"config" json:"config"`
	LossWeights []float32    `msgpack:"loss_weights" json:"loss_weights"` // per granularity; nil means 1 each (MatFormer's joint loss)
	Batch       int          `msgpack:"batch" json:"batch"`               // sequences per step
	SeqLen      int          `msgpack:"seq_len" json:"seq_len"`           // tokens per sequence, ≤ Config.Context
	Steps       int          `msgpack:"steps" json:"steps"`
	Warmup      int          `msgpack:"warmup" json:"warmup"` // steps of linear learning-rate warmup
	LR          float32      `msgpack:"lr" json:"lr"`         // peak learning rate
	MinLR       float32      `msgpack:"min_lr" json:"min_lr"` // learning rate at the end of the cosine
	WeightDecay float32      `msgpack:"weight_decay" json:"weight_decay"`
	ClipNorm    float32      `msgpack:"clip_norm" json:"clip_norm"`     // global gradient norm limit; 0 disables
	Seed        uint64       `msgpack:"seed" json:"seed"`               // initial weights and batches
	EvalEvery   int          `msgpack:"eval_every" json:"eval_every"`   // steps between validation passes; 0 only at the end
	EvalTokens  int          `msgpack:"eval_tokens" json:"eval_tokens"` // validation tokens per periodic pass; 0 means all
}

// Defaults fills unset options with the values the project trains with.
func (o *Options) Defaults() {
	if o.Batch == 0 {
		o.Batch = 4
	}
	if o.SeqLen == 0 {
		o.SeqLen = o.Config.Context
	}
	if o.Warmup == 0 {
		o.Warmup = max(o.Steps/20, 1)
	}
	if o.LR == 0 {
		o.LR = 3e-3
	}
	if o.MinLR == 0 {
		o.MinLR = o.LR / 10
	}
	if o.WeightDecay == 0 {
		o.WeightDecay = 0.1
	}
	if o.ClipNorm == 0 {
		o.ClipNorm = 1
	}
}

// Objective is the loss one step minimises: every uniform granularity of
// the config with its weight.
func (o Options) Objective() model.Objective {
	return model.MatFormerObjective(o.Config, o.LossWeights)
}

// Progress is what a Trainer reports after each step.
type Progress struct {
	Step, Steps  int           // steps done, steps in the run
	Loss         []float64     // training cross-entropy per granularity on this step's batch, nats/token
	LR           float32       // learning rate used
	GradNorm     float64       // before clipping
	TokensPerSec float64       // since Run started
	ETA          time.Duration // to the end of the run at that rate
	Validation   []float64     // validation loss per granularity when it was measured on this step, else nil
	Accuracy     []float64     // a vision model's validation accuracy per granularity, with Validation
}

// Point is one validation measurement, kept in the checkpoint.
type Point struct {
	Step       int       `msgpack:"step" json:"step"`
	Train      []float64 `msgpack:"train" json:"train"`                           // training loss of the step's batch, per granularity
	Validation []float64 `msgpack:"validation" json:"validation"`                 // per granularity
	Accuracy   []float64 `msgpack:"accuracy,omitempty" json:"accuracy,omitempty"` // a vision model's, per granularity
}

// Trainer runs Options on a tokenized corpus.
type Trainer struct {
	Options   Options
	Weights   *model.Weights
	Tokenizer model.Tokenizer
	Optimizer *model.AdamW
	Step      int     // steps done
	History   []Point // validation measurements so far

	// Meta is free-form provenance (the command that started the run, say)
	// that travels with the checkpoint.
	Meta map[string]string

	train, validation []int   // token ids
	images            *Images // a vision model's training and validation images (vision.go)
	validImages       *Images
	pixels            []float32 // [Batch][C][S][S] of the current step
	batch             *model.Batch
	grad              *model.Weights
	tokens, targets   []int // [Batch][SeqLen] of the current step
}

// New starts a run from weights initialised with opts.Seed. trainIDs and
// validIDs are the tokenized corpus splits.
func New(opts Options, tok model.Tokenizer, trainIDs, validIDs []int) (*Trainer, error) {
	opts.Defaults()
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Config.IsVision() {
		return nil, fmt.Errorf("train: a vision model trains on images (NewVision), not text")
	}
	if tok.Size() > opts.Config.Vocab {
		return nil, fmt.Errorf("train: tokenizer has %d ids, vocab is %d", tok.Size(), opts.Config.Vocab)
	}
	if opts.SeqLen > opts.Config.Context || len(trainIDs) <= opts.SeqLen+1 || len(validIDs) < 2 {
		return nil, fmt.Errorf("train: sequence length %d: context %d, %d training and %d validation tokens",
			opts.SeqLen, opts.Config.Context, len(trainIDs), len(validIDs))
	}
	w := model.NewWeights(opts.Config)
	w.InitRandom(opts.Seed)
	opt := model.NewAdamW(len(w.Data))
	opt.WeightDecay = opts.WeightDecay
	n := opts.Batch * opts.SeqLen
	return &Trainer{
		Options: opts, Weights: w, Tokenizer: tok, Optimizer: opt,
		train: trainIDs, validation: validIDs,
		batch:  model.NewBatch(opts.Config, opts.Batch, opts.SeqLen),
		grad:   model.NewWeights(opts.Config),
		tokens: make([]int, n), targets: make([]int, n),
	}, nil
}

// sample fills tokens and targets for step: each sequence starts at a
// position drawn from a generator seeded by (seed, step). Batches depend on
// nothing else, so a resumed run draws the same batches as an uninterrupted one.
func (t *Trainer) sample(step int) {
	rng := model.NewRNG(t.Options.Seed ^ (uint64(step+1) * 0x9E3779B97F4A7C15))
	span := uint32(len(t.train) - t.Options.SeqLen - 1)
	for b := range t.Options.Batch {
		start := int(rng.Uint32() % span)
		copy(t.tokens[b*t.Options.SeqLen:], t.train[start:start+t.Options.SeqLen])
		copy(t.targets[b*t.Options.SeqLen:], t.train[start+1:start+1+t.Options.SeqLen])
	}
}

// ErrDiverged is returned when a step's loss or gradient is not finite. The
// step is not applied, so the weights are those of the step before.
var ErrDiverged = errors.New("train: diverged")

// TrainStep runs one optimisation step and returns its Progress (without
// the timing fields). A loss or gradient norm that is not finite leaves the
// weights as they were and returns ErrDiverged.
func (t *Trainer) TrainStep() (Progress, error) {
	o := t.Options
	var losses []float64
	if o.Config.IsVision() {
		t.sampleImages(t.Step)
		losses = t.batch.GradientImages(t.Weights, t.grad, o.Objective(), t.pixels, t.targets)
	} else {
		t.sample(t.Step)
		losses = t.batch.Gradient(t.Weights, t.grad, o.Objective(), t.tokens, t.targets)
	}
	norm := model.ClipGradNorm(t.grad.Data, o.ClipNorm)
	sched := model.Schedule{Peak: o.LR, Min: o.MinLR, Warmup: o.Warmup, Total: o.Steps}
	lr := sched.At(t.Step)
	p := Progress{Step: t.Step + 1, Steps: o.Steps, Loss: losses, LR: lr, GradNorm: norm}
	for _, l := range append([]float64{norm}, losses...) {
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return p, fmt.Errorf("%w at step %d: loss %v, gradient norm %v (lower -lr, or raise -warmup)", ErrDiverged, t.Step+1, losses, norm)
		}
	}
	t.Optimizer.Update(t.Weights, t.grad, lr)
	t.Step++
	return p, nil
}

// Run trains until Options.Steps, calling progress after every step and
// checkpoint (if not nil) every checkpointEvery steps and at the end. It
// validates every EvalEvery steps and after the last. A cancelled ctx stops
// it between steps with ctx's error; resume from the last checkpoint.
func (t *Trainer) Run(ctx context.Context, checkpointEvery int, checkpoint func(*Trainer) error, progress func(Progress)) error {
	o := t.Options
	start, startStep := time.Now(), t.Step
	for t.Step < o.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := t.TrainStep()
		if err != nil {
			return err
		}
		elapsed := time.Since(start).Seconds()
		tokens := float64((t.Step - startStep) * o.Batch * o.SeqLen) // patches, in a vision model
		p.TokensPerSec = tokens / elapsed
		p.ETA = time.Duration(float64(o.Steps-t.Step) / float64(t.Step-startStep) * elapsed * float64(time.Second))
		if t.Step == o.Steps || (o.EvalEvery > 0 && t.Step%o.EvalEvery == 0) {
			p.Validation = make([]float64, o.Config.Granularities())
			if o.Config.IsVision() {
				set := t.validImages
				if o.EvalTokens > 0 && t.Step < o.Steps && set.Len() > o.EvalTokens {
					set = set.Slice(0, o.EvalTokens)
				}
				p.Accuracy = make([]float64, len(p.Validation))
				for g := range p.Validation {
					p.Validation[g], p.Accuracy[g] = EvaluateImages(t.Weights, o.Config.Uniform(g), set, o.Batch)
				}
			} else {
				ids := t.validation
				if o.EvalTokens > 0 && t.Step < o.Steps && len(ids) > o.EvalTokens+1 {
					ids = ids[:o.EvalTokens+1]
				}
				for g := range p.Validation {
					p.Validation[g], _ = Evaluate(t.Weights, o.Config.Uniform(g), ids, o.SeqLen, o.Batch)
				}
			}
			t.History = append(t.History, Point{Step: t.Step, Train: p.Loss, Validation: p.Validation, Accuracy: p.Accuracy})
		}
		if progress != nil {
			progress(p)
		}
		if checkpoint != nil && (t.Step == o.Steps || (checkpointEvery > 0 && t.Step%checkpointEvery == 0)) {
			if err := checkpoint(t); err != nil {
				return err
			}
		}
	}
	return nil
}

// Evaluate returns the mean cross-entropy (nats/token) of w running mix on
// ids, predicting ids[1:] in windows of seqLen tokens that each start with
// an empty context, and the number of tokens predicted.
func Evaluate(w *model.Weights, mix model.Mix, ids []int, seqLen, batch int) (float64, int) {
	predicted := len(ids) - 1
	if predicted <= 0 {
		return math.NaN(), 0
	}
	windows := predicted / seqLen
	var sum float64
	full := model.NewBatch(w.Config, batch, seqLen)
	tokens, targets := make([]int, batch*seqLen), make([]int, batch*seqLen)
	for first := 0; first < windows; first += batch {
		n := min(batch, windows-first)
		for i := range batch {
			for j := range seqLen {
				if i < n {
					pos := (first+i)*seqLen + j
					tokens[i*seqLen+j], targets[i*seqLen+j] = ids[pos], ids[pos+1]
				} else {
					tokens[i*seqLen+j], targets[i*seqLen+j] = 0, -1
				}
			}
		}
		// Summed position by position, so that the total does not depend on
		// the batch size.
		full.Forward(w, mix, tokens, targets)
		for _, v := range full.NLL()[:n*seqLen] {
			sum += v
		}
	}
	if rest := predicted - windows*seqLen; rest > 0 {
		tail := model.NewBatch(w.Config, 1, rest)
		pos := windows * seqLen
		tail.Forward(w, mix, ids[pos:pos+rest], ids[pos+1:pos+1+rest])
		for _, v := range tail.NLL() {
			sum += v
		}
	}
	return sum / float64(predicted), predicted
}

// BitsPerByte converts a loss in nats per token over tokens tokens of a text
// of size bytes into bits per byte, a measure that does not depend on the
// tokenizer.
func BitsPerByte(nats float64, tokens, bytes int) float64 {
	return nats * float64(tokens) / (float64(bytes) * math.Ln2)
}
