package experiment

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/train"
)

// ScalingSetup is what Scaling trains: for each width in Dims, a MatFormer
// and a Baseline-XL with Base's other options.
type ScalingSetup struct {
	Args      []string
	Corpus    *train.Corpus
	Tokenizer model.Tokenizer
	TrainIDs  []int
	ValidIDs  []int
	Base      train.Options // Config.Dim and FFNWidths are set per size
	Dims      []int
}

// Scaling trains the sweep, measures every model on the validation split and
// fits loss(N) = a·N^(−α) + c over the XL models of MatFormer and of the
// baselines.
func Scaling(s ScalingSetup, trainFn TrainFunc) (*ScalingStudy, error) {
	if len(s.Dims) < 3 {
		return nil, fmt.Errorf("experiment: a power law needs at least 3 sizes, got %d", len(s.Dims))
	}
	st := &ScalingStudy{Args: s.Args, Date: time.Now().UTC().Format("2006-01-02"), Corpus: s.Corpus.Name, CorpusSHA256: s.Corpus.SHA256, VocabSize: s.Tokenizer.Size()}
	timed := func(name string, opts train.Options) (*train.Trainer, float64, error) {
		start := time.Now()
		tr, err := trainFn(name, opts)
		return tr, time.Since(start).Seconds(), err
	}
	seqLen, batch := s.Base.SeqLen, s.Base.Batch
	for _, dim := range s.Dims {
		opts := s.Base
		opts.Config.Dim = dim
		opts.Config.FFNWidths = model.NestedWidths(4 * dim)
		cfg := opts.Config
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("dim %d: %w", dim, err)
		}
		mat, matSecs, err := timed(fmt.Sprintf("MatFormer dim %d", dim), opts)
		if err != nil {
			return nil, err
		}
		if st.Options.Steps == 0 {
			st.Options = mat.Options
		}
		base := opts
		base.LossWeights = nil
		base.Config.FFNWidths = []int{cfg.Hidden()}
		bl, baseSecs, err := timed(fmt.Sprintf("Baseline-XL dim %d", dim), base)
		if err != nil {
			return nil, err
		}
		size := ScalingSize{Dim: dim, MatSeconds: matSecs, BaseSeconds: baseSecs,
			MatFLOPs:      mat.Options.Objective().FLOPs(cfg, batch, seqLen) * float64(opts.Steps),
			BaselineFLOPs: bl.Options.Objective().FLOPs(base.Config, batch, seqLen) * float64(opts.Steps)}
		for g := range cfg.Granularities() {
			loss, n := train.Evaluate(mat.Weights, cfg.Uniform(g), s.ValidIDs, seqLen, batch)
			size.Params, size.MatLoss, st.Tokens = append(size.Params, cfg.NonEmbeddingParams(cfg.Uniform(g))), append(size.MatLoss, loss), n
		}
		size.BaselineLoss, _ = train.Evaluate(bl.Weights, base.Config.Uniform(0), s.ValidIDs, seqLen, batch)
		st.Sizes = append(st.Sizes, size)
	}
	var n, matLoss, baseLoss []float64
	for _, z := range st.Sizes {
		n = append(n, float64(z.Params[len(z.Params)-1]))
		matLoss, baseLoss = append(matLoss, z.MatLoss[len(z.MatLoss)-1]), append(baseLoss, z.BaselineLoss)
	}
	var err error
	if st.MatFit, err = train.FitPowerLaw(n, matLoss); err != nil {
		return nil, fmt.Errorf("MatFormer fit: %w", err)
	}
	if st.BaseFit, err = train.FitPowerLaw(n, baseLoss); err != nil {
		return nil, fmt.Errorf("baseline fit: %w", err)
	}
	return st, nil
}

// Save writes the measurements to OUT/results/scaling.json.
func (s *ScalingStudy) Save(dir string) error { return saveJSON(dir, "scaling.json", s) }

// LoadScaling reads a scaling.json written by Save.
func LoadScaling(path string) (*ScalingStudy, error) {
	var s ScalingStudy
	return &s, loadJSON(path, &s)
}

// ScalingSize is one model size of the sweep.
type ScalingSize struct {
	Dim           int       `json:"dim"`
	Params        []int     `json:"non_embedding_params"` // [G] of MatFormer's uniform granularity g; the last is XL
	MatLoss       []float64 `json:"matformer_loss"`       // [G] validation nats/token
	BaselineLoss  float64   `json:"baseline_xl_loss"`     // Baseline-XL, nats/token
	MatSeconds    float64   `json:"matformer_seconds"`
	BaseSeconds   float64   `json:"baseline_seconds"`
	MatFLOPs      float64   `json:"matformer_flops"`
	BaselineFLOPs float64   `json:"baseline_flops"`
}

// ScalingStudy is every measurement of a scaling run; SCALING.md and its
// plot are rendered from it, and it is saved as results/scaling.json.
type ScalingStudy struct {
	Args         []string       `json:"args"`
	Date         string         `json:"date"`
	Corpus       string         `json:"corpus"`
	CorpusSHA256 string         `json:"corpus_sha256"`
	VocabSize    int            `json:"vocab_size"`
	Tokens       int            `json:"validation_tokens"`
	Options      train.Options  `json:"options"` // of the first size; only Config.Dim and widths change
	Sizes        []ScalingSize  `json:"sizes"`
	MatFit       train.PowerLaw `json:"matformer_fit"` // over MatFormer-XL of each size
	BaseFit      train.PowerLaw `json:"baseline_fit"`  // over Baseline-XL of each size
}

