package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "route", summary: "fit token routers (per-token FFN width) and measure them against Mix'n'Match; writes ROUTING.md", run: runRoute})
}

func runRoute(args []string) error {
	fs := newFlags("route", "[flags]", `Fits a token router to every layer of a trained MatFormer (its weights frozen):
one XL pass over training text records each layer's FFN input and how far S, M
and L are from XL there; a linear regression per layer predicts that error from
the input, scaled by how much loss the layer gains at each width, and a token
runs the width that minimises predicted loss plus priced FLOPs. A budget (a
fraction of XL's FFN FLOPs) sets the price, through a table calibrated on more
training text. Then measures, on the same validation
tokens, the uniform granularities, the Mix'n'Match frontier and routing at
each budget, and writes OUT/ROUTING.md (and its summary into OUT/RESULTS.md),
OUT/results/routing.svg and
OUT/results/routing.json. With -write, saves the model with its routers (the
file generate -route and the module's route option run).

With -train-steps, also trains the routers by gradient from the fitted ones:
the language-model loss plus the price times the expected FFN FLOPs, each
layer's pick relaxed to a softmax over the same costs (temperature annealed;
straight-through unless -train-soft),
the price drawn per step across the measured budgets so that one router still
serves every budget; the trained routers get their own budget table and are
measured at the same budgets as a second series.`)
	modelPath := fs.String("model", "", "trained MatFormer (.matw); empty uses the embedded default model")
	data := fs.String("data", "austen", "corpus the model was trained on: austen, opticks, or a text file")
	cache := fs.String("cache", train.DefaultCache(), "where r-cran-janeaustenr is downloaded for -data austen")
	fitTokens := fs.Int("fit-tokens", 32768, "training tokens the routers are fitted on")
	calTokens := fs.Int("cal-tokens", 16384, "training tokens (after those) the budget table is calibrated on")
	evalTokens := fs.Int("eval-tokens", 8192, "validation tokens every network is measured on")
	screenTokens := fs.Int("screen-tokens", 1024, "validation tokens every Mix'n'Match mix is screened on")
	budgets := fs.String("budgets", "0.3,0.4,0.5,0.55,0.6,0.7,0.8,0.9", "comma list of budgets (fractions of XL's FFN FLOPs) to measure")
	wide := fs.Float64("wide-budget", 0.6, "budget (one of -budgets) whose per-token widths are tabulated")
	ridge := fs.Float64("ridge", 1e-3, "ridge penalty of the router regression, per record")
	exponent := fs.Float64("exponent", 2, "p in loss gained ∝ err^p, how a layer's sensitivity is spread over its tokens")
	sensTokens := fs.Int("sensitivity-tokens", 4096, "calibration tokens each layer's sensitivity is measured on")
	rows := fs.Int("table-rows", 32, "candidate rows of the budget table")
	seq := fs.Int("seq", 256, "window length")
	batch := fs.Int("batch", 8, "windows per forward pass")
	outDir := fs.String("out", "weights", "directory for ROUTING.md and results/")
	write := fs.String("write", "", "write the model with its routers to this .matw")
	trainSteps := fs.Int("train-steps", 0, "also train routers by gradient (loss plus priced FLOPs, MatFormer frozen) from the fitted ones for this many steps, and measure them as a second series; 0: none")
	trainBatch := fs.Int("train-batch", 4, "windows per router training step")
	trainLR := fs.Float64("train-lr", 0.004, "Adam learning rate of router training")
	temp0 := fs.Float64("train-temp", 0.3, "softmax temperature (in units of the price) at the first training step")
	temp1 := fs.Float64("train-temp-end", 0.03, "softmax temperature at the last training step (geometric in between)")
	soft := fs.Bool("train-soft", false, "the training forward runs the softmax mixture of the widths (else straight-through: the hard pick, differentiated as the mixture)")
	trainSeed := fs.Uint64("train-seed", 1, "seed of the prices drawn during router training")
	keepTrained := fs.Bool("write-trained", false, "with -write and -train-steps, write the trained routers instead of the fitted ones")
	render := fs.String("render", "", "only render a saved study (OUT/results/routing.json) into -out's ROUTING.md, plot and RESULTS.md section; no measuring")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *render != "" {
		study, err := experiment.ReadRouteStudy(*render)
		if err != nil {
			return err
		}
		if err := study.Write(*outDir); err != nil {
			return err
		}
		fmt.Printf("wrote %s/ROUTING.md\n", *outDir)
		return nil
	}
	if err := checkFlags(intAtLeast("fit-tokens", *fitTokens, 1024), intAtLeast("cal-tokens", *calTokens, 256),
		intAtLeast("eval-tokens", *evalTokens, 1), intAtLeast("screen-tokens", *screenTokens, 1),
		intAtLeast("table-rows", *rows, 2), intAtLeast("seq", *seq, 1), intAtLeast("batch", *batch, 1),
		intAtLeast("sensitivity-tokens", *sensTokens, 1), finiteAbove("exponent", *exponent, 0),
		finiteAtLeast("ridge", *ridge, 0), intAtLeast("train-steps", *trainSteps, 0), intAtLeast("train-batch", *trainBatch, 1),
		finiteAbove("train-lr", *trainLR, 0), finiteAbove("train-temp", *temp0, 0), finiteAbove("train-temp-end", *temp1, 0)); err != nil {
		return err
	}
	if *write != "" {
		if err := dirExists("write", *write); err != nil {
			return err
		}
	}
	var budgetList []float64
	for _, part := range strings.Split(*budgets, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || !(v > 0 && v <= 1) {
			return fmt.Errorf("-budgets %q: %q is not a fraction in (0, 1]", *budgets, part)
		}
		budgetList = append(budgetList, v)
	}
	w, h, name, err := host.LoadModel(*modelPath)
	if err != nil {
		return err
	}
	if *seq > w.Config.Context {
		return fmt.Errorf("-seq %d: longer than the model's context %d", *seq, w.Config.Context)
	}
	corpus, err := train.LoadCorpus(*data, *cache)
	if err != nil {
		return err
	}
	trainIDs, validIDs := experiment.RouteIDs(&h.Tokenizer, corpus, *fitTokens+*calTokens+1)
	setup := experiment.RouteSetup{Args: args, Model: name, Weights: w, Tokenizer: &h.Tokenizer, Corpus: corpus.Name,
		TrainIDs: trainIDs, ValidIDs: validIDs, SeqLen: *seq, Batch: *batch,
		FitTokens: *fitTokens, CalTokens: *calTokens, EvalTokens: *evalTokens, ScreenTokens: *screenTokens,
		Ridge: *ridge, Exponent: *exponent, SensitivityTokens: *sensTokens, TableRows: *rows, Budgets: budgetList, WideBudget: *wide,
		Train: experiment.RouteTrainSetup{Steps: *trainSteps, Batch: *trainBatch, LR: *trainLR, Temp: [2]float64{*temp0, *temp1},
			Straight: !*soft, Seed: *trainSeed, Keep: *keepTrained}}
	study, routed, err := experiment.Route(setup, func(s string) { fmt.Fprintln(os.Stderr, s) })
	if err != nil {
		return err
	}
	if err := study.Write(*outDir); err != nil {
		return err
	}
	fmt.Printf("wrote %s/ROUTING.md\n", *outDir)
	if *write == "" {
		return nil
	}
	meta := map[string]string{}
	for k, v := range h.Meta {
		meta[k] = v
	}
	meta["router"] = experiment.ShellJoin(append([]string{"matedge", "route"}, args...))
	n, err := weights.WriteFile(*write, routed, h.Tokenizer, meta)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (%d bytes): the model with its routers\n", *write, n)
	return nil
}
