package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

func init() {
	register(command{name: "generate", summary: "generate text with a submodel of a weights file", run: runGenerate})
}

func runGenerate(args []string) error {
	fs := newFlags("generate", "[flags]", `Generates text with the matedge wasm module (run by wazero), streaming it to
stdout. The mix picks the submodel: S, M, L, XL (the nested granularities),
a comma list with one granularity per layer (Mix'n'Match), or auto.`)
	prompt := fs.String("prompt", "It is a truth universally acknowledged", "text to continue")
	n := fs.Int("n", 64, "tokens to generate")
	mix := fs.String("mix", "auto", "submodel: S, M, L, XL, auto, or one granularity per layer (S,M,L,XL)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	temperature := fs.Float64("temperature", 0.8, "sampling temperature; 0 is greedy")
	topK := fs.Int("top-k", 40, "sample from the K most likely tokens; 0 keeps all")
	topP := fs.Float64("top-p", 0.95, "sample from the smallest set with this much probability; 1 keeps all")
	backend := fs.String("backend", "auto", "cpu, gpu, or auto (the planner measures both and picks)")
	budgetName := fs.String("budget", "balanced", "what auto plans for: fast, balanced or best (see matedge plan -help)")
	verbose := fs.Bool("v", false, "print the plan's reasons to stderr when planning")
	draft := fs.String("draft", "", "self-speculative decoding: a smaller mix (S, M, S,M,S,M …) drafts -k tokens that the mix verifies in one pass, on the CPU; greedy output is unchanged. auto picks the granularity expected to pay most on this device")
	draftTokens := fs.Int("k", 0, "tokens the draft proposes per round (with -draft), 1…64; 0 chooses k round by round from the acceptance rate and the measured cost of draft and verify steps, down to plain decoding where speculation does not pay")
	route := fs.Float64("route", 0, "token routing: each token's FFN width per layer picked by the file's routers for a mean of about this fraction of XL's FFN FLOPs (0 < BUDGET ≤ 1; 0 is off), never wider than -mix (auto means XL here); CPU backend only")
	precision := fs.String("precision", "f32", "GPU weights: f32, or f16 (half the bytes; the CPU backend always uses f32)")
	modelPath := fs.String("model", "", "weights file (.matw); empty uses the embedded default model")
	wasmPath := fs.String("wasm", "", "matedge.wasm to run; empty finds it next to this program or in $"+host.ModuleEnv)
	asJSON := fs.Bool("json", false, "print one JSON object instead of streaming text")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", rest[0])
	}
	if *n < 0 {
		return fmt.Errorf("-n %d: want a count ≥ 0", *n)
	}

	ctx := context.Background()
	file, size, name, err := openModel(*modelPath)
	if err != nil {
		return err
	}
	mod, closeModule, err := startModule(ctx, *wasmPath)
	if err != nil {
		return err
	}
	defer closeModule()
	modelInfo, err := mod.ReadHeader(ctx, file, size)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if *draft != "" {
		if *backend == "gpu" {
			return fmt.Errorf("-draft: speculative decoding runs on the cpu backend; drop -backend gpu")
		}
		*backend = "cpu"
		if *temperature > 0 && (!flagSet(fs, "top-k") || !flagSet(fs, "top-p")) {
			*topK, *topP = 0, 1 // speculative sampling draws from the whole distribution
		}
	}
	if *route != 0 {
		if !(*route > 0 && *route <= 1) {
			return fmt.Errorf("-route %g: want a fraction of XL's FFN FLOPs in (0, 1]", *route)
		}
		if *backend == "gpu" {
			return fmt.Errorf("-route: token routing runs on the cpu backend only; drop -backend gpu")
		}
		*backend = "cpu"
		if *mix == "auto" {
			*mix = "XL" // the widest each layer may run; the routers pick below it
		}
	}
	var plan *abi.PlanResult
	if *mix == "auto" || *backend == "auto" {
		if plan, err = planFor(ctx, mod, *wasmPath, *budgetName, *mix, *backend); err != nil {
			return err
		}
		*mix, *backend = plan.Plan.Spec, plan.Plan.Backend
		if *verbose || plan.Error != "" {
			describePlan(os.Stderr, plan)
		}
	}
	mixInfo, err := mod.FetchMix(ctx, file, modelInfo, *mix)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	req := host.Request{Prompt: *prompt, MaxTokens: *n, Options: abi.Options{
		Seed: *seed, Temperature: float32(*temperature), TopK: *topK, TopP: float32(*topP), Backend: *backend, Precision: *precision,
	}}
	if *draft != "" {
		req.Options.Draft, req.Options.DraftTokens = *draft, *draftTokens
	}
	req.Options.Route = float32(*route)
	var stream func([]byte)
	if !*asJSON {
		fmt.Print(*prompt)
		stream = func(piece []byte) { os.Stdout.Write(piece) }
	}
	res, err := mod.Generate(ctx, req, stream)
	if err != nil {
		return err
	}
	if !*asJSON {
		fmt.Println()
		if *route != 0 {
			fmt.Fprintln(os.Stderr, describeWidths(modelInfo.Header.Config, res.Widths))
		}
		return nil
	}
	out := struct {
		*host.Result
		Prompt          string          `json:"prompt"`
		Mix             []string        `json:"mix"`
		Model           string          `json:"model"`
		Seed            uint64          `json:"seed"`
		Temperature     float64         `json:"temperature"`
		Seconds         float64         `json:"seconds"`
		TokensPerSecond float64         `json:"tokens_per_second"`
		Plan            *abi.PlanResult `json:"plan,omitempty"`
	}{res, *prompt, mixInfo.Mix, name, *seed, *temperature, res.Duration.Seconds(), float64(len(res.Tokens)) / res.Duration.Seconds(), plan}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// describeWidths summarises a routed generation's widths: the mean FFN width
// over tokens and layers as a share of XL's, and each granularity's share.
func describeWidths(c model.Config, widths [][]int) string {
	if len(widths) == 0 {
		return "routed: no tokens"
	}
	count := make([]int, c.Granularities())
	var width, n float64
	for _, tok := range widths {
		for _, g := range tok {
			count[g]++
			width += float64(c.FFNWidths[g])
			n++
		}
	}
	parts := make([]string, len(count))
	for g, k := range count {
		parts[g] = fmt.Sprintf("%s %.0f%%", c.GranularityName(g), 100*float64(k)/n)
	}
	return fmt.Sprintf("routed: mean FFN width %.0f%% of XL over %d tokens (%s)", 100*width/n/float64(c.Hidden()), len(widths), strings.Join(parts, ", "))
}

// openModel opens a weights file, or the embedded default for an empty path.
func openModel(path string) (io.ReaderAt, int64, string, error) {
	if path == "" {
		return bytes.NewReader(defaultmodel.Bytes), int64(len(defaultmodel.Bytes)), "default model", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, "", err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, 0, "", err
	}
	return f, st.Size(), path, nil
}

// loadModel reads every weight of a file, or of the embedded default for an
// empty path, natively (no module): for eval and speculate.
func loadModel(path string) (*model.Weights, *weights.Header, string, error) {
	r, size, name, err := openModel(path)
	if err != nil {
		return nil, nil, "", err
	}
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	w, h, err := weights.Load(r, size)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", name, err)
	}
	return w, h, name, nil
}

