package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

func init() {
	register(command{name: "plan", summary: "pick the submodel a device should run, and say why", run: runPlan})
}

func runPlan(args []string) error {
	fs := newFlags("plan", "[flags]", `Plans which submodel of a weights file a device should run: the per-layer
mix, the backend, the bytes to download, the memory, the predicted decode
speed and the expected loss, with the reasons. Without -caps it describes this
machine (memory, cores, the native WebGPU adapter) and times decode steps
inside the wasm module on each backend it can run: about 200 ms on the CPU,
and on the GPU about a second (S and XL of the default model and of a wider
random model, in turns, to fit a cost per dispatch, per row and per byte).
The result is kept for a week per device (-rebenchmark measures again); -caps
reads a capabilities file instead (examples in wasm/planner/testdata).`)
	modelPath := fs.String("model", "", "weights file (.matw) to plan; empty plans the embedded default model")
	capsPath := fs.String("caps", "", "capabilities JSON file; empty detects and benchmarks this machine")
	budgetName := fs.String("budget", "balanced", "preset: fast, balanced or best")
	target := fs.Float64("target-tps", -1, "decode tokens/s the plan must reach; -1 keeps the preset's")
	maxDownload := fs.String("max-download", "", "largest download (bytes, or with kB, MB, GB, KiB, MiB, GiB); empty keeps the preset's")
	maxMemory := fs.String("max-memory", "", "most memory the plan may keep (same units); empty keeps the preset's")
	backend := fs.String("backend", "auto", "cpu, gpu or auto")
	wasmPath := fs.String("wasm", "", "matedge.wasm for the benchmark; empty finds it next to this program or in $"+host.ModuleEnv)
	asJSON := fs.Bool("json", false, "print one JSON object: capabilities, budget, plan (or error)")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	rebenchmark := fs.Bool("rebenchmark", false, "measure the device even when a benchmark stored in the last week exists")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", rest[0])
	}

	budget, err := budgetFromFlags(*budgetName, *target, *maxDownload, *maxMemory)
	if err != nil {
		return err
	}
	budget.Backend = *backend
	if err := budget.Validate(); err != nil { // before the device is measured
		return err
	}

	file, size, name, err := host.OpenModel(*modelPath)
	if err != nil {
		return err
	}
	h, err := weights.ReadHeader(file, size)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}

	var caps planner.Capabilities
	var notes []string
	if *capsPath != "" {
		caps, err = host.ReadCapabilities(*capsPath)
	} else {
		st := newStatus("plan", *quiet)
		st.Stage("measuring this device (decode steps of S and XL on each backend)")
		caps, notes, err = host.MeasureDevice(context.Background(), *wasmPath, &budget, *rebenchmark)
		st.Idle()
		st.Stop()
	}
	if err != nil {
		return err
	}

	plan, planErr := host.ChoosePlan(caps, h, budget)
	var noFit *planner.ConstraintError
	if planErr != nil && !errors.As(planErr, &noFit) {
		return planErr
	}
	if *asJSON {
		return printPlanJSON(os.Stdout, name, caps, notes, budget, plan, planErr, noFit)
	}
	source := "from " + *capsPath
	if *capsPath == "" {
		source = "detected on this machine"
	}
	host.WriteCapabilities(os.Stdout, caps, source, notes)
	budgetText := budget.String()
	if h.IsVision() { // the target rate is read as images per second
		budgetText = strings.Replace(budgetText, "tokens/s", "images/s", 1)
	}
	fmt.Printf("\nPlan for %s (%d layers, FFN widths %v), budget %s:\n", name, h.Config.Layers, h.Config.FFNWidths, budgetText)
	if planErr != nil {
		return planErr
	}
	host.WritePlan(os.Stdout, h, plan)
	return nil
}

// parseBytes reads "150000", "150kB", "1.5GB", "512MiB".
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		scale  float64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1}}
	lower, scale := strings.ToLower(strings.TrimSpace(s)), 1.0
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			lower, scale = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix)), u.scale
			break
		}
	}
	v, err := strconv.ParseFloat(lower, 64)
	if err != nil || !(v >= 0) || v*scale >= 1<<62 {
		return 0, errors.New("want a size such as 150000, 150MB or 1.5GiB")
	}
	return int64(v * scale), nil
}

// printPlanJSON prints plan's one JSON object: the capabilities, notes and
// budget it was made from, and the plan or, when nothing fits, the error.
func printPlanJSON(w io.Writer, name string, caps planner.Capabilities, notes []string, budget planner.Budget, plan planner.Plan, planErr error, noFit *planner.ConstraintError) error {
	out := struct {
		Model        string                   `json:"model"`
		Capabilities planner.Capabilities     `json:"capabilities"`
		Notes        []string                 `json:"notes,omitempty"`
		Budget       planner.Budget           `json:"budget"`
		Plan         *planner.Plan            `json:"plan"`
		Error        *planner.ConstraintError `json:"error,omitempty"`
	}{Model: name, Capabilities: caps, Notes: notes, Budget: budget, Error: noFit}
	if planErr == nil {
		out.Plan = &plan
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	return planErr
}

// budgetFromFlags is the budget preset name with the flags' overrides:
// a target rate other than -1, and -max-download and -max-memory when set.
func budgetFromFlags(preset string, target float64, maxDownload, maxMemory string) (planner.Budget, error) {
	budget, err := planner.Preset(preset)
	if err != nil {
		return budget, err
	}
	if target != -1 {
		budget.TargetTokensPerSecond = target // Validate refuses a negative, NaN or huge target
	}
	for _, o := range []struct {
		flag  string
		value string
		field *int64
	}{{"-max-download", maxDownload, &budget.MaxDownloadBytes}, {"-max-memory", maxMemory, &budget.MaxMemoryBytes}} {
		if o.value == "" {
			continue
		}
		n, err := parseBytes(o.value)
		if err != nil {
			return budget, fmt.Errorf("%s %q: %w", o.flag, o.value, err)
		}
		*o.field = n
	}
	return budget, nil
}
