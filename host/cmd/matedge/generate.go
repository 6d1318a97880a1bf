package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/engine"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

func init() {
	register(command{name: "generate", summary: "generate text with a submodel of a weights file", run: runGenerate})
}

// generateFlags are generate's flags, as parsed.
type generateFlags struct {
	prompt           string
	n                int
	mix              string
	seed             uint64
	temperature      float64
	topK             int
	topP             float64
	backend          string
	budgetName       string
	verbose          bool
	maxDownload      string
	maxMemory        string
	bestEffort       bool
	draft            string
	draftTokens      int
	repeatPenalty    float64
	presencePenalty  float64
	penaltyWindow    int
	minP             float64
	route            float64
	precision        string
	modelPath        string
	wasmPath         string
	asJSON           bool
	quiet            bool
	kernelSet        string
	contextPolicy    string
	stops            []string
	topKSet, topPSet bool // whether the command line set -top-k, -top-p
}

func runGenerate(args []string) error {
	var g generateFlags
	fs := newFlags("generate", "[flags]", `Generates text with the matedge wasm module (run by wazero), streaming it to
stdout. The mix picks the submodel: S, M, L, XL (the nested granularities),
a comma list with one granularity per layer (Mix'n'Match), or auto.

Before the text it prints one line to stderr: the mix and backend it runs,
and why (planned, or given by a flag); -q silences it and the progress lines.

-json prints one object instead: prompt, prompt_tokens, tokens, text, mix
(one granularity per layer), backend, model, seed, temperature, seconds,
tokens_per_second, context_full, and with planning "plan": the planner's plan
(spec, mix_names, backend, download_bytes, predicted_tokens_per_second,
reasons, …) with "error" and "constraint" when nothing fit the budget, and
reason ("length", "stop", "eot": the model's end-of-text token, or "context"),
dropped_chars and slides (-context).`)
	fs.StringVar(&g.prompt, "prompt", "It is a truth universally acknowledged", "text to continue")
	fs.IntVar(&g.n, "n", 64, "tokens to generate")
	fs.StringVar(&g.mix, "mix", "auto", "submodel: S, M, L, XL, auto, or one granularity per layer (S,M,L,XL)")
	fs.Uint64Var(&g.seed, "seed", 1, "sampling seed")
	fs.Float64Var(&g.temperature, "temperature", 0.8, "sampling temperature; 0 is greedy")
	fs.IntVar(&g.topK, "top-k", 40, "sample from the K most likely tokens; 0 keeps all")
	fs.Float64Var(&g.topP, "top-p", 0.95, "sample from the smallest set with this much probability; 1 keeps all")
	fs.StringVar(&g.backend, "backend", "auto", "cpu, gpu, or auto (the planner measures both and picks)")
	fs.StringVar(&g.budgetName, "budget", "balanced", "what auto plans for: fast, balanced or best (see matedge plan -help)")
	fs.BoolVar(&g.verbose, "v", false, "print the plan's reasons to stderr when planning")
	fs.StringVar(&g.maxDownload, "max-download", "", "with -mix auto: largest download (bytes, or with kB, MB, GB, KiB, MiB, GiB); empty keeps the budget's")
	fs.StringVar(&g.maxMemory, "max-memory", "", "with -mix auto: most memory the plan may keep (same units); empty keeps the budget's")
	fs.BoolVar(&g.bestEffort, "best-effort", false, "with -mix auto: when nothing fits the budget, run the smallest plan instead of failing")
	fs.StringVar(&g.draft, "draft", "", "self-speculative decoding: a smaller mix (S, M, S,M,S,M …) drafts -k tokens that the mix verifies in one pass, on the CPU (or the GPU with -backend gpu); greedy output is unchanged, sampled output keeps the mix's distribution (the same tokens on both backends for a seed). auto picks the granularity expected to pay most on this device")
	fs.IntVar(&g.draftTokens, "k", 0, "tokens the draft proposes per round (with -draft), 1…64; 0 chooses k round by round from the acceptance rate and the measured cost of draft and verify steps, down to plain decoding where speculation does not pay")
	fs.Float64Var(&g.repeatPenalty, "repeat-penalty", 0, "CTRL repetition penalty over the last -penalty-window tokens: 1 to 10, > 1 discourages repeats; 0 is off")
	fs.Float64Var(&g.presencePenalty, "presence-penalty", 0, "subtracted from the logit of each token among the last -penalty-window: -2 to 2; 0 is off")
	fs.IntVar(&g.penaltyWindow, "penalty-window", 0, "recent tokens (prompt included) the penalties look at; 0 is 64")
	fs.Float64Var(&g.minP, "min-p", 0, "when sampling, keep tokens at least this share as likely as the most likely: 0 to 1; 0 is off")
	fs.Float64Var(&g.route, "route", 0, "token routing: each token's FFN width per layer picked by the file's routers for a mean of about this fraction of XL's FFN FLOPs (0 < BUDGET ≤ 1; 0 is off), never wider than -mix (auto means XL here); on either backend")
	fs.StringVar(&g.precision, "precision", "f32", "GPU weights: f32, or f16 (half the bytes; the CPU backend always uses f32)")
	fs.StringVar(&g.modelPath, "model", "", "weights file (.matw); empty uses the embedded default model")
	fs.StringVar(&g.wasmPath, "wasm", "", "matedge.wasm to run; empty finds it next to this program or in $"+host.ModuleEnv)
	fs.BoolVar(&g.asJSON, "json", false, "print one JSON object instead of streaming text (fields: -help)")
	fs.BoolVar(&g.quiet, "q", false, "print nothing to stderr but errors")
	fs.StringVar(&g.kernelSet, "kernels", host.KernelsSIMD, "the module's CPU kernels: simd (link the SIMD128 companion module) or go (its plain-Go reference; same tokens, slower)")
	fs.Func("stop", "end before this string appears in the text, which then does not show it (repeatable)", func(s string) error {
		g.stops = append(g.stops, s)
		return nil
	})
	fs.StringVar(&g.contextPolicy, "context", host.ContextRefuse, "a prompt or text longer than the context: refuse (fail; stop when full), truncate-left (cut the prompt's start), or slide (cut, and move the window when full)")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", rest[0])
	}
	g.topKSet, g.topPSet = flagSet(fs, "top-k"), flagSet(fs, "top-p")
	if err := g.check(); err != nil {
		return err
	}
	st := newStatus("generate", g.quiet)
	defer st.Stop()
	return g.run(context.Background(), st)
}

