package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/matedge/matedge/webgpu/webgputest"
)

// needGPU skips (fails under CI=true) when this machine has no adapter. The
// commands under test open the GPU in their own process, so a GPU crash
// there cannot take the test process down.
func needGPU(t *testing.T) {
	t.Helper()
	webgputest.Open(t).Close()
}

type generated struct {
	Tokens  []int     `json:"tokens"`
	Backend string    `json:"backend"`
	Plan    *planJSON `json:"plan"`
}

func generateJSON(t *testing.T, run func(args ...string) (string, string, int), args ...string) generated {
	t.Helper()
	stdout, stderr, code := run(append([]string{"generate", "-json", "-temperature", "0", "-n", "12"}, args...)...)
	if code != 0 {
		t.Fatalf("generate %v: exit %d: %s", args, code, stderr)
	}
	var out generated
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	return out
}

// TestGenerateGPU: generate -backend gpu runs end to end (the module under
// wazero, webgpuhost, the native device) and greedy tokens equal the CPU's;
// auto runs whichever backend the planner measured faster, with the same tokens.
func TestGenerateGPU(t *testing.T) {
	needGPU(t)
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	cpu := generateJSON(t, run, "-model", path, "-mix", "S,M,XL", "-backend", "cpu")
	for _, args := range [][]string{{"-backend", "gpu"}, {"-backend", "auto"}, {"-backend", "gpu", "-precision", "f16"}} {
		gpu := generateJSON(t, run, append([]string{"-model", path, "-mix", "S,M,XL"}, args...)...)
		if args[1] == "auto" {
			if gpu.Plan == nil || gpu.Plan.Backend != gpu.Backend || gpu.Plan.Spec != "S,M,XL" {
				t.Errorf("generate -backend auto ran on %q with plan %+v; want the plan's backend and the given mix", gpu.Backend, gpu.Plan)
			}
		} else if gpu.Backend != "gpu" {
			t.Errorf("generate %v ran on %q; want gpu", args, gpu.Backend)
		}
		if args[len(args)-1] != "f16" && !slices.Equal(gpu.Tokens, cpu.Tokens) {
			t.Errorf("generate %v tokens %v; -backend cpu gave %v", args, gpu.Tokens, cpu.Tokens)
		}
	}
}

func TestBenchJSON(t *testing.T) {
	needGPU(t)
	run := matedge(t)
	stdout, stderr, code := run("bench", "-json", "-models", "default", "-backends", "cpu,gpu", "-decode", "2", "-prefill", "4", "-kernels=false", "-cpu-kernels=false")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var report benchReport
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if report.Device == "" || len(report.Models) != 1 {
		t.Fatalf("bench -json = %+v", report)
	}
	m := report.Models[0]
	if len(m.Runs) != 2*6 || len(m.Speedups) != 2 {
		t.Fatalf("bench: %d runs (want 2 backends × 6 mixes), %d speed-ups (want 2)", len(m.Runs), len(m.Speedups))
	}
	for _, r := range m.Runs {
		// -prefill counts bytes; a BPE model makes fewer tokens of them.
		if r.Error != "" || r.DecodeTPS <= 0 || r.PrefillTPS <= 0 || r.PrefillTokens < 1 || r.PrefillTokens > 4 || r.PredictedTPS <= 0 {
			t.Errorf("bench run %+v", r)
		}
	}
}

// TestBenchCPUGo times the CPU backend with kernels.wasm linked and without
// it (cpu-go), sampling at a temperature, and needs no GPU.
func TestBenchCPUGo(t *testing.T) {
	run := matedge(t)
	stdout, stderr, code := run("bench", "-json", "-models", "default", "-backends", "cpu,cpu-go", "-decode", "2", "-prefill", "4",
		"-kernels=false", "-cpu-kernels=false", "-predict=false", "-temperature", "0.8")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var report benchReport
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	m := report.Models[0]
	if m.Temperature != 0.8 {
		t.Errorf("the report's temperature is %g, want the -temperature given (0.8)", m.Temperature)
	}
	if len(m.Runs) != 2*6 || len(m.Speedups) != 2 || m.Speedups[1].Backend != backendCPUGo {
		t.Fatalf("bench: %d runs (want 2 backends × 6 mixes), speed-ups %+v (want cpu and cpu-go)", len(m.Runs), m.Speedups)
	}
	for _, r := range m.Runs {
		if r.Error != "" || r.DecodeTPS <= 0 || r.PrefillTPS <= 0 {
			t.Errorf("bench run %+v", r)
		}
	}
	if report.Clock == "" {
		t.Error("the report does not say how the CPU runs were timed")
	}
}
