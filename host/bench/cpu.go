package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
)

// BackendCPUGo is the bench's name for the CPU backend of a module whose
// host did not link kernels.wasm: the module's plain-Go kernels.
const BackendCPUGo = "cpu-go"

// CPUKernelResult is one product of the module's CPU path timed with each
// kernel set (bench_kernel), and the peer's time at the same shape if given.
type CPUKernelResult struct {
	Kernel string  `json:"kernel"` // matvec, matvec_t or matmul (bench_kernel's names)
	Shape  string  `json:"shape"`  // M×K×N as the peer writes it: tokens × inputs × outputs
	FLOPs  float64 `json:"flops"`
	// GFLOP/s of the module with kernels.wasm linked (simd) and without (go).
	SIMD float64 `json:"simd_gflop_per_second"`
	Go   float64 `json:"go_gflop_per_second"`
	// Peer is onnxruntime-web's MatMul at this shape, from -peer (0 if none).
	Peer       float64 `json:"peer_gflop_per_second,omitempty"`
	PeerConfig string  `json:"peer_config,omitempty"`
}

// PeerRun is one row of the results.json that onnxruntime-web's MatMul
// harness writes (configs[].runs[]): C [M][N] = A [M][K] · B [K][N].
type PeerRun struct {
	Config  string
	M, K, N int
	GFLOPs  float64
}

// ReadPeer reads the f32 rows of a peer results.json.
func ReadPeer(path string) ([]PeerRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-peer: %w", err)
	}
	var doc struct {
		Configs []struct {
			Name string `json:"name"`
			Runs []struct {
				M, K, N int
				WDType  string  `json:"wdtype"`
				Opt     string  `json:"opt"`
				GFLOPs  float64 `json:"gflops"`
				Error   string  `json:"error"`
			} `json:"runs"`
		} `json:"configs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("-peer %s: %w", path, err)
	}
	var runs []PeerRun
	for _, c := range doc.Configs {
		for _, r := range c.Runs {
			if r.Error == "" && r.WDType == "f32" && r.Opt == "all" && r.GFLOPs > 0 {
				runs = append(runs, PeerRun{Config: c.Name, M: r.M, K: r.K, N: r.N, GFLOPs: r.GFLOPs})
			}
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("-peer %s: no f32 MatMul results in it", path)
	}
	return runs, nil
}

// cpuShape is one bench_kernel call: kernel 0 matvec (out [rows] = W
// [rows][cols]·x), 1 matvec_t (out [cols] = Wᵀ·x, W [rows][cols]), 2 matmul.
type cpuShape struct {
	kernel             int32
	rows, cols, tokens int
}

func (s cpuShape) name() string { return []string{"matvec", "matvec_t", "matmul"}[s.kernel] }

// peerShape is the shape in the peer's M×K×N terms.
func (s cpuShape) peerShape() (m, k, n int) {
	if s.kernel == 1 { // Wᵀ·x with W [rows][cols]: B as the peer stores it, [K][N]
		return 1, s.rows, s.cols
	}
	return s.tokens, s.cols, s.rows
}

func (s cpuShape) flops() float64 { return 2 * float64(s.rows) * float64(s.cols) * float64(s.tokens) }

// CPUKernels times bench_kernel in two modules, one with kernels.wasm
// linked and one without, interleaved, at the models' decode shapes and the
// peer's: matvec 1×1024×4096 and 1×4096×1024 (both weight layouts), and
// matmul 512³ and 1024³ (prefill).
func CPUKernels(ctx context.Context, wasmPath string, configs []model.Config, peer []PeerRun, cpuClock func() time.Duration) ([]CPUKernelResult, error) {
	if cpuClock == nil {
		cpuClock = wallClock
	}
	var shapes []cpuShape
	for _, c := range configs {
		for _, rows := range []int{c.Dim, c.Hidden(), c.Vocab} {
			if s := (cpuShape{0, rows, c.Dim, 1}); !slices.Contains(shapes, s) {
				shapes = append(shapes, s)
			}
		}
		if s := (cpuShape{1, c.Hidden(), c.Dim, 1}); !slices.Contains(shapes, s) {
			shapes = append(shapes, s)
		}
	}
	shapes = append(shapes,
		cpuShape{0, 4096, 1024, 1}, cpuShape{1, 1024, 4096, 1},
		cpuShape{0, 1024, 4096, 1}, cpuShape{1, 4096, 1024, 1},
		cpuShape{2, 512, 512, 512}, cpuShape{2, 1024, 1024, 1024})

	mods := map[string]*host.Module{}
	for _, set := range []string{host.KernelsSIMD, host.KernelsGo} {
		mod, closeModule, err := host.StartModule(ctx, wasmPath, host.Config{Kernels: set})
		if err != nil {
			return nil, err
		}
		defer closeModule()
		mods[set] = mod
	}
	var results []CPUKernelResult
	for _, s := range shapes {
		m, k, n := s.peerShape()
		r := CPUKernelResult{Kernel: s.name(), Shape: fmt.Sprintf("%d×%d×%d", m, k, n), FLOPs: s.flops()}
		// Three rounds, the sets alternating; the fastest of each is kept.
		best := map[string]time.Duration{}
		for range 3 {
			for _, set := range []string{host.KernelsSIMD, host.KernelsGo} {
				d, err := timeBenchKernel(ctx, mods[set], s, cpuClock)
				if err != nil {
					return nil, fmt.Errorf("%s %s with kernels %s: %w", r.Kernel, r.Shape, set, err)
				}
				if b, ok := best[set]; !ok || d < b {
					best[set] = d
				}
			}
		}
		r.SIMD = s.flops() / best[host.KernelsSIMD].Seconds() / 1e9
		r.Go = s.flops() / best[host.KernelsGo].Seconds() / 1e9
		for _, p := range peer {
			if p.M == m && p.K == k && p.N == n && (r.Peer == 0 || p.Config == "wasm-t1") {
				r.Peer, r.PeerConfig = p.GFLOPs, p.Config
			}
		}
		results = append(results, r)
	}
	return results, nil
}

// timeBenchKernel returns the time of one product: bench_kernel with as many
// repetitions as fill about 0.1 s, after one untimed call that allocates.
func timeBenchKernel(ctx context.Context, mod *host.Module, s cpuShape, cpuClock func() time.Duration) (time.Duration, error) {
	if err := mod.BenchKernel(ctx, s.kernel, s.rows, s.cols, s.tokens, 1); err != nil {
		return 0, err
	}
	reps := 1
	for {
		start := cpuClock()
		if err := mod.BenchKernel(ctx, s.kernel, s.rows, s.cols, s.tokens, reps); err != nil {
			return 0, err
		}
		elapsed := cpuClock() - start
		if elapsed > 100*time.Millisecond || reps >= 1<<20 {
			return elapsed / time.Duration(reps), nil
		}
		reps = max(2*reps, int(float64(reps)*0.12/max(elapsed.Seconds(), 1e-6)))
	}
}
