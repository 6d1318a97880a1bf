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
)

func init() {
	register(command{name: "generate", summary: "generate text with a submodel of a weights file", run: runGenerate})
}

func runGenerate(args []string) error {
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
reason ("length", "stop" or "context"), dropped_chars and slides (-context).`)
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
	maxDownload := fs.String("max-download", "", "with -mix auto: largest download (bytes, or with kB, MB, GB, KiB, MiB, GiB); empty keeps the budget's")
	maxMemory := fs.String("max-memory", "", "with -mix auto: most memory the plan may keep (same units); empty keeps the budget's")
	bestEffort := fs.Bool("best-effort", false, "with -mix auto: when nothing fits the budget, run the smallest plan instead of failing")
	draft := fs.String("draft", "", "self-speculative decoding: a smaller mix (S, M, S,M,S,M …) drafts -k tokens that the mix verifies in one pass, on the CPU; greedy output is unchanged. auto picks the granularity expected to pay most on this device")
	draftTokens := fs.Int("k", 0, "tokens the draft proposes per round (with -draft), 1…64; 0 chooses k round by round from the acceptance rate and the measured cost of draft and verify steps, down to plain decoding where speculation does not pay")
	repeatPenalty := fs.Float64("repeat-penalty", 0, "CTRL repetition penalty over the last -penalty-window tokens: 1 to 10, > 1 discourages repeats; 0 is off (cpu backend)")
	presencePenalty := fs.Float64("presence-penalty", 0, "subtracted from the logit of each token among the last -penalty-window: -2 to 2; 0 is off (cpu backend)")
	penaltyWindow := fs.Int("penalty-window", 0, "recent tokens (prompt included) the penalties look at; 0 is 64")
	minP := fs.Float64("min-p", 0, "when sampling, keep tokens at least this share as likely as the most likely: 0 to 1; 0 is off (cpu backend)")
	route := fs.Float64("route", 0, "token routing: each token's FFN width per layer picked by the file's routers for a mean of about this fraction of XL's FFN FLOPs (0 < BUDGET ≤ 1; 0 is off), never wider than -mix (auto means XL here); CPU backend only")
	precision := fs.String("precision", "f32", "GPU weights: f32, or f16 (half the bytes; the CPU backend always uses f32)")
	modelPath := fs.String("model", "", "weights file (.matw); empty uses the embedded default model")
	wasmPath := fs.String("wasm", "", "matedge.wasm to run; empty finds it next to this program or in $"+host.ModuleEnv)
	asJSON := fs.Bool("json", false, "print one JSON object instead of streaming text (fields: -help)")
	quiet := fs.Bool("q", false, "print nothing to stderr but errors")
	kernelSet := fs.String("kernels", host.KernelsSIMD, "the module's CPU kernels: simd (link the SIMD128 companion module) or go (its plain-Go reference; same tokens, slower)")
	var stops []string
	fs.Func("stop", "end before this string appears in the text, which then does not show it (repeatable)", func(s string) error {
		stops = append(stops, s)
		return nil
	})
	contextPolicy := fs.String("context", host.ContextRefuse, "a prompt or text longer than the context: refuse (fail; stop when full), truncate-left (cut the prompt's start), or slide (cut, and move the window when full)")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", rest[0])
	}
	if *n < 0 {
		return fmt.Errorf("-n %d: want a count ≥ 0", *n)
	}
	if *mix == "" {
		return fmt.Errorf(`-mix "": want S, M, L, XL, auto, or one granularity per layer (S,M,L,XL)`)
	}
	if *draft != "" && (*draftTokens < 0 || *draftTokens > 64) {
		return fmt.Errorf("-k %d: want 1…64 draft tokens, or 0 to choose k round by round", *draftTokens)
	}
	if _, err := planner.Preset(*budgetName); err != nil {
		return fmt.Errorf("-budget: %w", err)
	}
	// The engine checks the options again at reset; checking them here
	// refuses them before the device is measured or anything is printed.
	if err := engine.CheckOptions(abi.Options{Temperature: float32(*temperature), TopK: *topK, TopP: float32(*topP),
		Backend: *backend, Precision: *precision}); err != nil {
		return err
	}
	switch *contextPolicy {
	case host.ContextRefuse, host.ContextTruncateLeft, host.ContextSlide:
	default:
		return fmt.Errorf("-context %q: want refuse, truncate-left or slide", *contextPolicy)
	}
	st := newStatus("generate", *quiet)
	defer st.Stop()

	ctx := context.Background()
	file, size, name, err := host.OpenModel(*modelPath)
	if err != nil {
		return err
	}
	mod, closeModule, err := host.StartModule(ctx, *wasmPath, host.Config{Kernels: *kernelSet})
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
	backendNote := "-backend"
	if *draft != "" {
		backendNote = "-draft runs on the cpu"
		if *backend == "gpu" {
			return fmt.Errorf("-draft: speculative decoding runs on the cpu backend; drop -backend gpu")
		}
		*backend = "cpu"
		if *temperature > 0 && (!flagSet(fs, "top-k") || !flagSet(fs, "top-p")) {
			*topK, *topP = 0, 1 // speculative sampling draws from the whole distribution
		}
	}
	if *mix != "auto" {
		if _, err := modelInfo.Header.Config.ParseMix(*mix); err != nil {
			return fmt.Errorf("-mix: %w", err) // before measuring the device for nothing
		}
	}
	shaping := abi.Options{RepetitionPenalty: float32(*repeatPenalty), PresencePenalty: float32(*presencePenalty), PenaltyWindow: *penaltyWindow, MinP: float32(*minP)}
	if shaping.Shapes() {
		if *backend == "gpu" {
			return fmt.Errorf("-repeat-penalty, -presence-penalty and -min-p run on the cpu backend; drop -backend gpu")
		}
		*backend = "cpu"
		backendNote = "the penalties and -min-p run on the cpu"
	}
	if *route != 0 {
		if !(*route > 0 && *route <= 1) {
			return fmt.Errorf("-route %g: want a fraction of XL's FFN FLOPs in (0, 1]", *route)
		}
		if *backend == "gpu" {
			return fmt.Errorf("-route: token routing runs on the cpu backend only; drop -backend gpu")
		}
		*backend = "cpu"
		backendNote = "token routing runs on the cpu"
		if *mix == "auto" {
			*mix = "XL" // the widest each layer may run; the routers pick below it
		}
	}
	var plan *abi.PlanResult
	mixGiven, backendGiven := *mix, *backend
	if *mix == "auto" || *backend == "auto" {
		st.Stage("measuring this device to plan (decode steps of S and XL on each backend)")
		budget, err := planner.Preset(*budgetName)
		if err != nil {
			return err
		}
		for _, o := range []struct {
			flag, value string
			field       *int64
		}{{"-max-download", *maxDownload, &budget.MaxDownloadBytes}, {"-max-memory", *maxMemory, &budget.MaxMemoryBytes}} {
			if o.value != "" {
				if *o.field, err = parseBytes(o.value); err != nil {
					return fmt.Errorf("%s %q: %w", o.flag, o.value, err)
				}
			}
		}
		if plan, err = host.PlanFor(ctx, mod, *wasmPath, budget, *mix, *backend); err != nil {
			return err
		}
		if plan.Error != "" && mixGiven == "auto" && !*bestEffort {
			return fmt.Errorf("nothing fits the budget %s (%s): %s; relax it, or -best-effort runs the smallest plan", *budgetName, plan.Constraint, plan.Error)
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
	st.Say("%s", choiceLine(mixGiven, backendGiven, backendNote, *budgetName, plan, *draft, *draftTokens))
	req := host.Request{Prompt: *prompt, MaxTokens: *n, Stop: stops, Context: *contextPolicy, Options: abi.Options{
		Seed: *seed, Temperature: float32(*temperature), TopK: *topK, TopP: float32(*topP), Backend: *backend, Precision: *precision,
		RepetitionPenalty: shaping.RepetitionPenalty, PresencePenalty: shaping.PresencePenalty, PenaltyWindow: shaping.PenaltyWindow, MinP: shaping.MinP,
	}}
	if *draft != "" {
		req.Options.Draft, req.Options.DraftTokens = *draft, *draftTokens
	}
	// The prompt is echoed with the first token, so that options the module
	// refuses at reset leave nothing on stdout.
	req.Options.Route = float32(*route)
	var stream func([]byte)
	echoed := false
	echo := func() {
		if !echoed && !*asJSON {
			fmt.Print(*prompt)
			echoed = true
		}
	}
	if !*asJSON {
		stream = func(piece []byte) { echo(); os.Stdout.Write(piece) }
	}
	res, err := mod.Generate(ctx, req, stream)
	if err != nil {
		if echoed {
			fmt.Println()
		}
		if errors.Is(err, host.ErrArg) && strings.Contains(err.Error(), "context is") {
			return fmt.Errorf("%w (-context truncate-left or slide cuts it to fit)", err)
		}
		return err
	}
	if !*asJSON {
		echo()
		fmt.Println()
		if *route != 0 {
			fmt.Fprintln(os.Stderr, describeWidths(modelInfo.Header.Config, res.Widths))
		}
		if res.Done {
			fmt.Fprintf(os.Stderr, "matedge generate: stopped at the model's context limit of %d tokens (%d of the prompt, %d generated of the %d asked for)\n",
				modelInfo.Header.Config.Context, len(res.PromptTokens), len(res.Tokens), *n)
		}
		return nil
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
	}{res, *prompt, mixInfo.Mix, name, *seed, *temperature, res.Duration.Seconds(), float64(len(res.Tokens)) / res.Duration.Seconds(), flatPlan(plan), []byte(res.Text)}
	return json.NewEncoder(os.Stdout).Encode(out)
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
		why = fmt.Sprintf(", planned for budget %s: %.1f tokens/s predicted, %s", budget, plan.Plan.PredictedTokensPerSecond, humanBytes(plan.Plan.DownloadBytes))
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