// check refuses bad flags before the module starts.
func (g *generateFlags) check() error {
	if g.n < 0 {
		return fmt.Errorf("-n %d: want a count ≥ 0", g.n)
	}
	if g.mix == "" {
		return fmt.Errorf(`-mix "": want S, M, L, XL, auto, or one granularity per layer (S,M,L,XL)`)
	}
	if g.draft != "" && (g.draftTokens < 0 || g.draftTokens > 64) {
		return fmt.Errorf("-k %d: want 1…64 draft tokens, or 0 to choose k round by round", g.draftTokens)
	}
	if _, err := planner.Preset(g.budgetName); err != nil {
		return fmt.Errorf("-budget: %w", err)
	}
	// The engine checks the options again at reset; checking them here
	// refuses them before the device is measured or anything is printed.
	if err := engine.CheckOptions(abi.Options{Temperature: float32(g.temperature), TopK: g.topK, TopP: float32(g.topP),
		Backend: g.backend, Precision: g.precision}); err != nil {
		return err
	}
	switch g.contextPolicy {
	case host.ContextRefuse, host.ContextTruncateLeft, host.ContextSlide:
	default:
		return fmt.Errorf("-context %q: want refuse, truncate-left or slide", g.contextPolicy)
	}
	return nil
}

// run loads the model into the module, settles the mix and backend
// (planning what is auto), and generates.
func (g *generateFlags) run(ctx context.Context, st *status) error {
	file, size, name, err := host.OpenModel(g.modelPath)
	if err != nil {
		return err
	}
	mod, closeModule, err := host.StartModule(ctx, g.wasmPath, host.Config{Kernels: g.kernelSet})
	if err != nil {
		return err
	}
	defer closeModule()
	modelInfo, err := mod.ReadHeader(ctx, file, size)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := modelInfo.Header.RequireLanguageModel(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	backendNote, err := g.settleBackend(modelInfo.Header.Config)
	if err != nil {
		return err
	}
	mixGiven, backendGiven := g.mix, g.backend
	plan, err := g.plan(ctx, st, mod)
	if err != nil {
		return err
	}
	mixInfo, err := mod.FetchMix(ctx, file, modelInfo, g.mix)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	st.Say("%s", choiceLine(mixGiven, backendGiven, backendNote, g.budgetName, plan, g.draft, g.draftTokens))
	res, err := g.generate(ctx, mod)
	if err != nil || !g.asJSON {
		if err == nil {
			g.report(modelInfo.Header.Config, res)
		}
		return err
	}
	out := struct {
		*host.Result
		Prompt          string    `json:"prompt"`
		Mix             []string  `json:"mix"`
		Model           string    `json:"model"`
		Seed            uint64    `json:"seed"`
		Temperature     float64   `json:"temperature"`
		Seconds         float64   `json:"seconds"`
		TokensPerSecond float64   `json:"tokens_per_second"`
		Plan            *planJSON `json:"plan,omitempty"`
		// JSON strings hold only valid UTF-8, so text shows a byte that is
		// not (a token ending inside a character) as U+FFFD; text_base64
		// keeps the exact bytes.
		TextBase64 []byte `json:"text_base64"`
	}{res, g.prompt, mixInfo.Mix, name, g.seed, g.temperature, res.Duration.Seconds(), float64(len(res.Tokens)) / res.Duration.Seconds(), flatPlan(plan), []byte(res.Text)}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// shaping are the logit-shaping options (penalties and min-p), which run on both backends.
func (g *generateFlags) shaping() abi.Options {
	return abi.Options{RepetitionPenalty: float32(g.repeatPenalty), PresencePenalty: float32(g.presencePenalty), PenaltyWindow: g.penaltyWindow, MinP: float32(g.minP)}
}

// settleBackend runs -draft on the CPU unless -backend gpu asks for the
// GPU (the module's auto means the CPU with a draft), checks -route and a
// given mix against c, and returns why the backend is what it is.
func (g *generateFlags) settleBackend(c model.Config) (string, error) {
	backendNote := "-backend"
	if g.draft != "" {
		if g.backend != "gpu" {
			backendNote = "-draft runs on the cpu unless -backend gpu"
			g.backend = "cpu"
		}
		if g.temperature > 0 && (!g.topKSet || !g.topPSet) {
			g.topK, g.topP = 0, 1 // speculative sampling draws from the whole distribution
		}
	}
	if g.mix != "auto" {
		if _, err := c.ParseMix(g.mix); err != nil {
			return "", fmt.Errorf("-mix: %w", err) // before measuring the device for nothing
		}
	}
	if g.route != 0 {
		if !(g.route > 0 && g.route <= 1) {
			return "", fmt.Errorf("-route %g: want a fraction of XL's FFN FLOPs in (0, 1]", g.route)
		}
		if g.mix == "auto" {
			g.mix = "XL" // the widest each layer may run; the routers pick below it
		}
	}
	return backendNote, nil
}

// plan asks the planner for what is auto (the mix, the backend or both),
// and sets them from its plan; nil when nothing is auto.
func (g *generateFlags) plan(ctx context.Context, st *status, mod *host.Module) (*abi.PlanResult, error) {
	if g.mix != "auto" && g.backend != "auto" {
		return nil, nil
	}
	st.Stage("measuring this device to plan (decode steps of S and XL on each backend)")
	budget, err := budgetFromFlags(g.budgetName, -1, g.maxDownload, g.maxMemory)
	if err != nil {
		return nil, err
	}
	plan, err := host.PlanFor(ctx, mod, g.wasmPath, budget, g.mix, g.backend)
	if err != nil {
		return nil, err
	}
	if plan.Error != "" && g.mix == "auto" && !g.bestEffort {
		return nil, fmt.Errorf("nothing fits the budget %s (%s): %s; relax it, or -best-effort runs the smallest plan", g.budgetName, plan.Constraint, plan.Error)
	}
	g.mix, g.backend = plan.Plan.Spec, plan.Plan.Backend
	if g.verbose || plan.Error != "" {
		describePlan(os.Stderr, plan)
	}
	return plan, nil
}

// generate runs the request, streaming the text to stdout unless -json.
func (g *generateFlags) generate(ctx context.Context, mod *host.Module) (*host.Result, error) {
	shaping := g.shaping()
	req := host.Request{Prompt: g.prompt, MaxTokens: g.n, Stop: g.stops, Context: g.contextPolicy, Options: abi.Options{
		Seed: g.seed, Temperature: float32(g.temperature), TopK: g.topK, TopP: float32(g.topP), Backend: g.backend, Precision: g.precision,
		RepetitionPenalty: shaping.RepetitionPenalty, PresencePenalty: shaping.PresencePenalty, PenaltyWindow: shaping.PenaltyWindow, MinP: shaping.MinP,
	}}
	if g.draft != "" {
		req.Options.Draft, req.Options.DraftTokens = g.draft, g.draftTokens
	}
	// The prompt is echoed with the first token, so that options the module
	// refuses at reset leave nothing on stdout.
	req.Options.Route = float32(g.route)
	var stream func([]byte)
	echoed := false
	echo := func() {
		if !echoed && !g.asJSON {
			fmt.Print(g.prompt)
			echoed = true
		}
	}
	if !g.asJSON {
		stream = func(piece []byte) { echo(); os.Stdout.Write(piece) }
	}
	res, err := mod.Generate(ctx, req, stream)
	if err != nil {
		if echoed {
			fmt.Println()
		}
		if errors.Is(err, host.ErrArg) && strings.Contains(err.Error(), "context is") {
			return nil, fmt.Errorf("%w (-context truncate-left or slide cuts it to fit)", err)
		}
		return nil, err
	}
	if !g.asJSON {
		echo()
		fmt.Println()
	}
	return res, nil
}

// report ends streamed text with what stderr should say: the routed widths,
// and that the context filled up.
func (g *generateFlags) report(c model.Config, res *host.Result) {
	if g.route != 0 {
		fmt.Fprintln(os.Stderr, c.DescribeWidths(res.Widths))
	}
	if res.Reason == "eot" && !g.quiet {
		fmt.Fprintf(os.Stderr, "matedge generate: stopped at the model's end-of-text token (%d generated of the %d asked for)\n", len(res.Tokens), g.n)
	}
	if res.Done {
		fmt.Fprintf(os.Stderr, "matedge generate: stopped at the model's context limit of %d tokens (%d of the prompt, %d generated of the %d asked for)\n",
			c.Context, len(res.PromptTokens), len(res.Tokens), g.n)
	}
}

// planJSON is a plan with the plan export's error and constraint beside its
// fields, so that -json has "plan": {"spec", …, "error"}, not .plan.plan.
type planJSON struct {
	*planner.Plan
	Error      string `json:"error,omitempty"`
	Constraint string `json:"constraint,omitempty"`
}

func flatPlan(r *abi.PlanResult) *planJSON {
	if r == nil {
		return nil
	}
	return &planJSON{Plan: r.Plan, Error: r.Error, Constraint: r.Constraint}
}

// choiceLine is generate's one stderr line: the mix and backend it runs and
// why — the flag that gave them, or the planner's main reasons.
func choiceLine(mixFlag, backendFlag, backendNote, budget string, plan *abi.PlanResult, draft string, draftTokens int) string {
	var mix, backend, why string
	switch {
	case plan == nil:
		return fmt.Sprintf("mix %s (-mix) on %s (%s)%s", mixFlag, backendFlag, backendNote, draftNote(draft, draftTokens))
	case mixFlag != "auto":
		mix, backend = plan.Plan.Spec+" (-mix)", plan.Plan.Backend+" (planned: measured fastest for this mix)"
	default:
		mix, backend = plan.Plan.Spec, plan.Plan.Backend
		why = fmt.Sprintf(", planned for budget %s: %.1f tokens/s predicted, %s", budget, plan.Plan.PredictedTokensPerSecond, weights.HumanBytes(plan.Plan.DownloadBytes))
		if plan.Error != "" {
			why += "; nothing fits the budget (" + plan.Error + "), so the smallest plan runs (-best-effort)"
		} else if r := sizeReason(plan.Plan.Reasons); r != "" {
			why += "; " + strings.TrimSuffix(r, ".")
		}
		if len(plan.Plan.Reasons) > 0 {
			why += "; " + strings.TrimSuffix(plan.Plan.Reasons[0], ".")
		}
	}
	return fmt.Sprintf("mix %s on %s%s%s", mix, backend, why, draftNote(draft, draftTokens))
}

// sizeReason is the planner's reason that explains the size it chose: the
// sentence after "Chose …" (why nothing bigger, or that the largest fits).
func sizeReason(reasons []string) string {
	for i, r := range reasons {
		if strings.HasPrefix(r, "Chose ") && i+1 < len(reasons) {
			return reasons[i+1]
		}
	}
	return ""
}

func draftNote(draft string, k int) string {
	if draft == "" {
		return ""
	}
	if k == 0 {
		return fmt.Sprintf(", drafting with %s (-draft), k chosen round by round", draft)
	}
	return fmt.Sprintf(", drafting %d tokens a round with %s (-draft)", k, draft)
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
