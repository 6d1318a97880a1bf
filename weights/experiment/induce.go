package experiment

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/convert"
	"github.com/matedge/matedge/weights/safetensors"
	"github.com/matedge/matedge/weights/train"
)

// InduceSetup is what Induce trains and measures.
type InduceSetup struct {
	Args      []string // the command line, quoted in the report
	Corpus    *train.Corpus
	Tokenizer model.Tokenizer
	TrainIDs  []int
	ValidIDs  []int
	// Base are the options of both pretraining runs: the native MatFormer
	// (Base.LossWeights) and Baseline-XL (only the largest width).
	Base train.Options
	// FineTune are the options of the fine-tune from the imported, reordered
	// baseline (Config is set by Induce); FineTune.Steps is its length.
	FineTune          train.Options
	EvalEvery         int // fine-tune steps between the points of the curve
	CalibrationTokens int // training tokens the importance scores are measured on
}

// CurvePoint is the validation loss of every granularity after Step
// fine-tuning steps.
type CurvePoint struct {
	Step int       `json:"step"`
	Loss []float64 `json:"loss"` // [G] nats/token
}

// Induction is every measurement of an induce run; INDUCE.md and its plot are
// rendered from it, and it is saved as results/induce.json.
type Induction struct {
	Args              []string      `json:"args"`
	Date              string        `json:"date"`
	Corpus            string        `json:"corpus"`
	CorpusSHA256      string        `json:"corpus_sha256"`
	VocabSize         int           `json:"vocab_size"`
	Tokens            int           `json:"validation_tokens"`
	Config            model.Config  `json:"config"`
	Options           train.Options `json:"options"`
	FineTune          train.Options `json:"finetune_options"`
	CalibrationTokens int           `json:"calibration_tokens"`
	Runs              []RunCost     `json:"runs"`

	Params      []int        `json:"non_embedding_params"` // [G]
	Native      []float64    `json:"native_loss"`          // [G] the natively trained MatFormer
	BaselineXL  float64      `json:"baseline_xl_loss"`     // the dense model as trained
	ExportBytes int64        `json:"export_bytes"`         // model.safetensors of the baseline
	RoundTrip   bool         `json:"round_trip_identical"` // import gave back the baseline's weights bit for bit
	Naive       []float64    `json:"naive_loss"`           // [G] prefixes of the imported model as it is
	Reordered   []float64    `json:"reordered_loss"`       // [G] after reordering by importance
	Curve       []CurvePoint `json:"curve"`                // fine-tuning from the reordered model
}

// Induce trains a native MatFormer and a dense Baseline-XL with the same
// data, steps, batches and seed; exports the baseline as a Llama safetensors
// checkpoint and imports it back as a nested model; and measures every
// granularity by naive slicing, after reordering the FFN neurons by
// importance, and along a short fine-tune with the joint loss.
func Induce(s InduceSetup, trainFn TrainFunc) (*Induction, error) {
	cfg := s.Base.Config
	G := cfg.Granularities()
	r := &Induction{Args: s.Args, Date: time.Now().UTC().Format("2006-01-02"), Corpus: s.Corpus.Name, CorpusSHA256: s.Corpus.SHA256,
		VocabSize: s.Tokenizer.Size(), Config: cfg, CalibrationTokens: s.CalibrationTokens}
	timed := func(name string, opts train.Options) (*train.Trainer, error) {
		start := time.Now()
		tr, err := trainFn(name, opts)
		if err != nil {
			return nil, err
		}
		o := tr.Options
		r.Runs = append(r.Runs, RunCost{Name: name, FLOPs: o.Objective().FLOPs(o.Config, o.Batch, o.SeqLen) * float64(o.Steps), WallSeconds: time.Since(start).Seconds()})
		return tr, nil
	}
	seqLen, batch := s.Base.SeqLen, s.Base.Batch
	eval := func(w *model.Weights) []float64 {
		out := make([]float64, G)
		for g := range out {
			out[g], r.Tokens = train.Evaluate(w, cfg.Uniform(g), s.ValidIDs, seqLen, batch)
		}
		return out
	}
	native, err := timed("MatFormer", s.Base)
	if err != nil {
		return nil, err
	}
	r.Options = native.Options
	for g := range G {
		r.Params = append(r.Params, cfg.NonEmbeddingParams(cfg.Uniform(g)))
	}
	r.Native = eval(native.Weights)

	baseOpts := s.Base
	baseOpts.Config.FFNWidths = []int{cfg.Hidden()}
	baseOpts.LossWeights = nil
	baseline, err := timed("Baseline-XL", baseOpts)
	if err != nil {
		return nil, err
	}
	r.BaselineXL, _ = train.Evaluate(baseline.Weights, baseline.Weights.Config.Uniform(0), s.ValidIDs, seqLen, batch)

	// The user's path: a dense checkpoint in safetensors, imported.
	dir, err := os.MkdirTemp("", "matedge-induce-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := convert.ExportHF(dir, baseline.Weights, s.Tokenizer, baseline.Weights.Config.Uniform(0), safetensors.F32); err != nil {
		return nil, err
	}
	if st, err := os.Stat(filepath.Join(dir, convert.SafetensorsFile)); err == nil {
		r.ExportBytes = st.Size()
	}
	imp, err := convert.ImportHF(dir, convert.ImportOptions{Granularities: G})
	if err != nil {
		return nil, err
	}
	w := imp.Weights
	r.RoundTrip = slices.Equal(w.Data, baseline.Weights.Data) && slices.Equal(imp.Tokenizer.Merges, s.Tokenizer.Merges)
	if !slices.Equal(w.Config.FFNWidths, cfg.FFNWidths) {
		return nil, fmt.Errorf("induce: imported widths %v, want %v", w.Config.FFNWidths, cfg.FFNWidths)
	}
	r.Naive = eval(w)

	calibration := s.TrainIDs
	if s.CalibrationTokens > 0 && len(calibration) > s.CalibrationTokens {
		calibration = calibration[:s.CalibrationTokens]
	}
	convert.Reorder(w, convert.Importance(w, calibration, seqLen, batch, 0))
	r.Reordered = eval(w)

	ftOpts := s.FineTune
	ftOpts.Config = w.Config
	ft, err := train.FineTune(ftOpts, w, s.Tokenizer, s.TrainIDs, s.ValidIDs)
	if err != nil {
		return nil, err
	}
	r.FineTune = ft.Options
	r.Curve = append(r.Curve, CurvePoint{Step: 0, Loss: r.Reordered})
	start := time.Now()
	for ft.Step < ft.Options.Steps {
		if _, err := ft.TrainStep(); err != nil {
			return nil, err
		}
		if ft.Step == ft.Options.Steps || (s.EvalEvery > 0 && ft.Step%s.EvalEvery == 0) {
			r.Curve = append(r.Curve, CurvePoint{Step: ft.Step, Loss: eval(ft.Weights)})
			fmt.Fprintf(os.Stderr, "fine-tune step %d/%d: %v\n", ft.Step, ft.Options.Steps, roundAll(r.Curve[len(r.Curve)-1].Loss))
		}
	}
	o := ft.Options
	r.Runs = append(r.Runs, RunCost{Name: "Fine-tune", FLOPs: o.Objective().FLOPs(o.Config, o.Batch, o.SeqLen) * float64(o.Steps), WallSeconds: time.Since(start).Seconds()})
	return r, nil
}