// startModule compiles and instantiates matedge.wasm, offering it this
// machine's GPU.
func startModule(ctx context.Context, wasmPath string) (*host.Module, func(), error) {
	return startModuleWith(ctx, wasmPath, host.Config{})
}

// startModuleWith compiles and instantiates matedge.wasm with cfg.
func startModuleWith(ctx context.Context, wasmPath string, cfg host.Config) (*host.Module, func(), error) {
	if wasmPath == "" {
		p, err := host.FindModule()
		if err != nil {
			return nil, nil, err
		}
		wasmPath = p
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, nil, err
	}
	rt, err := host.NewRuntime(ctx, wasm, cfg)
	if err != nil {
		return nil, nil, err
	}
	mod, err := rt.Instantiate(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, nil, err
	}
	return mod, func() { rt.Close(ctx) }, nil
}

// planFor measures this machine and asks the module's planner for a plan:
// the whole plan when mix is auto, only the backend when mix is given.
func planFor(ctx context.Context, mod *host.Module, wasmPath, budgetName, mix, backend string) (*abi.PlanResult, error) {
	budget, err := planner.Preset(budgetName)
	if err != nil {
		return nil, err
	}
	if backend != "auto" {
		budget.Backend = backend
	}
	caps, _, err := detectCapabilities(ctx, wasmPath, &budget)
	if err != nil {
		return nil, fmt.Errorf("measuring this device: %w", err)
	}
	req := abi.PlanRequest{Capabilities: caps, Budget: budget}
	if mix != "auto" {
		req.Mix = mix
	}
	return mod.Plan(ctx, req)
}

// describePlan prints what the planner chose and why.
func describePlan(w io.Writer, res *abi.PlanResult) {
	p := res.Plan
	fmt.Fprintf(w, "plan: mix %s on %s, %.0f tokens/s predicted\n", p.Spec, p.Backend, p.PredictedTokensPerSecond)
	if res.Error != "" {
		fmt.Fprintf(w, "  nothing fits the budget (%s); running the smallest plan\n", res.Error)
	}
	for _, r := range p.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
}
