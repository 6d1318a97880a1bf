package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

func init() {
	register(command{name: "bench", summary: "tokens/s of every submodel on the CPU and GPU backends, and kernel throughput", run: runBench})
}

// cpuClock times the CPU backend and the CPU products (threadClock);
// wallClock the GPU backend.
var (
	cpuClock  func() time.Duration
	benchWall = time.Now()
	wallClock = func() time.Duration { return time.Since(benchWall) }
)

// benchText is the prompt prefill is timed on, cut to -prefill bytes.
const benchText = "My Design in this Book is not to explain the Properties of Light by Hypotheses, but to propose and prove them by Reason and Experiments: In order to which I shall premise the following Definitions and Axioms. "

// benchRun is one (model, backend, mix) measurement.
type benchRun struct {
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

// speedup is the decode speed of the smallest uniform submodel over the largest.
type speedup struct {
	Backend  string  `json:"backend"`
	Realized float64 `json:"realized"` // decode tokens/s of S over XL
	Ideal    float64 `json:"ideal"`    // FLOPs per token of XL over S
}

type benchModel struct {
	Name     string       `json:"name"`
	Config   model.Config `json:"config"`
	Runs     []benchRun   `json:"runs"`
	Speedups []speedup    `json:"speedups"`
}

type kernelResult struct {
	Kernel  string  `json:"kernel"`
	Shape   string  `json:"shape"` // rows×cols, ×tokens for matmul
	GFLOPs  float64 `json:"gflop_per_second"`
	GBs     float64 `json:"weight_gb_per_second"`
	Seconds float64 `json:"seconds_per_dispatch"`
}

type benchReport struct {
	Device    string         `json:"device"` // the adapter the GPU backend and the kernels ran on
	Precision string         `json:"precision"`
	Clock     string         `json:"cpu_clock"` // how CPU-backend runs and CPU products are timed
	Models    []benchModel   `json:"models"`
	Kernels   []kernelResult `json:"kernels,omitempty"`
	// CPUKernels are the module's CPU products, with kernels.wasm and without.
	CPUKernels []cpuKernelResult `json:"cpu_kernels,omitempty"`
	// Capabilities are what the planner's predictions were made from.
	Capabilities *planner.Capabilities `json:"capabilities,omitempty"`
}

func runBench(args []string) error {
	fs := newFlags("bench", "[flags]", `Measures prefill and decode tokens/s of every uniform granularity and two
Mix'n'Match presets, on the CPU backend (Go inside the wasm module) and the GPU
backend (WGSL through the module's webgpu imports), for the default model and
a larger random-weight model where compute dominates. Then times the matrix
kernels at the sizes those models use (GFLOP/s and weight GB/s).

The decode speed-up of S over XL is printed next to the ideal one, the ratio
of their FLOPs per token (2·parameters used; attention over the cache left
out). The defaults keep the run short; raise -decode and -prefill for steadier
numbers.

With -predict (the default) it first measures this device the way matedge
plan does, and prints next to each measured decode speed the speed the planner
predicts for it, so the planner's model can be checked against reality.`)
	asJSON := fs.Bool("json", false, "print one JSON object")
	decode := fs.Int("decode", 8, "tokens to time decoding over, per run")
	prefill := fs.Int("prefill", 16, "prompt bytes to time prefill over, per run")
	models := fs.String("models", "default,large", "models: default (embedded) and/or large (random weights of -large)")
	large := fs.String("large", "512,2048,8", "the large model: dim, XL hidden width, layers")
	backends := fs.String("backends", "cpu,cpu-go,gpu", "backends to time: cpu (the module's CPU path with kernels.wasm linked), cpu-go (without it: its plain-Go kernels), gpu")
	cpuKernels := fs.Bool("cpu-kernels", true, "time the CPU path's products at the model's and the peer's shapes, with kernels.wasm and without (bench_kernel)")
	peer := fs.String("peer", "", "results.json of onnxruntime-web's MatMul harness, printed beside the CPU products at the same shapes")
	precision := fs.String("precision", "f32", "GPU weights: f32 or f16")
	kernels := fs.Bool("kernels", true, "time the matrix kernels too")
	predict := fs.Bool("predict", true, "measure capabilities first and show the planner's predicted decode tokens/s")
	wasmPath := fs.String("wasm", "", "matedge.wasm to run; empty finds it next to this program or in $"+host.ModuleEnv)
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", rest[0])
	}
	if *decode < 1 || *prefill < 1 {
		return fmt.Errorf("-decode %d -prefill %d: want counts ≥ 1", *decode, *prefill)
	}
	var dims [3]int
	if _, err := fmt.Sscanf(*large, "%d,%d,%d", &dims[0], &dims[1], &dims[2]); err != nil {
		return fmt.Errorf("-large %q: want dim,hidden,layers: %v", *large, err)
	}
	if err := checkBenchFlags(*models, *backends, *precision, largeConfig(dims)); err != nil {
		return err
	}

	ctx := context.Background()
	st := newStatus("bench", *quiet)
	defer st.Stop()
	var clockKind string
	cpuClock, clockKind = host.ThreadClock()
	report := benchReport{Precision: *precision, Clock: clockKind}
	if *predict {
		st.Stage("measuring this device for the planner's predictions")
		budget := planner.Budget{}
		caps, _, err := host.MeasureDevice(ctx, *wasmPath, &budget, false)
		if err != nil {
			return fmt.Errorf("measuring this device: %w", err)
		}
		report.Capabilities = &caps
	}
	var configs []model.Config
	for _, name := range strings.Split(*models, ",") {
		var file []byte
		switch name {
		case "default":
			file = defaultmodel.Bytes
		case "large":
			c := largeConfig(dims)
			var buf bytes.Buffer
			if err := weights.Write(&buf, weights.Random(c, 1), model.Tokenizer{}, map[string]string{"kind": "random"}); err != nil {
				return err
			}
			file = buf.Bytes()
			name = fmt.Sprintf("large (d=%d, h=%d, %d layers, random)", c.Dim, c.Hidden(), c.Layers)
		default:
			return fmt.Errorf("-models: unknown model %q (want default or large)", name)
		}
		bm, device, err := benchModule(ctx, st, *wasmPath, name, file, strings.Split(*backends, ","), *precision, *prefill, *decode)
		if err != nil {
			return err
		}
		if report.Capabilities != nil {
			if err := predictRuns(*report.Capabilities, file, &bm); err != nil {
				return err
			}
		}
		if device != "" {
			report.Device = device
		}
		report.Models = append(report.Models, bm)
		configs = append(configs, bm.Config)
		st.Idle()
		if !*asJSON {
			printModel(os.Stdout, bm)
		}
	}
	if *cpuKernels {
		var peerRuns []peerRun
		if *peer != "" {
			var err error
			if peerRuns, err = readPeer(*peer); err != nil {
				return err
			}
		}
		results, err := cpuKernelGrid(ctx, *wasmPath, configs, peerRuns)
		if err != nil {
			return err
		}
		report.CPUKernels = results
		if !*asJSON {
			printCPUKernels(os.Stdout, results)
		}
	}
	if *kernels {
		st.Stage("timing the matrix kernels on the GPU")
		device, results, err := kernelGrid(configs, *prefill)
		st.Idle()
		if err != nil && !errors.Is(err, webgpu.ErrNoAdapter) {
			return err
		}
		report.Kernels = results
		if report.Device == "" {
			report.Device = device
		}
		if !*asJSON {
			printKernels(os.Stdout, device, results, err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	fmt.Printf("\ndevice: %s; the CPU backend and products timed in %s\n", orNone(report.Device), report.Clock)
	return nil
}

// largeConfig is the -large model: dim, XL hidden width, layers.
func largeConfig(dims [3]int) model.Config {
	return model.Config{Vocab: 256, Dim: dims[0], Layers: dims[2], Heads: max(dims[0]/64, 1), FFNWidths: model.NestedWidths(dims[1]),
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
}

// checkBenchFlags refuses bench's list flags before anything is measured:
// a bad backend used to surface only after 20 s of benchmarks, with exit 0.
func checkBenchFlags(models, backends, precision string, large model.Config) error {
	for _, b := range strings.Split(backends, ",") {
		if b != planner.BackendCPU && b != backendCPUGo && b != planner.BackendGPU {
			return fmt.Errorf("-backends: unknown backend %q (want cpu, cpu-go and/or gpu)", b)
		}
	}
	if precision != "f32" && precision != "f16" {
		return fmt.Errorf("-precision %q: want f32 or f16", precision)
	}
	for _, name := range strings.Split(models, ",") {
		switch name {
		case "default":
		case "large":
			if err := large.Validate(); err != nil {
				return fmt.Errorf("-large: %w", err)
			}
		default:
			return fmt.Errorf("-models: unknown model %q (want default and/or large)", name)
		}
	}
	return nil
}

// predictRuns fills each run's PredictedTPS with the planner's prediction.
func predictRuns(caps planner.Capabilities, file []byte, bm *benchModel) error {
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

func orNone(s string) string {
	if s == "" {
		return "none (no GPU adapter)"
	}
	return s
}

// benchModule times every mix of one model on each backend, in one module.
func benchModule(ctx context.Context, st *status, wasmPath, name string, file []byte, backends []string, precision string, prefill, decode int) (benchModel, string, error) {
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
		if set == host.KernelsGo && !slices.Contains(backends, backendCPUGo) {
			continue
		}
		mod, closeModule, err := host.StartModule(ctx, wasmPath, host.Config{GPU: open, Kernels: set})
		if err != nil {
			return benchModel{}, "", err
		}
		defer closeModule()
		if info, _, err = mod.Load(ctx, bytes.NewReader(file), int64(len(file)), "XL"); err != nil {
			return benchModel{}, "", fmt.Errorf("%s: %w", name, err)
		}
		mods[set] = mod
	}
	c := info.Header.Config
	bm := benchModel{Name: name, Config: c}
	specs := []string{}
	for g := range c.Granularities() {
		specs = append(specs, c.GranularityName(g))
	}
	presets := mixPresets(c)
	for _, p := range presets {
		specs = append(specs, p.name)
	}
	text := strings.Repeat(benchText, prefill/len(benchText)+1)[:prefill]
	for _, backend := range backends {
		opts := abi.Options{Backend: backend, Precision: precision}
		st.Stage("%s on %s: warming up (pipelines, weights)", name, backend)
		mod := mods[host.KernelsSIMD]
		if backend == backendCPUGo {
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
			run := benchRun{Backend: backend, Mix: spec}
			mixSpec := spec
			for _, p := range presets {
				if p.name == spec {
					mixSpec = p.spec
				}
			}
			mix, err := c.ParseMix(mixSpec)
			if err != nil {
				return bm, device, err
			}
			st.Stage("%s on %s: timing mix %s", name, backend, spec)
			run.Layers = c.MixNames(mix)
			run.FLOPsPerToken = 2 * float64(c.NonEmbeddingParams(mix)+c.Vocab*c.Dim)
			if warmErr != nil {
				run.Error = oneLine(warmErr)
			} else if err := timeRun(ctx, mod, mixSpec, opts, text, decode, &run); err != nil {
				run.Error = oneLine(err)
			}
			bm.Runs = append(bm.Runs, run)
		}
		small, big := bm.find(backend, c.GranularityName(0)), bm.find(backend, c.GranularityName(c.Granularities()-1))
		if small != nil && big != nil && small.Error == "" && big.Error == "" {
			bm.Speedups = append(bm.Speedups, speedup{Backend: backend, Realized: small.DecodeTPS / big.DecodeTPS, Ideal: big.FLOPsPerToken / small.FLOPsPerToken})
		}
	}
	return bm, device, nil
}

func (bm *benchModel) find(backend, mix string) *benchRun {
	for i := range bm.Runs {
		if bm.Runs[i].Backend == backend && bm.Runs[i].Mix == mix {
			return &bm.Runs[i]
		}
	}
	return nil
}

type preset struct{ name, spec string }

// mixPresets are two Mix'n'Match models: the small granularity in the first
// half of the layers and XL in the rest, and the middle two alternating.
func mixPresets(c model.Config) []preset {
	g := c.Granularities()
	half, alternate := make([]string, c.Layers), make([]string, c.Layers)
	for l := range c.Layers {
		half[l] = c.GranularityName(g - 1)
		if l < c.Layers/2 {
			half[l] = c.GranularityName(0)
		}
		alternate[l] = c.GranularityName(min(g-1, g/2-1+l%2))
	}
	return []preset{
		{c.GranularityName(0) + "→" + c.GranularityName(g-1), strings.Join(half, ",")},
		{c.GranularityName(min(g-1, g/2-1)) + "/" + c.GranularityName(min(g-1, g/2)), strings.Join(alternate, ",")},
	}
}

// timeRun times the prompt's first step (prefill of every prompt token and
// one sample) and then decode single-token steps.
func timeRun(ctx context.Context, mod *host.Module, mix string, opts abi.Options, text string, decode int, run *benchRun) error {
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

func printModel(w io.Writer, bm benchModel) {
	fmt.Fprintf(w, "%s: vocab %d, dim %d, %d layers, FFN widths %v\n", bm.Name, bm.Config.Vocab, bm.Config.Dim, bm.Config.Layers, bm.Config.FFNWidths)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tmix\tMFLOP/token\tprefill tok/s\tdecode tok/s\tplanner predicted\t")
	for _, r := range bm.Runs {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t–\t–\t–\t%s\n", r.Backend, r.Mix, r.FLOPsPerToken/1e6, r.Error)
			continue
		}
		predicted := "–"
		if r.PredictedTPS > 0 {
			predicted = fmt.Sprintf("%.1f (%.2f×)", r.PredictedTPS, r.PredictedTPS/r.DecodeTPS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.1f\t%.1f\t%s\t\n", r.Backend, r.Mix, r.FLOPsPerToken/1e6, r.PrefillTPS, r.DecodeTPS, predicted)
	}
	tw.Flush()
	for _, s := range bm.Speedups {
		fmt.Fprintf(w, "decode speed-up of S over XL on %s: %.2f× realized, %.2f× ideal (FLOP ratio)\n", s.Backend, s.Realized, s.Ideal)
	}
	fmt.Fprintln(w)
}

func printKernels(w io.Writer, device string, results []kernelResult, err error) {
	if err != nil {
		fmt.Fprintf(w, "kernels: skipped: %v\n", err)
		return
	}
	fmt.Fprintf(w, "kernels on %s:\n", device)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kernel\tshape\tms\tGFLOP/s\tweight GB/s\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.2f\t%.2f\t\n", r.Kernel, r.Shape, r.Seconds*1e3, r.GFLOPs, r.GBs)
	}
	tw.Flush()
}

// kernelGrid times the matrix kernels natively at the shapes the models
// use: [dim][dim] (attention), [hidden][dim] (FFN), [vocab][dim] (head), in
// f32 and f16, matvec for decode and matmul for a prefill of tokens rows.
func kernelGrid(configs []model.Config, tokens int) (string, []kernelResult, error) {
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
	var results []kernelResult
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
func timeKernel(d webgpu.Device, pipes *webgpu.Pipelines, kernel string, rows, cols, tokens int) (kernelResult, error) {
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
		return kernelResult{}, err
	}
	x, err := buffer(4*in, true)
	if err != nil {
		return kernelResult{}, err
	}
	o, err := buffer(4*out, false)
	if err != nil {
		return kernelResult{}, err
	}
	defer func() { d.DestroyBuffer(w); d.DestroyBuffer(x); d.DestroyBuffer(o) }()

	k := shaders.Get(kernel)
	prog := k.Program(nil)
	p, err := pipes.Get(prog.Key, prog.Source, prog.Bindings)
	if err != nil {
		return kernelResult{}, err
	}
	var params []byte
	var groups [3]uint32
	switch kernel {
	case "matvec", "matvec_f16":
		params, groups = k.Pack(rows, cols, 0, 0, 0), shaders.Groups(rows, 64)
	case "matvec4":
		params, groups = k.Pack(rows, cols, 0, 0, 0), shaders.Groups((rows+3)/4, 64)
	case "matvec_t":
		params, groups = k.Pack(rows, cols, 0, 0, 0), shaders.Groups(cols, 64)
	case "matvec_t_f16":
		params, groups = k.Pack(rows, cols, 0, 0, 0), shaders.Groups(cols/2, 64)
	default:
		params, groups = k.Pack(rows, cols, tokens, 0, 0, 0), [3]uint32{uint32((rows + 31) / 32), uint32((tokens + 31) / 32), 1}
	}
	bindings := []webgpu.Binding{{Buffer: w}, {Buffer: x}, {Buffer: o}}
	dispatch := func(n int) (time.Duration, error) {
		start := time.Now()
		for range n {
			if err := d.Dispatch(p, params, bindings, groups); err != nil {
				return 0, err
			}
		}
		_, err := webgpu.ReadNow(d, o, 0, 4)
		return time.Since(start), err
	}
	if _, err := dispatch(1); err != nil { // compile and warm up
		return kernelResult{}, err
	}
	n := 1
	var elapsed time.Duration
	for {
		if elapsed, err = dispatch(n); err != nil {
			return kernelResult{}, err
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
	return kernelResult{Kernel: kernel, Shape: shape, Seconds: sec, GFLOPs: flops / sec / 1e9, GBs: float64(weightBytes) / sec / 1e9}, nil
}
