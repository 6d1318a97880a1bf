package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/host/bench"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/engine"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights/defaultmodel"
)

func init() {
	register(command{name: "bench", summary: "tokens/s of every submodel on the CPU and GPU backends, and kernel throughput", run: runBench})
}

// benchReport (what -json prints) and backendCPUGo (the CPU backend
// without kernels.wasm) are the command's names for host/bench's, which its
// tests use.
type benchReport = bench.Report

const backendCPUGo = bench.BackendCPUGo

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
	temperature := fs.Float64("temperature", 0, "sampling temperature of the timed generations: 0 is greedy; at a temperature every step also ranks the vocabulary and draws a token (generate's default is 0.8)")
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
	if err := engine.CheckOptions(abi.Options{Temperature: float32(*temperature)}); err != nil {
		return fmt.Errorf("-temperature %g: %v", *temperature, err)
	}
	var dims [3]int
	if _, err := fmt.Sscanf(*large, "%d,%d,%d", &dims[0], &dims[1], &dims[2]); err != nil {
		return fmt.Errorf("-large %q: want dim,hidden,layers: %v", *large, err)
	}
	if err := checkBenchFlags(*models, *backends, *precision, bench.LargeConfig(dims)); err != nil {
		return err
	}

	ctx := context.Background()
	st := newStatus("bench", *quiet)
	defer st.Stop()
	cpuClock, clockKind := host.ThreadClock()
	o := bench.Options{Wasm: *wasmPath, Backends: strings.Split(*backends, ","), Precision: *precision, Prefill: *prefill, Decode: *decode,
		Temperature: float32(*temperature),
		CPUClock:    cpuClock, Progress: func(stage string) { st.Stage("%s", stage) }}
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
	configs, err := benchModels(ctx, st, o, &report, strings.Split(*models, ","), dims, *asJSON)
	if err != nil {
		return err
	}
	if *cpuKernels {
		if err := benchCPUKernels(ctx, o, configs, *peer, &report, *asJSON); err != nil {
			return err
		}
	}
	if *kernels {
		st.Stage("timing the matrix kernels on the GPU")
		device, results, err := bench.GPUKernels(configs, *prefill)
		st.Idle()
		if err != nil && !errors.Is(err, webgpu.ErrNoAdapter) {
			return err
		}
		report.Kernels = results
		if report.Device == "" {
			report.Device = device
		}
		if !*asJSON {
			bench.WriteKernels(os.Stdout, device, results, err)
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

// benchModels measures each model -models names (printing each as it is
// done unless the report is JSON) and returns their configs.
func benchModels(ctx context.Context, st *status, o bench.Options, report *benchReport, names []string, dims [3]int, asJSON bool) ([]model.Config, error) {
	var configs []model.Config
	for _, name := range names {
		var file []byte
		switch name {
		case "default":
			file = defaultmodel.Bytes
		case "large":
			c := bench.LargeConfig(dims)
			var err error
			if file, err = bench.LargeFile(c); err != nil {
				return nil, err
			}
			name = fmt.Sprintf("large (d=%d, h=%d, %d layers, random)", c.Dim, c.Hidden(), c.Layers)
		default:
			return nil, fmt.Errorf("-models: unknown model %q (want default or large)", name)
		}
		bm, device, err := bench.MeasureModel(ctx, o, name, file)
		if err != nil {
			return nil, err
		}
		if report.Capabilities != nil {
			if err := bench.PredictRuns(*report.Capabilities, file, &bm); err != nil {
				return nil, err
			}
		}
		if device != "" {
			report.Device = device
		}
		report.Models = append(report.Models, bm)
		configs = append(configs, bm.Config)
		st.Idle()
		if !asJSON {
			bench.WriteModel(os.Stdout, bm)
		}
	}
	return configs, nil
}

// benchCPUKernels times the module's CPU products, beside the peer's
// results when -peer names them.
func benchCPUKernels(ctx context.Context, o bench.Options, configs []model.Config, peer string, report *benchReport, asJSON bool) error {
	var peerRuns []bench.PeerRun
	if peer != "" {
		var err error
		if peerRuns, err = bench.ReadPeer(peer); err != nil {
			return err
		}
	}
	results, err := bench.CPUKernels(ctx, o.Wasm, configs, peerRuns, o.CPUClock)
	if err != nil {
		return err
	}
	report.CPUKernels = results
	if !asJSON {
		bench.WriteCPUKernels(os.Stdout, results)
	}
	return nil
}

// checkBenchFlags refuses bench's list flags before anything is measured:
// a bad backend used to surface only after 20 s of benchmarks, with exit 0.
func checkBenchFlags(models, backends, precision string, large model.Config) error {
	for _, b := range strings.Split(backends, ",") {
		if b != planner.BackendCPU && b != bench.BackendCPUGo && b != planner.BackendGPU {
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

func orNone(s string) string {
	if s == "" {
		return "none (no GPU adapter)"
	}
	return s
}
