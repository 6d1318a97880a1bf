package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

// heldOut is how many training images validate a vision run; the test set
// is kept for the final results.
const heldOut = 5000

// loadVisionData reads an image set and splits off the validation images.
func loadVisionData(name, cache string) (trainSet, valid, test *train.Images, err error) {
	all, test, err := train.LoadImages(name, cache)
	if err != nil {
		return nil, nil, nil, err
	}
	trainSet, valid, err = train.HoldOut(all, heldOut)
	return trainSet, valid, test, err
}

// trainVision trains a vision model (MatViT) on an image set and writes it.
func trainVision(args []string, r trainRun) error {
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
		if err := setSteps(tr, r, false); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "resuming %s at step %d of %d\n", r.ckpt, tr.Step, tr.Options.Steps)
	} else {
		im := trainSet.Image
		im.Patch = r.patch
		if r.patch <= 0 || im.Size%r.patch != 0 {
			return fmt.Errorf("-patch %d: must divide the image size %d", r.patch, im.Size)
		}
		cfg := model.Config{Vocab: len(trainSet.Classes), Dim: r.dim, Layers: r.layers, Heads: r.heads, FFNWidths: model.NestedWidthsOf(r.hidden, r.dim, r.granularities),
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
		"objective": o.ObjectiveName(),
		"kind":      "trained",
		"classes":   train.JoinClasses(trainSet.Classes),
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
// validation images, records them, and writes the model, saying so on
// stderr.
func writeVisionModel(out string, w *model.Weights, valid *train.Images, batch int, meta map[string]string) error {
	quality, n, err := train.WriteVisionModel(out, w, valid, batch, meta)
	for _, q := range quality {
		fmt.Fprintf(os.Stderr, "validation %-12s %9d params  %.4f nats/image  %.2f%% accuracy\n", q.Mix, q.NonEmbeddingParams, q.LossNatsPerToken, 100*q.Accuracy)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", out, n)
	return nil
}