// Write renders OUT/SCALING.md and OUT/results/scaling.svg.
func (s *ScalingStudy) Write(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
		return err
	}
	mat := series{name: "MatFormer-XL", color: "#1f77b4"}
	sub := series{name: "MatFormer S/M/L", color: "#9ecae1"}
	base := series{name: "Baseline-XL", color: "#d62728"}
	matFit := series{name: "fit (MatFormer)", color: "#1f77b4", line: true}
	baseFit := series{name: "fit (Baseline)", color: "#d62728", line: true}
	lo, hi := float64(s.Sizes[0].Params[len(s.Sizes[0].Params)-1]), 0.0
	for _, z := range s.Sizes {
		G := len(z.Params)
		xl := float64(z.Params[G-1])
		mat.points = append(mat.points, [2]float64{xl, z.MatLoss[G-1]})
		base.points = append(base.points, [2]float64{xl, z.BaselineLoss})
		for g := range G - 1 {
			sub.points = append(sub.points, [2]float64{float64(z.Params[g]), z.MatLoss[g]})
		}
		lo, hi = min(lo, xl), max(hi, xl)
	}
	for i := range 41 {
		x := lo + (hi-lo)*float64(i)/40
		matFit.points = append(matFit.points, [2]float64{x, s.MatFit.At(x)})
		baseFit.points = append(baseFit.points, [2]float64{x, s.BaseFit.At(x)})
	}
	p := plot{"Scaling: validation loss against size", "non-embedding parameters", "nats/token", []series{matFit, baseFit, mat, base, sub}}
	if err := os.WriteFile(filepath.Join(dir, "results", "scaling.svg"), []byte(p.svg()), 0o644); err != nil {
		return err
	}

	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	o := s.Options
	w("# MatFormer scaling in matedge\n\n")
	w("Generated by `matedge scaling %s` — do not edit by hand; rerun it.\n", ShellJoin(s.Args))
	w("Every number below was measured by that command on %s, %s.\n\n", s.Corpus, s.Date)
	w("* Corpus: %s (sha256 `%s`); %d-id BPE trained on the training split; %d validation tokens.\n", s.Corpus, s.CorpusSHA256, s.VocabSize, s.Tokens)
	w("* Models: %d layers, %d heads, context %d, FFN XL = 4×dim with S, M, L = XL/8, /4, /2; widths as in the table.\n", o.Config.Layers, o.Config.Heads, o.Config.Context)
	w("* Every run: %d steps of %d×%d tokens, AdamW, lr %.2g → %.2g cosine after %d warmup steps, seed %d; same tokenizer and batches for all.\n", o.Steps, o.Batch, o.SeqLen, o.LR, o.MinLR, o.Warmup, o.Seed)
	weighting := "equal weights"
	if o.LossWeights != nil {
		weighting = fmt.Sprintf("weights %v (S to XL)", o.LossWeights)
	}
	w("* MatFormer: joint loss over S, M, L, XL with %s. Baseline-XL: a standalone model of XL's width. The fits use the XL model of each size.\n\n", weighting)
	w("![scaling](results/scaling.svg)\n\n")
	w("| dim | XL non-emb. params | MatFormer-S | MatFormer-M | MatFormer-L | MatFormer-XL | Baseline-XL | Δ XL (Mat − Base) | MatFormer time | Baseline time |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, z := range s.Sizes {
		G := len(z.Params)
		w("| %d | %d |", z.Dim, z.Params[G-1])
		for g := range G {
			w(" %.4f |", z.MatLoss[g])
		}
		w(" %.4f | %+.4f | %.0f s | %.0f s |\n", z.BaselineLoss, z.MatLoss[G-1]-z.BaselineLoss, z.MatSeconds, z.BaseSeconds)
	}
	w("\nLosses in nats/token on the validation split.\n\n## Fits: loss(N) = a·N^(−α) + c\n\n")
	w("| models | a | α | c | rms error |\n|---|---:|---:|---:|---:|\n")
	w("| MatFormer-XL | %.4g | %.4f | %.4f | %.4f |\n", s.MatFit.A, s.MatFit.Alpha, s.MatFit.C, s.MatFit.RMSE)
	w("| Baseline-XL | %.4g | %.4f | %.4f | %.4f |\n", s.BaseFit.A, s.BaseFit.Alpha, s.BaseFit.C, s.BaseFit.RMSE)
	w("| the paper's MatFormer (for reference) | 23.05 | 0.1407 | 1.4352 | |\n")
	w("| the paper's Baseline (for reference) | 22.79 | 0.1414 | 1.4973 | |\n\n")
	w("Exponents: MatFormer α = %.4f, Baseline α = %.4f (ratio %.2f; the paper's ratio is 0.995). ", s.MatFit.Alpha, s.BaseFit.Alpha, s.MatFit.Alpha/s.BaseFit.Alpha)
	w("With %d sizes and three parameters per law, α and c trade off against each other: read the exponents as a comparison between the two runs at this scale, not as estimates of the paper's.\n", len(s.Sizes))
	return os.WriteFile(filepath.Join(dir, "SCALING.md"), b.Bytes(), 0o644)
}
