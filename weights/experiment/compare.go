// Package experiment runs the paper's experiments on models trained by
// weights/train and writes their reports: Compare (MatFormer against
// independently trained baselines, Mix'n'Match, consistency; RESULTS.md) and
// Scaling (loss against size, fitted power laws; SCALING.md). Each measures
// into a struct that is saved as JSON, and renders Markdown and SVG from it,
// so a report can be redrawn without training again.
package experiment

import (
	"bytes"
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

// TrainFunc trains one run of an experiment to its end. The caller chooses
// how progress is shown.
type TrainFunc func(name string, opts train.Options) (*train.Trainer, error)

// CompareSetup is what Compare trains and measures.
type CompareSetup struct {
	Args      []string // the command line, quoted in the report
	Corpus    *train.Corpus
	Tokenizer model.Tokenizer
	TrainIDs  []int
	ValidIDs  []int
	// Base are the options of every run; MatFormer trains with
	// MatFormerLossWeights (nil: 1 each), Baseline-Z with only Z's width.
	Base                 train.Options
	MatFormerLossWeights []float32
	// Ablations are extra MatFormers trained with these loss weights.
	Ablations [][]float32
	Mixes     int    // Mix'n'Match models to measure
	Prompt    string // of the samples
}

// Compare trains one MatFormer and a baseline per granularity with the same
// data, steps, batches and seed, plus the ablations, and measures them.
func Compare(s CompareSetup, trainFn TrainFunc) (*Comparison, error) {
	cfg := s.Base.Config
	timed := func(name string, opts train.Options) (*train.Trainer, RunCost, error) {
		start := time.Now()
		tr, err := trainFn(name, opts)
		if err != nil {
			return nil, RunCost{}, err
		}
		o := tr.Options
		return tr, RunCost{Name: name, FLOPs: o.Objective().FLOPs(o.Config, o.Batch, o.SeqLen) * float64(o.Steps), WallSeconds: time.Since(start).Seconds()}, nil
	}
	matOpts := s.Base
	matOpts.LossWeights = s.MatFormerLossWeights
	matformer, cost, err := timed("MatFormer", matOpts)
	if err != nil {
		return nil, err
	}
	r := &Comparison{Args: s.Args, Date: time.Now().UTC().Format("2006-01-02"), Corpus: s.Corpus.Name, CorpusSHA256: s.Corpus.SHA256,
		TrainBytes: len(s.Corpus.Train), ValidBytes: len(s.Corpus.Validation), VocabSize: s.Tokenizer.Size(), Config: cfg,
		Options: matformer.Options, Prompt: s.Prompt, Runs: []RunCost{cost}}
	var baselines []*model.Weights
	for g, width := range cfg.FFNWidths {
		opts := s.Base
		opts.Config.FFNWidths = []int{width}
		tr, cost, err := timed("Baseline-"+cfg.GranularityName(g), opts)
		if err != nil {
			return nil, err
		}
		baselines, r.Runs = append(baselines, tr.Weights), append(r.Runs, cost)
	}
	r.measure(matformer.Weights, baselines, &s.Tokenizer, s.ValidIDs, s.Mixes)
	for _, lw := range s.Ablations {
		opts := s.Base
		opts.LossWeights = lw
		tr, _, err := timed(fmt.Sprintf("MatFormer, loss weights %v", lw), opts)
		if err != nil {
			return nil, err
		}
		a := Ablation{LossWeights: lw}
		for g := range cfg.Granularities() {
			loss, _ := train.Evaluate(tr.Weights, cfg.Uniform(g), s.ValidIDs, opts.SeqLen, opts.Batch)
			a.Loss = append(a.Loss, loss)
		}
		r.Ablations = append(r.Ablations, a)
	}
	return r, nil
}

// Save writes the measurements to OUT/results/compare.json, from which
// Load and Write redraw the report.
func (r *Comparison) Save(dir string) error { return saveJSON(dir, "compare.json", r) }

// LoadComparison reads a compare.json written by Save.
func LoadComparison(path string) (*Comparison, error) {
	var r Comparison
	return &r, loadJSON(path, &r)
}

type MixPoint struct {
	Mix    model.Mix `json:"mix"`
	Params int       `json:"non_embedding_params"`
	Loss   float64   `json:"loss_nats_per_token"`
	Interp float64   `json:"line"` // on the line through the trained uniform points
}

type RunCost struct {
	Name        string  `json:"name"`
	FLOPs       float64 `json:"flops"`
	WallSeconds float64 `json:"wall_seconds"`
}

// Comparison is every measurement of a compare run: RESULTS.md and the plots
// are rendered from it, and it is saved as results/compare.json.
type Comparison struct {
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
	Runs         []RunCost     `json:"runs"` // MatFormer, then Baseline-S…XL

	Params      []int      `json:"non_embedding_params"` // [G] of uniform granularity g
	MatLoss     []float64  `json:"matformer_loss"`       // [G] validation nats/token
	BaseLoss    []float64  `json:"baseline_loss"`
	MatBPB      []float64  `json:"matformer_bits_per_byte"`
	BaseBPB     []float64  `json:"baseline_bits_per_byte"`
	Mixes       []MixPoint `json:"mixes"`
	MatAgree    []float64  `json:"matformer_agreement"` // [G] greedy agreement with XL
	BaseAgree   []float64  `json:"baseline_agreement"`
	Prompt      string     `json:"prompt"`
	MatSamples  []string   `json:"matformer_samples"`
	BaseSamples []string   `json:"baseline_samples"`
	Ablations   []Ablation `json:"ablations,omitempty"`
}

// Ablation is a MatFormer trained like the main one but with other loss
// weights.
type Ablation struct {
	LossWeights []float32 `json:"loss_weights"`
	Loss        []float64 `json:"loss"` // [G] validation nats/token
}

func (r *Comparison) measure(mw *model.Weights, baselines []*model.Weights, tok *model.Tokenizer, validIDs []int, mixCount int) {
	c, G := r.Config, r.Config.Granularities()
	seqLen, batch, seed := r.Options.SeqLen, r.Options.Batch, r.Options.Seed
	var matGreedy, baseGreedy [][]int
	for g := range G {
		r.Params = append(r.Params, c.NonEmbeddingParams(c.Uniform(g)))
		loss, n := train.Evaluate(mw, c.Uniform(g), validIDs, seqLen, batch)
		r.MatLoss, r.MatBPB, r.Tokens = append(r.MatLoss, loss), append(r.MatBPB, train.BitsPerByte(loss, n, r.ValidBytes)), n
		bw := baselines[g]
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
		r.Mixes = append(r.Mixes, MixPoint{Mix: m, Params: p, Loss: loss, Interp: interpolate(r.Params, r.MatLoss, p)})
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

// Write renders OUT/RESULTS.md and the plots in OUT/results from the
// measurements, with full's section on full-size models when full names one.
func (r *Comparison) Write(dir string, full *FullScale) error {
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
	p("Generated by `matedge compare %s` — do not edit by hand; rerun it.\n", ShellJoin(r.Args))
	p("Every number below was measured by that command on %s, %s.\n", r.Corpus, r.Date)
	if full != nil && full.DefaultPath != "" {
		p("The full-scale section at the end was rendered by `matedge compare %s`.\n", ShellJoin(full.Args))
	}
	p("Inducing nesting in a dense checkpoint instead (import, reorder, fine-tune) is measured in [INDUCE.md](INDUCE.md), by `matedge induce`.\n")
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
	slices.SortStableFunc(sorted, func(a, b MixPoint) int { return a.Params - b.Params })
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
	p("Mix'n'Match fixes one width per layer for every token; its dynamic counterpart, token routing (each token picks its width in each layer), is measured against the Mix'n'Match frontier of the default model in [ROUTING.md](ROUTING.md) (`matedge route`).\n\n")

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
		main := Ablation{LossWeights: r.Options.LossWeights, Loss: r.MatLoss}
		if main.LossWeights == nil {
			main.LossWeights = []float32{1, 1, 1, 1}
		}
		for i, a := range append([]Ablation{main}, r.Ablations...) {
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

	if full != nil && full.DefaultPath != "" {
		if err := full.write(&b); err != nil {
			return err
		}
	}
	path := filepath.Join(dir, "RESULTS.md")
	return WriteKeepingSections(path, b.Bytes()) // sections other commands wrote (vision-results) are kept
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

// saveJSON writes v, indented, to OUT/results/name.
func saveJSON(dir, name string, v any) error {
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results", name), js, 0o644)
}

// loadJSON reads what saveJSON wrote into v.
func loadJSON(path string, v any) error {
	js, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(js, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
