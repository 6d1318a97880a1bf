package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matedge/matedge/wasm/planner"
)

func profilePath(name string) string {
	return filepath.Join("..", "..", "..", "wasm", "planner", "testdata", name+".json")
}

type planOutput struct {
	Model        string                   `json:"model"`
	Capabilities planner.Capabilities     `json:"capabilities"`
	Budget       planner.Budget           `json:"budget"`
	Plan         *planner.Plan            `json:"plan"`
	Error        *planner.ConstraintError `json:"error"`
	Notes        []string                 `json:"notes"`
}

func TestPlanCommand(t *testing.T) {
	run := matedge(t)
	decode := func(t *testing.T, stdout string) planOutput {
		t.Helper()
		var out planOutput
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, stdout)
		}
		return out
	}

	t.Run("profile", func(t *testing.T) {
		stdout, stderr, code := run("plan", "-caps", profilePath("browser-cpu"), "-budget", "best", "-json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		out := decode(t, stdout)
		if out.Plan == nil || out.Plan.Backend != planner.BackendCPU || out.Plan.Spec != "XL" || out.Model != "default model" {
			t.Fatalf("plan = %+v; want XL on cpu for the default model", out.Plan)
		}
		if out.Capabilities.Adapter != nil || out.Budget.Name != "best" || len(out.Plan.Reasons) == 0 {
			t.Errorf("capabilities %+v, budget %+v, reasons %q", out.Capabilities, out.Budget, out.Plan.Reasons)
		}
	})

	t.Run("no fit", func(t *testing.T) {
		stdout, stderr, code := run("plan", "-caps", profilePath("desktop-dgpu"), "-max-memory", "100kB", "-json")
		if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "memory") {
			t.Fatalf("exit %d, stderr %q; want 1 and one line naming memory", code, stderr)
		}
		out := decode(t, stdout)
		if out.Plan != nil || out.Error == nil || out.Error.Constraint != planner.ConstraintMemory || out.Error.Limit != 100e3 {
			t.Errorf("plan %+v, error %+v; want a memory constraint at 100 kB", out.Plan, out.Error)
		}
	})

	t.Run("text", func(t *testing.T) {
		// The default model is 1.1 MiB: the desktop GPU's 0.8 ms step
		// overhead, not its bandwidth, bounds it at about 1000 tokens/s,
		// which still beats the ~400 assumed for its CPU.
		stdout, stderr, code := run("plan", "-caps", profilePath("desktop-dgpu"), "-target-tps", "50")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{"Capabilities (from ", "adapter    nvidia, lovelace", "benchmark  gpu:", "mix ", "backend    gpu", "Why:", "≥ 50 tokens/s"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}
	})

	t.Run("detect", func(t *testing.T) {
		stdout, stderr, code := run("plan", "-backend", "cpu", "-budget", "best", "-json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		out := decode(t, stdout)
		if out.Capabilities.Source != "host" || len(out.Capabilities.Benchmarks) == 0 || out.Capabilities.Benchmarks[0].Backend != planner.BackendCPU {
			t.Fatalf("capabilities = %+v; want this host with a cpu benchmark", out.Capabilities)
		}
		if out.Plan == nil || out.Plan.Backend != planner.BackendCPU || !out.Plan.SpeedMeasured {
			t.Errorf("plan = %+v; want a cpu plan predicted from the benchmark", out.Plan)
		}

		// The benchmark is stored: the next plan reuses it (and says so),
		// -rebenchmark measures again.
		stdout, stderr, code = run("plan", "-backend", "cpu", "-budget", "best", "-json")
		if code != 0 {
			t.Fatalf("second plan: exit %d: %s", code, stderr)
		}
		again := decode(t, stdout)
		if again.Capabilities.Benchmarks[0] != out.Capabilities.Benchmarks[0] || !strings.Contains(strings.Join(again.Notes, "\n"), "stored") {
			t.Errorf("second plan: benchmark %+v, notes %q; want the stored %+v and a note", again.Capabilities.Benchmarks[0], again.Notes, out.Capabilities.Benchmarks[0])
		}
		stdout, _, _ = run("plan", "-backend", "cpu", "-budget", "best", "-json", "-rebenchmark")
		if fresh := decode(t, stdout); strings.Contains(strings.Join(fresh.Notes, "\n"), "stored") {
			t.Errorf("-rebenchmark: notes %q; want a fresh measurement", fresh.Notes)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, args := range [][]string{
			{"plan", "-max-download", "lots"},
			{"plan", "-budget", "cheap"},
			{"plan", "-caps", "missing.json"},
			{"plan", "-caps", profilePath("phone"), "-target-tps", "NaN"},
		} {
			if _, stderr, code := run(args...); code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("%q: exit %d, stderr %q; want 1 and one line", args, code, stderr)
			}
		}
	})
}

func TestParseBytes(t *testing.T) {
	tests := map[string]int64{"150000": 150000, "150kB": 150000, "1.5GB": 1.5e9, "512MiB": 512 << 20, " 2 gib ": 2 << 30, "7b": 7}
	for in, want := range tests {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-5", "1e30", "five"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) succeeded", in)
		}
	}
}

// TestFlagsCheckedFirst: bench and plan refuse bad flags at once, in one line
// naming the flag and the limit; bench -backends tpu used to run 22 s of
// benchmarks and exit 0, plan -target-tps 1e308 said "want ≥ 0" (issue 15,
// defect 21).
func TestFlagsCheckedFirst(t *testing.T) {
	run := matedge(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "-backends", "tpu"}, `unknown backend "tpu"`},
		{[]string{"bench", "-backends", "cpu,"}, `unknown backend ""`},
		{[]string{"bench", "-precision", "f8"}, "-precision"},
		{[]string{"bench", "-models", "huge"}, `unknown model "huge"`},
		{[]string{"bench", "-temperature", "-1"}, "-temperature -1"},
		{[]string{"bench", "-large", "512,2048,0"}, "-large"},
		{[]string{"plan", "-target-tps", "1e308"}, "want 0 to 1e+09"},
		{[]string{"plan", "-target-tps", "NaN"}, "want 0 to 1e+09"},
		{[]string{"plan", "-backend", "tpu"}, `backend "tpu"`},
	} {
		stdout, stderr, code := run(tt.args...)
		if code != 1 || stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stdout %.60q, stderr %q; want exit 1 and one line saying %q", tt.args, code, stdout, stderr, tt.want)
		}
	}
}
