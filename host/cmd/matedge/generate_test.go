package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerateSaysWhy: generate prints one stderr line with the mix, the
// backend and why; -q silences it; -json has the plan's fields under "plan".
func TestGenerateSaysWhy(t *testing.T) {
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	base := []string{"generate", "-model", path, "-n", "2", "-temperature", "0"}

	_, stderr, code := run(append(base, "-mix", "S", "-backend", "cpu")...)
	if code != 0 || strings.TrimSpace(stderr) != "matedge generate: mix S (-mix) on cpu (-backend)" {
		t.Errorf("-mix S -backend cpu: exit %d, stderr %q; want one line naming the flags", code, stderr)
	}
	if _, stderr, code := run(append(base, "-mix", "S", "-backend", "cpu", "-q")...); code != 0 || stderr != "" {
		t.Errorf("-q: exit %d, stderr %q; want nothing", code, stderr)
	}

	stdout, stderr, code := run(append(base, "-mix", "auto", "-backend", "cpu", "-json")...)
	if code != 0 {
		t.Fatalf("-mix auto: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(lines[0], "matedge generate: measuring this device") || !strings.Contains(last, "planned for budget balanced") || !strings.Contains(last, "tokens/s predicted") {
		t.Errorf("-mix auto stderr:\n%s\nwant a measuring line, then the plan's mix, backend and reasons", stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	plan, _ := out["plan"].(map[string]any)
	if plan == nil || plan["spec"] == nil || plan["backend"] != "cpu" || plan["plan"] != nil {
		t.Errorf("-json plan = %v; want the plan's fields (spec, backend, …) flat under plan", out["plan"])
	}
	if !strings.Contains(last, "mix "+plan["spec"].(string)+" on cpu") {
		t.Errorf("stderr line %q does not name the plan's mix %v", last, plan["spec"])
	}

	if _, stderr, code := run(append(base, "-backend", "tpu")...); code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "want cpu, gpu or auto") {
		t.Errorf("-backend tpu: exit %d, stderr %q; want one line refusing it", code, stderr)
	}
}

// TestGenerateTextFlags: -stop ends before the string, -context picks the
// policy for a prompt longer than the context, and a bad one is refused.
func TestGenerateTextFlags(t *testing.T) {
	run := matedge(t)
	// The embedded default model: its text is UTF-8, which flags carry.
	base := []string{"generate", "-q", "-json", "-mix", "S", "-backend", "cpu", "-temperature", "0"}
	decode := func(stdout string) (out struct {
		Text   string `json:"text"`
		Reason string `json:"reason"`
		Tokens []int  `json:"tokens"`
	}) {
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("%v: %s", err, stdout)
		}
		return out
	}
	stdout, stderr, code := run(append(base, "-n", "20")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	plain := decode(stdout)
	stop := plain.Text[8:10]
	stdout, stderr, code = run(append(base, "-n", "20", "-stop", stop)...)
	if got := decode(stdout); code != 0 || got.Reason != "stop" || got.Text != plain.Text[:strings.Index(plain.Text, stop)] {
		t.Errorf("-stop %q: exit %d %s, text %q reason %q; want %q, stop", stop, code, stderr, got.Text, got.Reason, plain.Text[:strings.Index(plain.Text, stop)])
	}
	long := strings.Repeat("a truth ", 200)
	if _, stderr, code := run(append(base, "-n", "2", "-prompt", long)...); code == 0 || !strings.Contains(stderr, "-context truncate-left") {
		t.Errorf("a long prompt: exit %d, %q; want a refusal that names -context", code, stderr)
	}
	if stdout, stderr, code := run(append(base, "-n", "2", "-prompt", long, "-context", "truncate-left")...); code != 0 || len(decode(stdout).Tokens) != 2 {
		t.Errorf("-context truncate-left: exit %d, %s %s", code, stderr, stdout)
	}
	if _, stderr, code := run(append(base, "-context", "wrap")...); code == 0 || !strings.Contains(stderr, "want refuse, truncate-left or slide") {
		t.Errorf("-context wrap: exit %d, %q", code, stderr)
	}
}

// TestGenerateBudgetIsHard: with -mix auto, a budget nothing fits is an
// error that says which limit, unless -best-effort, which runs the smallest
// plan and says so.
func TestGenerateBudgetIsHard(t *testing.T) {
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	base := []string{"generate", "-model", path, "-n", "2", "-temperature", "0", "-backend", "cpu", "-max-memory", "1kB"}
	if _, stderr, code := run(base...); code == 0 || !strings.Contains(stderr, "nothing fits the budget balanced (memory)") || !strings.Contains(stderr, "-best-effort") {
		t.Errorf("an impossible budget: exit %d, %q; want a refusal naming the limit", code, stderr)
	}
	stdout, stderr, code := run(append(base, "-best-effort", "-json")...)
	if code != 0 || !strings.Contains(stderr, "so the smallest plan runs") {
		t.Fatalf("-best-effort: exit %d, %q", code, stderr)
	}
	var out struct {
		Mix  []string `json:"mix"`
		Plan struct {
			Error      string `json:"error"`
			Constraint string `json:"constraint"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Plan.Error == "" || out.Plan.Constraint != "memory" || out.Mix[0] != "S" {
		t.Errorf("-best-effort -json: %v %+v; want the smallest plan with its error", err, out)
	}
	if _, stderr, code := run("generate", "-model", path, "-n", "2", "-max-memory", "lots"); code == 0 || !strings.Contains(stderr, "-max-memory") {
		t.Errorf("-max-memory lots: exit %d, %q", code, stderr)
	}
}
