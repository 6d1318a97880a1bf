package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

// visionRun is what `matedge train -data fashion-mnist` was asked for.
type visionRun struct {
	data, cache                       string
	patch, dim, layers, heads, hidden int
	granularities                     int
	baseline, lossWeights, out, ckpt  string
	ckptEvery, steps                  int
	resume, stepsSet                  bool
	opts                              train.Options // run options; Config is filled here
}

// heldOut is how many training images validate a vision run; the test set
// is kept for the final results.
const heldOut = 5000

// loadVisionData reads an image set and splits off the validation images.
func loadVisionData(name, cache string) (trainSet, valid, test *train.Images, err error) {
	all, test, err := train.LoadImages(name, cache)
	if err != nil {
		return nil, nil, nil, err
	}
	if all.Len() <= heldOut {
		return nil, nil, nil, fmt.Errorf("%s: %d training images, need more than the %d held out", name, all.Len(), heldOut)
	}
	cut := all.Len() - heldOut
	return all.Slice(0, cut), all.Slice(cut, all.Len()), test, nil
}

func trainVision(args []string, r visionRun) error {
	trainSet, valid, _, err := loadVisionData(r.data, r.cache)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "images %s: %d training + %d validation, %d×%d, sha256 %s\n",
		r.data, trainSet.Len(), valid.Len(), trainSet.Image.Size, trainSet.Image.Size, trainSet.SHA256)
	var tr *train.Trainer
	if r.resume {
		if tr, err = train.ResumeVision(r.ckpt, trainSet, valid); err != nil {
			return err
		}
		if r.stepsSet && r.steps != tr.Options.Steps {
			if r.steps <= tr.Step {
				return fmt.Errorf("-steps %d: the checkpoint is already at step %d", r.steps, tr.Step)
			}
			tr.Options.Steps = r.steps
		}
		fmt.Fprintf(os.Stderr, "resuming %s at step %d of %d\n", r.ckpt, tr.Step, tr.Options.Steps)
	} else {
		im := trainSet.Image
		im.Patch = r.patch
		if r.patch <= 0 || im.Size%r.patch != 0 {
			return fmt.Errorf("-patch %d: must divide the image size %d", r.patch, im.Size)
		}
		cfg := model.Config{Vocab: len(trainSet.Classes), Dim: r.dim, Layers: r.layers, Heads: r.heads, FFNWidths: ffnWidths(r.hidden, r.dim, r.granularities),
			Context: im.Patches(), RopeTheta: 10000, NormEps: 1e-5, Image: &im}
		if err := cfg.Validate(); err != nil {
			return err
		}
		opts, err := withObjective(r.opts, cfg, r.lossWeights, r.baseline)
		if err != nil {
			return err
		}
		if tr, err = train.NewVision(opts, trainSet, valid); err != nil {
			return err
		}
		tr.Meta = map[string]string{"command": "matedge train " + experiment.ShellJoin(args)}
	}
	o := tr.Options
	fmt.Fprintf(os.Stderr, "model: MatViT, %d×%d patches of %d pixels, dim %d, %d layers, %d heads, FFN widths %v, %d classes; %d params in all\n",
		o.Config.Image.Size/o.Config.Image.Patch, o.Config.Image.Size/o.Config.Image.Patch, o.Config.Image.Patch,
		o.Config.Dim, o.Config.Layers, o.Config.Heads, o.Config.FFNWidths, o.Config.Vocab, len(tr.Weights.Data))
	fmt.Fprintf(os.Stderr, "run: %d steps of %d images, lr %g→%g (warmup %d), %.3g FLOPs per step, %s kernels\n",
		o.Steps, o.Batch, o.LR, o.MinLR, o.Warmup, o.Objective().FLOPs(o.Config, o.Batch, o.SeqLen), model.ActiveKernels().Name)
	if err := runTrainer(tr, r.ckpt, r.ckptEvery); err != nil {
		return err
	}
	meta := map[string]string{
		"command":   "matedge train " + experiment.ShellJoin(args),
		"seed":      strconv.FormatUint(o.Seed, 10),
		"steps":     strconv.Itoa(o.Steps),
		"objective": objectiveName(o),
		"kind":      "trained",
		"classes":   joinClasses(trainSet.Classes),
		"images":    r.data, "images_sha256": trainSet.SHA256,
	}
	if r.resume {
		if started := tr.Meta["command"]; started != "" {
			meta["command"] = started + "; resumed with: " + meta["command"]
		}
	}
	return writeVisionModel(r.out, tr.Weights, valid, o.Batch, meta)
}

// writeVisionModel measures each preset mix's loss and accuracy on the
// validation images, records them, and writes the model.
func writeVisionModel(out string, w *model.Weights, valid *train.Images, batch int, meta map[string]string) error {
	var quality []weights.Quality
	for _, mix := range w.Config.PresetMixes() {
		loss, acc := train.EvaluateImages(w, mix, valid, batch)
		q := weights.Quality{Mix: w.Config.MixSpec(mix), NonEmbeddingParams: w.Config.NonEmbeddingParams(mix),
			LossNatsPerToken: loss, Tokens: valid.Len(), Accuracy: acc}
		quality = append(quality, q)
		fmt.Fprintf(os.Stderr, "validation %-12s %9d params  %.4f nats/image  %.2f%% accuracy\n", q.Mix, q.NonEmbeddingParams, loss, 100*acc)
	}
	weights.SetQuality(meta, quality)
	var buf bytes.Buffer
	if err := weights.Write(&buf, w, model.Tokenizer{}, meta); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", out, buf.Len())
	return nil
}

func joinClasses(classes []string) string {
	var b bytes.Buffer
	for i, c := range classes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c)
	}
	return b.String()
}