func roundAll(x []float64) []string {
	out := make([]string, len(x))
	for i, v := range x {
		out[i] = fmt.Sprintf("%.4f", v)
	}
	return out
}

// Save writes the measurements to OUT/results/induce.json.
func (r *Induction) Save(dir string) error { return saveJSON(dir, "induce.json", r) }

// LoadInduction reads an induce.json written by Save.
func LoadInduction(path string) (*Induction, error) {
	var r Induction
	return &r, loadJSON(path, &r)
}

// Write renders OUT/INDUCE.md and OUT/results/induce.svg.
func (r *Induction) Write(dir string) error {
	c, G := r.Config, r.Config.Granularities()
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
		return err
	}
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"}
	var ss []series
	for g := range G {
		curve := series{name: c.GranularityName(g) + " fine-tuned", color: colors[g%len(colors)], line: true}
		for _, p := range r.Curve {
			curve.points = append(curve.points, [2]float64{float64(p.Step), p.Loss[g]})
		}
		last := float64(r.Curve[len(r.Curve)-1].Step)
		native := series{name: c.GranularityName(g) + " native", color: colors[g%len(colors)],
			points: [][2]float64{{0, r.Native[g]}, {last, r.Native[g]}}, line: true}
		ss = append(ss, curve, native)
	}
	p := plot{"Inducing nesting: validation loss while fine-tuning", "fine-tuning steps", "nats/token", ss}
	if err := os.WriteFile(filepath.Join(dir, "results", "induce.svg"), []byte(p.svg()), 0o644); err != nil {
		return err
	}
	final := r.Curve[len(r.Curve)-1]
	var b bytes.Buffer
	pf := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	pf("# Inducing nesting in a dense model\n\n")
	pf("Generated by `matedge induce %s` — do not edit by hand; rerun it.\n", ShellJoin(r.Args))
	pf("Every number below was measured by that command on %s, %s.\n\n", r.Corpus, r.Date)
	pf("A user brings a dense Llama-style checkpoint. Its FFN's first h/8 neurons are not an S model: nothing put the important ones first. ")
	pf("This experiment trains such a dense model itself (Baseline-XL: the largest width, XL loss only), writes it as a Llama `model.safetensors` + `config.json` + `tokenizer.json` with matedge's exporter, reads it back with the importer as a nested model, and measures each granularity (the first h_Z neurons of every layer) three ways: ")
	pf("as imported (naive slicing), after reordering every layer's neurons by importance (mean |activation| × ‖down column‖ on %d training tokens; the XL function is unchanged), and along a fine-tune with the joint MatFormer loss — against a MatFormer trained natively with the same data, steps, batches and seed.\n\n", r.CalibrationTokens)
	pf("## Setup (tiny scale)\n\n")
	pf("* Corpus: %s (sha256 `%s`), %d-id BPE trained on the training split; %d validation tokens.\n", r.Corpus, r.CorpusSHA256, r.VocabSize, r.Tokens)
	pf("* Model: dim %d, %d layers, %d heads, context %d, FFN widths %v (S, M, L, XL).\n", c.Dim, c.Layers, c.Heads, c.Context, c.FFNWidths)
	o := r.Options
	weightsNote := "1 each"
	if o.LossWeights != nil {
		weightsNote = fmt.Sprint(o.LossWeights)
	}
	pf("* Pretraining (both runs): %d steps of %d×%d tokens, lr %.2g → %.2g cosine after %d warmup steps, seed %d. Native MatFormer loss weights (S to XL): %s.\n", o.Steps, o.Batch, o.SeqLen, o.LR, o.MinLR, o.Warmup, o.Seed, weightsNote)
	f := r.FineTune
	ftWeights := "1 each"
	if f.LossWeights != nil {
		ftWeights = fmt.Sprint(f.LossWeights)
	}
	pf("* Fine-tune: %d steps (%.0f%% of pretraining) of %d×%d tokens, fresh AdamW, lr %.2g → %.2g cosine after %d warmup steps, loss weights %s, seed %d.\n", f.Steps, 100*float64(f.Steps)/float64(o.Steps), f.Batch, f.SeqLen, f.LR, f.MinLR, f.Warmup, ftWeights, f.Seed)
	pf("* Round trip: the baseline exported to a %d-byte f32 `model.safetensors` and imported back %s.\n\n", r.ExportBytes,
		map[bool]string{true: "bit-identical (every weight and the tokenizer)", false: "**with differences**"}[r.RoundTrip])

	pf("## Validation loss (nats/token)\n\n![induce](results/induce.svg)\n\n")
	pf("| Z | non-emb. params | naive slice | reordered | fine-tuned (%d steps) | native MatFormer | fine-tuned − native | reorder beats naive | within 0.1 of native |\n|---|---:|---:|---:|---:|---:|---:|:-:|:-:|\n", final.Step)
	beats, within := 0, 0
	for g := range G {
		d := final.Loss[g] - r.Native[g]
		okN := d <= 0.1
		if okN {
			within++
		}
		reorder := "same network"
		if g < G-1 {
			reorder = yesNo(r.Reordered[g] < r.Naive[g])
			if r.Reordered[g] < r.Naive[g] {
				beats++
			}
		}
		pf("| %s | %d | %.4f | %.4f | %.4f | %.4f | %+.4f | %s | %s |\n", c.GranularityName(g), r.Params[g], r.Naive[g], r.Reordered[g], final.Loss[g], r.Native[g], d, reorder, yesNo(okN))
	}
	xlLoss := final.Loss[G-1] - r.BaselineXL
	pf("\nXL uses every neuron, so reordering leaves it the same network (its loss moves by %.1e, the float sums' new order). ", r.Reordered[G-1]-r.Naive[G-1])
	pf("Baseline-XL as trained: %.4f; after fine-tuning, XL is %.4f (%+.4f). ", r.BaselineXL, final.Loss[G-1], xlLoss)
	pf("The induced model has seen %d + %d steps of batches, the native MatFormer %d.\n\n", o.Steps, f.Steps, o.Steps)
	pf("Targets:\n\n")
	pf("* reordering alone beats naive slicing at every size: met for %d of the %d sizes below XL;\n", beats, G-1)
	pf("* after fine-tuning for ≤ 10%% of the pretraining steps (%d of %d), each size within 0.1 nats/token of the native MatFormer: met for %d of %d;\n", f.Steps, o.Steps, within, G)
	pf("* XL loses ≤ 0.02 nats/token against the dense model it started from: %s (%+.4f).\n\n", yesNo(xlLoss <= 0.02), xlLoss)

	pf("## Fine-tuning curve\n\n| step |")
	for g := range G {
		pf(" %s |", c.GranularityName(g))
	}
	pf("\n|---:|")
	for range G {
		pf("---:|")
	}
	pf("\n")
	for _, p := range r.Curve {
		pf("| %d |", p.Step)
		for _, l := range p.Loss {
			pf(" %.4f |", l)
		}
		pf("\n")
	}
	pf("| native |")
	for _, l := range r.Native {
		pf(" %.4f |", l)
	}
	pf("\n\n## Cost\n\n| run | FLOPs | wall seconds |\n|---|---:|---:|\n")
	for _, run := range r.Runs {
		pf("| %s | %.3g | %.0f |\n", run.Name, run.FLOPs, run.WallSeconds)
	}
	pf("\nWall times are of the 2-core shared machine the command ran on; FLOPs are the training steps' (the evaluations are not counted).\n")
	return os.WriteFile(filepath.Join(dir, "INDUCE.md"), b.Bytes(), 0o644)
}
