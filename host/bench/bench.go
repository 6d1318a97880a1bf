// Package bench measures what matedge bench reports: prefill and decode
// speeds of every submodel on the module's CPU and GPU backends, the
// module's CPU products with kernels.wasm and without, and the matrix
// kernels on the native GPU. The functions take options and return results;
// the command formats them.
package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
)

// Options say what MeasureModel measures and how.
type Options struct {
	// Wasm is matedge.wasm; empty finds it (host.FindModule).
	Wasm string
	// Backends are those timed: planner.BackendCPU (kernels.wasm linked),
	// BackendCPUGo (not linked) and planner.BackendGPU.
	Backends []string
	// Precision is the GPU weights' dtype: f32 or f16.
	Precision string
	// Prefill is the prompt's length in bytes, Decode the tokens decoded
	// after it, per run.
	Prefill, Decode int
	// Temperature is the sampling temperature of the timed generations: 0
	// (greedy, argmax) or a temperature, which adds ranking the vocabulary
	// and drawing a token to every step (seed 1).
	Temperature float32
	// CPUClock times the CPU backend and the CPU products (host.ThreadClock
	// on a shared machine); nil times them in wall time, as the GPU backend
	// always is.
	CPUClock func() time.Duration
	// Progress, when not nil, is told each stage as it starts.
	Progress func(stage string)
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// wallClock is time since the process started.
var (
	started   = time.Now()
	wallClock = func() time.Duration { return time.Since(started) }
)

func (o Options) cpuClock() func() time.Duration {
	if o.CPUClock == nil {
		return wallClock
	}
	return o.CPUClock
}

// benchText is the prompt prefill is timed on, cut to -prefill bytes.
const benchText = "My Design in this Book is not to explain the Properties of Light by Hypotheses, but to propose and prove them by Reason and Experiments: In order to which I shall premise the following Definitions and Axioms. "

// Run is one (model, backend, mix) measurement.
type Run struct {
	Backend       string   `json:"backend"`
	Mix           string   `json:"mix"`    // the spec: S, XL, or a preset's name
	Layers        []string `json:"layers"` // granularity per layer
	FLOPsPerToken float64  `json:"flops_per_token"`
	PrefillTokens int      `json:"prefill_tokens"`
	PrefillTPS    float64  `json:"prefill_tokens_per_second"`
	DecodeTokens  int      `json:"decode_tokens"`
	DecodeTPS     float64  `json:"decode_tokens_per_second"`
	// PredictedTPS is what the planner predicts for this decode from the
	// capabilities measured at the start (0 when -predict=false).
	PredictedTPS float64 `json:"predicted_decode_tokens_per_second,omitempty"`
	Error        string  `json:"error,omitempty"`
}

// Speedup is the decode speed of the smallest uniform submodel over the largest.
type Speedup struct {
	Backend  string  `json:"backend"`
	Realized float64 `json:"realized"` // decode tokens/s of S over XL
	Ideal    float64 `json:"ideal"`    // FLOPs per token of XL over S
}

// Model is one model's runs: every uniform granularity and the two
// Mix'n'Match presets on each backend.
type Model struct {
	Name        string       `json:"name"`
	Config      model.Config `json:"config"`
	Temperature float32      `json:"temperature"` // of the timed generations; 0 is greedy
	Runs        []Run        `json:"runs"`
	Speedups    []Speedup    `json:"speedups"`
}

// KernelResult is one GPU matrix kernel timed at one shape.
type KernelResult struct {
	Kernel  string  `json:"kernel"`
	Shape   string  `json:"shape"` // rows×cols, ×tokens for matmul
	GFLOPs  float64 `json:"gflop_per_second"`
	GBs     float64 `json:"weight_gb_per_second"`
	Seconds float64 `json:"seconds_per_dispatch"`
}

// Report is what matedge bench -json prints.
type Report struct {
	Device    string         `json:"device"` // the adapter the GPU backend and the kernels ran on
	Precision string         `json:"precision"`
	Clock     string         `json:"cpu_clock"` // how CPU-backend runs and CPU products are timed
	Models    []Model        `json:"models"`
	Kernels   []KernelResult `json:"kernels,omitempty"`
	// CPUKernels are the module's CPU products, with kernels.wasm and without.
	CPUKernels []CPUKernelResult `json:"cpu_kernels,omitempty"`
	// Capabilities are what the planner's predictions were made from.
	Capabilities *planner.Capabilities `json:"capabilities,omitempty"`
}

// LargeConfig is the shape of the large model bench times where compute
// dominates: dim, XL hidden width, layers.
func LargeConfig(dims [3]int) model.Config {
	return model.Config{Vocab: 256, Dim: dims[0], Layers: dims[2], Heads: max(dims[0]/64, 1), FFNWidths: model.NestedWidths(dims[1]),
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
}

// LargeFile is a weights file of random weights of config c (LargeConfig's).
func LargeFile(c model.Config) ([]byte, error) {
	var buf bytes.Buffer
	if err := weights.Write(&buf, weights.Random(c, 1), model.Tokenizer{}, map[string]string{"kind": "random"}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// PredictRuns fills each run's PredictedTPS with the planner's prediction.
func PredictRuns(caps planner.Capabilities, file []byte, bm *Model) error {
	h, err := weights.ParseHeader(file, int64(len(file)))
	if err != nil {
		return err
	}
	for i := range bm.Runs {
		r := &bm.Runs[i]
		mix, err := h.Config.ParseMix(strings.Join(r.Layers, ","))
		if err != nil || (r.Backend == planner.BackendGPU && caps.Adapter == nil) {
			continue
		}
		// The plan is priced whether or not it fits; only its speed matters here.
		p, _ := planner.Evaluate(caps, h, planner.Budget{}, mix, r.Backend)
		r.PredictedTPS = p.PredictedTokensPerSecond
	}
	return nil
}

// MeasureModel times every mix of one model on each backend, in one module.
// It returns the model's runs and the GPU adapter the GPU backend ran on
// ("" when none opened). A run that fails carries its error; the others go on.
func MeasureModel(ctx context.Context, o Options, name string, file []byte) (Model, string, error) {
	backends, precision, prefill, decode := o.Backends, o.Precision, o.Prefill, o.Decode
	var device string
	open := func() (webgpu.Device, error) {
		d, err := webgpu.Open()
		if err == nil {
			device = d.Info().String()
		}
		return d, err
	}
	// One module per kernel set: the cpu-go backend is the CPU backend of a
	// module whose host did not link kernels.wasm.
	mods := map[string]*host.Module{}
	var info *abi.ModelInfo
	for _, set := range []string{host.KernelsSIMD, host.KernelsGo} {
		if set == host.KernelsGo && !slices.Contains(backends, BackendCPUGo) {
			continue
		}
		mod, closeModule, err := host.StartModule(ctx, o.Wasm, host.Config{GPU: open, Kernels: set})
		if err != nil {
			return Model{}, "", err
		}
		defer closeModule()
		if info, _, err = mod.Load(ctx, bytes.NewReader(file), int64(len(file)), "XL"); err != nil {
			return Model{}, "", fmt.Errorf("%s: %w", name, err)
		}
		mods[set] = mod
	}
	c := info.Header.Config
	bm := Model{Name: name, Config: c, Temperature: o.Temperature}
	specs := []string{}
	for g := range c.Granularities() {
		specs = append(specs, c.GranularityName(g))
	}
	presets := c.MixnMatchPresets()
	for _, p := range presets {
		specs = append(specs, p.Name)
	}
	text := strings.Repeat(benchText, prefill/len(benchText)+1)[:prefill]
	for _, backend := range backends {
		opts := abi.Options{Backend: backend, Precision: precision, Temperature: o.Temperature, Seed: 1}
		o.progress("%s on %s: warming up (pipelines, weights)", name, backend)
		mod := mods[host.KernelsSIMD]
		if backend == BackendCPUGo {
			opts.Backend, mod = planner.BackendCPU, mods[host.KernelsGo]
		}
		// A first generation compiles the pipelines, uploads the weights and
		// allocates the prefill's buffers (a garbage collection there would
		// land in a timing), outside the timings.
		if _, err := mod.SetMix(ctx, c.GranularityName(c.Granularities()-1)); err != nil {
			return bm, device, err
		}
		_, warmErr := mod.Generate(ctx, host.Request{Prompt: text, MaxTokens: 1, Options: opts}, nil)
		for _, spec := range specs {
			run := Run{Backend: backend, Mix: spec}
			mixSpec := spec
			for _, p := range presets {
				if p.Name == spec {
					mixSpec = p.Spec
				}
			}
			mix, err := c.ParseMix(mixSpec)
			if err != nil {
				return bm, device, err
			}
			o.progress("%s on %s: timing mix %s", name, backend, spec)
			run.Layers = c.MixNames(mix)
			run.FLOPsPerToken = 2 * float64(c.NonEmbeddingParams(mix)+c.Vocab*c.Dim)
			if warmErr != nil {
				run.Error = oneLine(warmErr)
			} else if err := timeRun(ctx, mod, mixSpec, opts, text, decode, o.cpuClock(), &run); err != nil {
				run.Error = oneLine(err)
			}
			bm.Runs = append(bm.Runs, run)
		}
		small, big := bm.find(backend, c.GranularityName(0)), bm.find(backend, c.GranularityName(c.Granularities()-1))
		if small != nil && big != nil && small.Error == "" && big.Error == "" {
			bm.Speedups = append(bm.Speedups, Speedup{Backend: backend, Realized: small.DecodeTPS / big.DecodeTPS, Ideal: big.FLOPsPerToken / small.FLOPsPerToken})
		}
	}
	return bm, device, nil
}

func (bm *Model) find(backend, mix string) *Run {
	for i := range bm.Runs {
		if bm.Runs[i].Backend == backend && bm.Runs[i].Mix == mix {
			return &bm.Runs[i]
		}
	}
	return nil
}

// timeRun times the prompt's first step (prefill of every prompt token and
// one sample) and then decode single-token steps.
func timeRun(ctx context.Context, mod *host.Module, mix string, opts abi.Options, text string, decode int, cpuClock func() time.Duration, run *Run) error {
	if _, err := mod.SetMix(ctx, mix); err != nil {
		return err
	}
	if _, err := mod.Reset(ctx, opts); err != nil {
		return err
	}
	ids, err := mod.Prompt(ctx, text)
	if err != nil {
		return err
	}
	// The CPU backend runs on this thread: its CPU time leaves out what other
	// processes take. The GPU's work runs elsewhere: wall time.
	now := wallClock
	if opts.Backend == planner.BackendCPU {
		now = cpuClock
	}
	start := now()
	if _, _, _, err := mod.Step(ctx); err != nil {
		return err
	}
	prefilled := now()
	for range decode {
		if _, _, done, err := mod.Step(ctx); err != nil || done {
			return errors.Join(err, errors.New("context full while decoding; lower -prefill or -decode"))
		}
	}
	decoded := now()
	run.PrefillTokens, run.PrefillTPS = len(ids), float64(len(ids))/(prefilled-start).Seconds()
	run.DecodeTokens, run.DecodeTPS = decode, float64(decode)/(decoded-prefilled).Seconds()
	return nil
}

// GPUKernels times the matrix kernels natively at the shapes the models
// use: [dim][dim] (attention), [hidden][dim] (FFN), [vocab][dim] (head), in
// f32 and f16, matvec for decode and matmul for a prefill of tokens rows.
func GPUKernels(configs []model.Config, tokens int) (string, []KernelResult, error) {
	d, err := webgpu.Open()
	if err != nil {
		return "", nil, err
	}
	defer d.Close()
	pipes := webgpu.NewPipelines(d)
	type shape struct{ rows, cols int }
	var shapes []shape
	seen := map[shape]bool{}
	for _, c := range configs {
		for _, s := range []shape{{c.Dim, c.Dim}, {c.Hidden(), c.Dim}, {c.Vocab, c.Dim}} {
			if !seen[s] {
				seen[s] = true
				shapes = append(shapes, s)
			}
		}
	}
	tokens = min(tokens, 64)
	var results []KernelResult
	for _, s := range shapes {
		for _, kernel := range []string{"matvec", "matvec4", "matvec_f16", "matvec_t", "matvec_t_f16", "matmul", "matmul_f16"} {
			if kernel == "matvec4" && s.cols%4 != 0 {
				continue // matvec4 needs whole vec4 rows; the engine uses matvec there
			}
			r, err := timeKernel(d, pipes, kernel, s.rows, s.cols, tokens)
			if err != nil {
				return "", nil, fmt.Errorf("kernel %s %dx%d: %w", kernel, s.rows, s.cols, err)
			}
			results = append(results, r)
		}
	}
	return d.Info().String(), results, nil
}

// timeKernel dispatches one kernel over random weights until about 0.2 s
// have passed, and reports the mean.
func timeKernel(d webgpu.Device, pipes *webgpu.Pipelines, kernel string, rows, cols, tokens int) (KernelResult, error) {
	half := strings.HasSuffix(kernel, "_f16")
	weightBytes := 4 * rows * cols
	if half {
		weightBytes /= 2
	}
	batch := 1
	if strings.HasPrefix(kernel, "matmul") {
		batch = tokens
	}
	in, out := cols*batch, rows*batch
	if strings.HasPrefix(kernel, "matvec_t") {
		in, out = rows, cols // neuron-major: sums over the rows
	}
	buffer := func(size int, fill bool) (webgpu.Buffer, error) {
		b, err := d.CreateBuffer(uint64(size))
		if err != nil || !fill {
			return b, err
		}
		data := make([]byte, size)
		rng := model.NewRNG(uint64(size))
		for i := 0; i+4 <= size; i += 4 {
			v := 2*rng.Float32() - 1
			if half {
				binary.LittleEndian.PutUint32(data[i:], 0x3c003c00) // 1.0, 1.0: any finite halves do
			} else {
				binary.LittleEndian.PutUint32(data[i:], math.Float32bits(v))
			}
		}
		return b, d.WriteBuffer(b, 0, data)
	}
	w, err := buffer(weightBytes, true)
	if err != nil {
		return KernelResult{}, err
	}
	x, err := buffer(4*in, true)
	if err != nil {
		return KernelResult{}, err
	}
	o, err := buffer(4*out, false)
	if err != nil {
		return KernelResult{}, err
	}
	defer func() { d.DestroyBuffer(w); d.DestroyBuffer(x); d.DestroyBuffer(o) }()

	// The grids are the table's, as the engine dispatches them.
	var call shaders.Dispatch
	vec := shaders.MatVecArgs{Rows: rows, Cols: cols, W: w, X: x, Out: o}
	switch kernel {
	case "matvec":
		call = shaders.MatVec.Call(vec)
	case "matvec_f16":
		call = shaders.MatVecF16.Call(vec)
	case "matvec4":
		call = shaders.MatVec4.Call(vec)
	case "matvec_t":
		call = shaders.MatVecT.Call(vec)
	case "matvec_t_f16":
		call = shaders.MatVecTF16.Call(vec)
	case "matmul", "matmul_f16":
		def := shaders.MatMul
		if kernel == "matmul_f16" {
			def = shaders.MatMulF16
		}
		call = def.Call(shaders.MatMulArgs{Rows: rows, Cols: cols, Tokens: tokens, W: w, X: x, Out: o})
	default:
		return KernelResult{}, fmt.Errorf("bench: no kernel %q to time", kernel)
	}
	dispatch := func(n int) (time.Duration, error) {
		start := time.Now()
		for range n {
			if err := call.Record(d, pipes); err != nil {
				return 0, err
			}
		}
		_, err := webgpu.ReadNow(d, o, 0, 4)
		return time.Since(start), err
	}
	if _, err := dispatch(1); err != nil { // compile and warm up
		return KernelResult{}, err
	}
	n := 1
	var elapsed time.Duration
	for {
		if elapsed, err = dispatch(n); err != nil {
			return KernelResult{}, err
		}
		if elapsed > 200*time.Millisecond || n >= 1<<12 {
			break
		}
		n *= 4
	}
	sec := elapsed.Seconds() / float64(n)
	shape := fmt.Sprintf("%dx%d", rows, cols)
	if batch > 1 {
		shape += fmt.Sprintf("x%d", batch)
	}
	flops := 2 * float64(rows) * float64(cols) * float64(batch)
	return KernelResult{Kernel: kernel, Shape: shape, Seconds: sec, GFLOPs: flops / sec / 1e9, GBs: float64(weightBytes) / sec / 1e9}, nil
}

// oneLine joins a multi-line error (errors.Join) into one line, as a run's
// error is reported.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
