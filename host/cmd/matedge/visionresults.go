package main

import (
	"fmt"
	"strings"

	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "vision-results", summary: "measure MatViT against its baselines (accuracy, Mix'n'Match, retrieval, consistency); writes VISION.md", run: runVisionResults})
}

func runVisionResults(args []string) error {
	fs := newFlags("vision-results", "[flags]", `Measures a trained MatViT (matedge train -data fashion-mnist) against
Baseline-S, M, L and XL (the same command with -baseline Z) on the
Fashion-MNIST test set: test accuracy of each granularity, Mix'n'Match
models between adjacent granularities, the 4×4 retrieval table (1-NN
accuracy of test images against an index of training images, index encoder
× query encoder) for both families, and agreement with XL.

Writes OUT/VISION.md, OUT/results/vision.{json,svg}, and the headline tables
into OUT/RESULTS.md's vision section (other sections are left alone).`)
	matvit := fs.String("matvit", "runs/vit/matvit.matw", "the MatViT weights")
	baselines := fs.String("baselines", "runs/vit/baseline-S.matw,runs/vit/baseline-M.matw,runs/vit/baseline-L.matw,runs/vit/baseline-XL.matw",
		"Baseline-S,M,L,XL weights, comma-separated (an empty entry: not trained)")
	data := fs.String("data", "fashion-mnist", "image set")
	cache := fs.String("cache", train.DefaultCache(), "where to download the image set if it is not installed")
	limit := fs.Int("index-limit", 0, "index only the first N training images; 0 means all")
	out := fs.String("out", "runs/vision", "directory for VISION.md and results/ (the committed report is weights/: pass -out weights)")
	render := fs.String("render", "", "only re-render the Markdown and plot from this vision.json (no measuring)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if err := checkFlags(intAtLeast("index-limit", *limit, 0)); err != nil {
		return err
	}
	if *render != "" {
		r, err := experiment.ReadVisionReport(*render)
		if err != nil {
			return err
		}
		return wrote("vision-results", *out, "VISION.md", r.Write(*out))
	}
	paths := strings.Split(*baselines, ",")
	if len(paths) != 4 {
		return fmt.Errorf("-baselines: %d paths, want 4 (S,M,L,XL; leave one empty if not trained)", len(paths))
	}
	trainSet, test, err := train.LoadImages(*data, *cache)
	if err != nil {
		return err
	}
	st := newStatus("vision-results", false)
	defer st.Stop()
	v := &experiment.Vision{MatViT: *matvit, Train: trainSet, Test: test, IndexLimit: *limit, Args: args,
		Progress: func(s string) { st.Stage("%s", s) }}
	copy(v.Baselines[:], paths)
	r, err := v.Run()
	if err != nil {
		return err
	}
	return wrote("vision-results", *out, "VISION.md", r.Write(*out))
}
