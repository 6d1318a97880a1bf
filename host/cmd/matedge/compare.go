package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "compare", summary: "reproduce the MatFormer vs baseline comparison; writes RESULTS.md and SVG plots", run: runCompare})
}

// run is one trained model of the comparison.
type run struct {
	name    string
	trainer *train.Trainer
	wall    time.Duration
	flops   float64 // training FLOPs of the whole run
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
	outDir := fs.String("out", "weights", "directory for RESULTS.md and results/")
	render := fs.String("render", "", "only rewrite RESULTS.md and the plots from this compare.json (no training)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	full := &fullScale{defaultPath: *defaultPath, cache: *cache, tokens: *fullTokens, note: *note, args: args}
	if *fullBaselines != "" {
		full.baselines = strings.Split(*fullBaselines, ",")
	}
	if *render != "" {
		return renderComparison(*render, *outDir, full)
	}
	corpus, err := train.LoadCorpus(*data, *cache)
	if err != nil {
		return err
	}
	tok := model.TrainBPE(corpus.Train, *vocab)
	enc := tok.NewEncoder()
	trainIDs, validIDs := enc.Encode(corpus.Train), enc.Encode(corpus.Validation)
	cfg := model.Config{Vocab: *vocab, Dim: *dim, Layers: *layers, Heads: *heads, FFNWidths: model.NestedWidths(4 * *dim),
		Context: *ctxLen, RopeTheta: 10000, NormEps: 1e-5}
	base := train.Options{Config: cfg, Batch: *batch, SeqLen: *ctxLen, Steps: *steps, LR: float32(*lr), Seed: *seed}
	matOpts := base
	if *lossWeights != "" {
		if matOpts.LossWeights, err = parseFloats(*lossWeights, len(cfg.FFNWidths)); err != nil {
			return fmt.Errorf("-loss-weights: %w", err)
		}
	}

	trainRun := func(name string, opts train.Options) (run, error) {
		tr, err := train.New(opts, tok, trainIDs, validIDs)
		if err != nil {
			return run{}, err
		}
		start := time.Now()
		bar := newProgressBar(opts.Config)
		fmt.Fprintf(os.Stderr, "training %s\n", name)
		if err := tr.Run(context.Background(), 0, nil, bar.update); err != nil {
			return run{}, err
		}
		bar.finish()
		return run{name: name, trainer: tr, wall: time.Since(start), flops: tr.Options.Objective().FLOPs(opts.Config, tr.Options.Batch, tr.Options.SeqLen) * float64(opts.Steps)}, nil
	}
	var ablations []train.Options
	for _, spec := range strings.Fields(*ablate) {
		o := base
		if o.LossWeights, err = parseFloats(spec, len(cfg.FFNWidths)); err != nil {
			return fmt.Errorf("-ablate-weights %q: %w", spec, err)
		}
		ablations = append(ablations, o)
	}
	matformer, err := trainRun("MatFormer", matOpts)
	if err != nil {
		return err
	}
	var baselines []run
	for g, width := range cfg.FFNWidths {
		opts := base
		opts.Config.FFNWidths = []int{width}
		r, err := trainRun("Baseline-"+cfg.GranularityName(g), opts)
		if err != nil {
			return err
		}
		baselines = append(baselines, r)
	}

	r := &comparison{Args: args, Date: time.Now().UTC().Format("2006-01-02"), Corpus: corpus.Name, CorpusSHA256: corpus.SHA256,
		TrainBytes: len(corpus.Train), ValidBytes: len(corpus.Validation), VocabSize: tok.Size(), Config: cfg,
		Options: matformer.trainer.Options, Prompt: *prompt}
	for _, x := range append([]run{matformer}, baselines...) {
		r.Runs = append(r.Runs, runCost{Name: x.name, FLOPs: x.flops, WallSeconds: x.wall.Seconds()})
	}
	r.measure(matformer.trainer.Weights, baselines, &tok, validIDs, *mixCount)
	for _, o := range ablations {
		x, err := trainRun(fmt.Sprintf("MatFormer, loss weights %v", o.LossWeights), o)
		if err != nil {
			return err
		}
		a := ablation{LossWeights: o.LossWeights}
		for g := range cfg.Granularities() {
			loss, _ := train.Evaluate(x.trainer.Weights, cfg.Uniform(g), validIDs, *ctxLen, *batch)
			a.Loss = append(a.Loss, loss)
		}
		r.Ablations = append(r.Ablations, a)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(*outDir, "results"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*outDir, "results", "compare.json"), js, 0o644); err != nil {
		return err
	}
	return r.write(*outDir, full)
}

// renderComparison rewrites RESULTS.md and the plots from a compare.json,
// with the default model's quality table as it is now.
func renderComparison(path, outDir string, full *fullScale) error {
	js, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r comparison
	if err := json.Unmarshal(js, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return r.write(outDir, full)
}

type mixPoint struct {
	Mix    model.Mix `json:"mix"`
	Params int       `json:"non_embedding_params"`
	Loss   float64   `json:"loss_nats_per_token"`
	Interp float64   `json:"line"` // on the line through the trained uniform points
}

type runCost struct {
	Name        string  `json:"name"`
	FLOPs       float64 `json:"flops"`
	WallSeconds float64 `json:"wall_seconds"`
}

// comparison is every measurement of a compare run: RESULTS.md and the plots
// are rendered from it, and it is saved as results/compare.json.
type comparison struct {
	Args         []string      `json:"args"`
	Date         string        `json:"date"`
	Corpus       string        `json:"corpus"`
	CorpusSHA256 string        `json:"corpus_sha256"`
	TrainBytes   int           `json:"train_bytes"`
	ValidBytes   int           `json:"validation_bytes"`
	VocabSize    int           `json:"vocab_size"`
	Tokens       int           `json:"validation_tokens"`
	Config       model.Config  `json:"config"`
	Options      train.Options `json:"options"`
	Runs         []runCost     `json:"runs"` // MatFormer, then Baseline-S…XL

	Params      []int      `json:"non_embedding_params"` // [G] of uniform granularity g
	MatLoss     []float64  `json:"matformer_loss"`       // [G] validation nats/token
	BaseLoss    []float64  `json:"baseline_loss"`
	MatBPB      []float64  `json:"matformer_bits_per_byte"`
	BaseBPB     []float64  `json:"baseline_bits_per_byte"`
	Mixes       []mixPoint `json:"mixes"`
	MatAgree    []float64  `json:"matformer_agreement"` // [G] greedy agreement with XL
	BaseAgree   []float64  `json:"baseline_agreement"`
	Prompt      string     `json:"prompt"`
	MatSamples  []string   `json:"matformer_samples"`
	BaseSamples []string   `json:"baseline_samples"`
	Ablations   []ablation `json:"ablations,omitempty"`
}

// ablation is a MatFormer trained like the main one but with other loss
// weights.
type ablation struct {
	LossWeights []float32 `json:"loss_weights"`
	Loss        []float64 `json:"loss"` // [G] validation nats/token
}

func (r *comparison) measure(mw *model.Weights, baselines []run, tok *model.Tokenizer, validIDs []int, mixCount int) {
	c, G := r.Config, r.Config.Granularities()
	seqLen, batch, seed := r.Options.SeqLen, r.Options.Batch, r.Options.Seed
	var matGreedy, baseGreedy [][]int
	for g := range G {
		r.Params = append(r.Params, c.NonEmbeddingParams(c.Uniform(g)))
		loss, n := train.Evaluate(mw, c.Uniform(g), validIDs, seqLen, batch)
		r.MatLoss, r.MatBPB, r.Tokens = append(r.MatLoss, loss), append(r.MatBPB, train.BitsPerByte(loss, n, r.ValidBytes)), n
		bw := baselines[g].trainer.Weights
		loss, n = train.Evaluate(bw, bw.Config.Uniform(0), validIDs, seqLen, batch)
		r.BaseLoss, r.BaseBPB = append(r.BaseLoss, loss), append(r.BaseBPB, train.BitsPerByte(loss, n, r.ValidBytes))
		matGreedy = append(matGreedy, train.Greedy(mw, c.Uniform(g), validIDs, seqLen))
		baseGreedy = append(baseGreedy, train.Greedy(bw, bw.Config.Uniform(0), validIDs, seqLen))
		r.MatSamples = append(r.MatSamples, train.Sample(mw, tok, c.Uniform(g), r.Prompt, 48, seed, 0.8))
		r.BaseSamples = append(r.BaseSamples, train.Sample(bw, tok, bw.Config.Uniform(0), r.Prompt, 48, seed, 0.8))
	}
	for g := range G {
		r.MatAgree = append(r.MatAgree, train.Agreement(matGreedy[g], matGreedy[G-1]))
		r.BaseAgree = append(r.BaseAgree, train.Agreement(baseGreedy[g], baseGreedy[G-1]))
	}
	for _, m := range mixSample(c, mixCount, seed) {
		loss, _ := train.Evaluate(mw, m, validIDs, seqLen, batch)
		p := c.NonEmbeddingParams(m)
		r.Mixes = append(r.Mixes, mixPoint{Mix: m, Params: p, Loss: loss, Interp: interpolate(r.Params, r.MatLoss, p)})
	}
}

// mixSample returns count non-uniform mixes: "grows with depth", "shrinks
// with depth", then distinct mixes drawn from a generator seeded by seed.
func mixSample(c model.Config, count int, seed uint64) []model.Mix {
	G := c.Granularities()
	grow, shrink := make(model.Mix, c.Layers), make(model.Mix, c.Layers)
	for l := range grow {
		grow[l] = l * G / c.Layers
		shrink[c.Layers-1-l] = grow[l]
	}
	mixes := []model.Mix{grow, shrink}
	seen := map[string]bool{fmt.Sprint(grow): true, fmt.Sprint(shrink): true}
	rng := model.NewRNG(seed)
	for tries := 0; len(mixes) < count && tries < 100*count; tries++ {
		m := make(model.Mix, c.Layers)
		uniform := true
		for l := range m {
			m[l] = int(rng.Uint32() % uint32(G))
			uniform = uniform && m[l] == m[0]
		}
		if !uniform && !seen[fmt.Sprint(m)] {
			seen[fmt.Sprint(m)] = true
			mixes = append(mixes, m)
		}
	}
	return mixes
}

// interpolate is the piecewise-linear line through (xs[i], ys[i]) (xs
// ascending) at x.
func interpolate(xs []int, ys []float64, x int) float64 {
	for i := 1; i < len(xs); i++ {
		if x <= xs[i] {
			t := float64(x-xs[i-1]) / float64(xs[i]-xs[i-1])
			return ys[i-1] + t*(ys[i]-ys[i-1])
		}
	}
	return ys[len(ys)-1]
}

func (r *comparison) write(dir string, full *fullScale) error {
	c, G := r.Config, r.Config.Granularities()
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
		return err
	}
	var mat, base, mixes, line, matAg, baseAg series
	mat = series{name: "MatFormer-Z", color: "#1f77b4", line: true}
	base = series{name: "Baseline-Z", color: "#d62728", line: true}
	for g := range G {
		mat.points = append(mat.points, [2]float64{float64(r.Params[g]), r.MatLoss[g]})
		base.points = append(base.points, [2]float64{float64(r.Params[g]), r.BaseLoss[g]})
	}
	line = series{name: "MatFormer S…XL", color: "#1f77b4", line: true, points: mat.points}
	mixes = series{name: "Mix'n'Match", color: "#ff7f0e"}
	for _, m := range r.Mixes {
		mixes.points = append(mixes.points, [2]float64{float64(m.Params), m.Loss})
	}
	matAg = series{name: "MatFormer-Z vs XL", color: "#1f77b4", line: true}
	baseAg = series{name: "Baseline-Z vs XL", color: "#d62728", line: true}
	for g := range G - 1 {
		matAg.points = append(matAg.points, [2]float64{float64(r.Params[g]), 100 * r.MatAgree[g]})
		baseAg.points = append(baseAg.points, [2]float64{float64(r.Params[g]), 100 * r.BaseAgree[g]})
	}
	plots := map[string]plot{
		"loss.svg":        {"Validation loss: MatFormer vs baselines", "non-embedding parameters", "nats/token", []series{mat, base}},
		"mixnmatch.svg":   {"Mix'n'Match vs the line through S, M, L, XL", "non-embedding parameters", "nats/token", []series{line, mixes}},
		"consistency.svg": {"Greedy next-token agreement with XL", "non-embedding parameters of Z", "% of validation tokens", []series{matAg, baseAg}},
	}
	for name, p := range plots {
		if err := os.WriteFile(filepath.Join(dir, "results", name), []byte(p.svg()), 0o644); err != nil {
			return err
		}
	}

	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# MatFormer in matedge: nested vs independently trained models\n\n")
	p("Generated by `matedge compare %s` — do not edit by hand; rerun it.\n", shellJoin(r.Args))
	p("Every number below was measured by that command on %s, %s.\n", r.Corpus, r.Date)
	if full != nil && full.defaultPath != "" {
		p("The full-scale section at the end was rendered by `matedge compare %s`.\n", shellJoin(full.args))
	}
	p("\n")
	p("## Setup (tiny scale)\n\n")
	p("* Corpus: %s (sha256 `%s`), %d training / %d validation bytes (validation = last ≥5%% of each document); %d-id BPE trained on the training split; %d validation tokens.\n",
		r.Corpus, r.CorpusSHA256, r.TrainBytes, r.ValidBytes, r.VocabSize, r.Tokens)
	p("* Model: dim %d, %d layers, %d heads, context %d, FFN widths %v (S, M, L, XL).\n", c.Dim, c.Layers, c.Heads, c.Context, c.FFNWidths)
	o := r.Options
	p("* Every run: %d steps of %d×%d tokens, AdamW (β 0.9/0.95, wd %.2g), lr %.2g → %.2g cosine after %d warmup steps, clip %.2g, seed %d. Same batches for all runs.\n",
		o.Steps, o.Batch, o.SeqLen, o.WeightDecay, o.LR, o.MinLR, o.Warmup, o.ClipNorm, o.Seed)
	weightsNote := "Σ_Z CE(Z)"
	if lw := r.Options.LossWeights; lw != nil {
		weightsNote = fmt.Sprintf("Σ_Z w_Z·CE(Z) with w = %v (S to XL)", lw)
	}
	p("* MatFormer: one model, loss = %s over the four uniform granularities each step. Baseline-Z: a standalone model whose FFN has only Z's width (config `ffn_widths: [h_Z]`).\n\n", weightsNote)

	p("## 1. Validation loss\n\n![loss](results/loss.svg)\n\n")
	p("| Z | non-emb. params | MatFormer nats/tok | Baseline nats/tok | Δ (Mat − Base) | MatFormer bits/byte | Baseline bits/byte | within 0.05 |\n|---|---:|---:|---:|---:|---:|---:|:-:|\n")
	met1 := 0
	for g := range G {
		d := r.MatLoss[g] - r.BaseLoss[g]
		ok := d <= 0.05
		if ok {
			met1++
		}
		p("| %s | %d | %.4f | %.4f | %+.4f | %.4f | %.4f | %s |\n", c.GranularityName(g), r.Params[g], r.MatLoss[g], r.BaseLoss[g], d, r.MatBPB[g], r.BaseBPB[g], yesNo(ok))
	}
	p("\nTarget: each MatFormer-Z within 0.05 nats/token of Baseline-Z (or better): met for %d of %d.\n\n", met1, G)

	p("## 2. Mix'n'Match\n\n![mixnmatch](results/mixnmatch.svg)\n\n")
	p("The line is the piecewise-linear interpolation through the four trained (uniform) MatFormer points.\n\n")
	p("| mix (per layer) | non-emb. params | nats/tok | on the line | Δ | within 0.03 |\n|---|---:|---:|---:|---:|:-:|\n")
	met2 := 0
	sorted := slices.Clone(r.Mixes)
	slices.SortStableFunc(sorted, func(a, b mixPoint) int { return a.Params - b.Params })
	for _, m := range sorted {
		d := m.Loss - m.Interp
		ok := math.Abs(d) <= 0.03 || d < 0
		if ok {
			met2++
		}
		p("| %s | %d | %.4f | %.4f | %+.4f | %s |\n", strings.Join(c.MixNames(m.Mix), ","), m.Params, m.Loss, m.Interp, d, yesNo(ok))
	}
	p("\nTarget: Mix'n'Match points within 0.03 nats of the line (or below it): met for %d of %d. The first two rows measured are \"grows with depth\" (%s) and \"shrinks with depth\" (%s).\n\n",
		met2, len(r.Mixes), strings.Join(c.MixNames(r.Mixes[0].Mix), ","), strings.Join(c.MixNames(r.Mixes[1].Mix), ","))

	p("## 3. Consistency with XL\n\n![consistency](results/consistency.svg)\n\n")
	p("Share of validation positions where Z's greedy next token equals XL's (MatFormer-Z vs MatFormer-XL; Baseline-Z vs Baseline-XL).\n\n")
	p("| Z | MatFormer | Baseline | higher |\n|---|---:|---:|:-:|\n")
	met3 := 0
	for g := range G - 1 {
		ok := r.MatAgree[g] > r.BaseAgree[g]
		if ok {
			met3++
		}
		p("| %s | %.1f%% | %.1f%% | %s |\n", c.GranularityName(g), 100*r.MatAgree[g], 100*r.BaseAgree[g], map[bool]string{true: "MatFormer", false: "Baseline"}[ok])
	}
	p("\nTarget: MatFormer more consistent than the baselines: met for %d of %d.\n\n", met3, G-1)

	if len(r.Ablations) > 0 {
		p("### Loss weights\n\nThe same MatFormer trained with other per-granularity loss weights (same data, steps, batches and seed); validation nats/token, and XL's distance to Baseline-XL.\n\n")
		p("| loss weights (S, M, L, XL) | S | M | L | XL | XL − Baseline-XL |\n|---|---:|---:|---:|---:|---:|\n")
		main := ablation{LossWeights: r.Options.LossWeights, Loss: r.MatLoss}
		if main.LossWeights == nil {
			main.LossWeights = []float32{1, 1, 1, 1}
		}
		for i, a := range append([]ablation{main}, r.Ablations...) {
			label := fmt.Sprint(a.LossWeights)
			if i == 0 {
				label += " (the run above)"
			}
			p("| %s |", label)
			for _, l := range a.Loss {
				p(" %.4f |", l)
			}
			p(" %+.4f |\n", a.Loss[G-1]-r.BaseLoss[G-1])
		}
		p("\n")
	}

	p("## 4. Training cost\n\n")
	var baseFLOPs, baseWall float64
	p("| run | training FLOPs | wall time (2 shared cores) |\n|---|---:|---:|\n")
	for i, x := range r.Runs {
		if i > 0 {
			baseFLOPs += x.FLOPs
			baseWall += x.WallSeconds
		}
		p("| %s | %.3g | %.0f s |\n", x.Name, x.FLOPs, x.WallSeconds)
	}
	p("| four baselines together | %.3g | %.0f s |\n\n", baseFLOPs, baseWall)
	p("The joint run costs %.2f× the four baselines together (FLOPs: 3× the forward matmuls plus attention, as `model.TrainingFLOPs` counts them), and yields all four sizes plus every Mix'n'Match model.\n\n", r.Runs[0].FLOPs/baseFLOPs)

	p("## 5. Samples\n\nPrompt %q, 48 tokens, temperature 0.8, top-k 40, seed %d, same for every model.\n\n", r.Prompt, o.Seed)
	for g := range G {
		p("* **MatFormer-%s**: %s\n", c.GranularityName(g), mdQuote(r.MatSamples[g]))
		p("* **Baseline-%s**: %s\n", c.GranularityName(g), mdQuote(r.BaseSamples[g]))
	}
	p("\n")

	if full != nil && full.defaultPath != "" {
		if err := full.write(&b); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "RESULTS.md"), b.Bytes(), 0o644)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// mdQuote makes generated text safe to show inline in Markdown.
func mdQuote(s string) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "�")), " ")
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}
