package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/host/bench"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/experiment"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "speculate", summary: "measure self-speculative decoding: a nested draft, the verifier, a shared KV cache", run: runSpeculate})
}

// specReport is what -json prints and -markdown renders.
type specReport = experiment.SpecReport

func runSpeculate(args []string) error {
	fs := newFlags("speculate", "[flags]", `Decodes with the verifier alone (one Forward per token), then with
self-speculative decoding for each draft, k, cache mode and temperature: the
draft (a nested submodel of the same weights) proposes k tokens, the verifier
checks them in one pass over its weights and keeps the agreeing prefix plus one
token of its own (at a temperature, by the speculative sampling rule). Reports
the acceptance rate, tokens emitted per verifier pass, decode speed and the
speed-up over the verifier alone, whether greedy output is token for token the
verifier's, and the KV cache memory with one shared cache against two.

-k auto chooses k round by round from the acceptance rate and the measured
costs of draft and verify steps (k = 0, a plain step, where speculation does
not pay). -baseline-draft and -baseline-verify add the same measurement for an
independently trained pair (e.g. matedge train -baseline S and -baseline XL
with the same data, tokenizer and steps). -module also measures the shared
cache in the wasm module's CPU backend (or, with -backend gpu, its GPU
backend) under wazero, as generate runs it.
-markdown writes the report as a Markdown file, and the seed's table (Baseline, separate and shared caches) as the "speculative" section of the RESULTS.md beside it; -render redraws both from a saved -json report.

Prompts are the starts of -prompts windows of the validation split of -text.`)
	modelPath := fs.String("model", "", "weights file (.matw); empty uses the embedded default model")
	text := fs.String("text", "austen", "austen, opticks, or a text file: where the prompts come from")
	cache := fs.String("cache", train.DefaultCache(), "where r-cran-janeaustenr is downloaded for -text austen")
	verifyFlag := fs.String("verify", "XL", "the verifier's mix")
	draftsFlag := fs.String("drafts", "S,M,L", "granularities to try as the draft, comma-separated (uniform mixes)")
	ksFlag := fs.String("k", "2,4,auto", "draft lengths to try, comma-separated; auto chooses k round by round")
	tempsFlag := fs.String("temperatures", "0", "sampling temperatures, comma-separated; 0 is greedy")
	prompts := fs.Int("prompts", 8, "prompts to decode")
	promptLen := fs.Int("prompt-tokens", 32, "tokens per prompt")
	n := fs.Int("n", 64, "tokens to generate per prompt")
	repeats := fs.Int("repeats", 3, "times each prompt is decoded by each configuration; the fastest counts")
	baseDraft := fs.String("baseline-draft", "", "an independently trained draft model (.matw, same tokenizer)")
	baseVerify := fs.String("baseline-verify", "", "the independently trained verifier for -baseline-draft (.matw)")
	inModule := fs.Bool("module", false, "also measure the shared cache in the wasm module under wazero")
	backend := fs.String("backend", "cpu", "with -module: the module's backend, cpu or gpu (this machine's adapter)")
	wasmPath := fs.String("wasm", "", "with -module: matedge.wasm; empty finds it next to this program or in $"+host.ModuleEnv)
	markdown := fs.String("markdown", "", "write the report as Markdown to this file")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	render := fs.String("render", "", "with -markdown: only render this saved -json report (no measuring)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if *render != "" {
		return renderSpecFile(*render, *markdown)
	}
	if *backend != "cpu" && *backend != "gpu" {
		return fmt.Errorf("-backend %q: want cpu or gpu", *backend)
	}
	if *prompts < 1 || *promptLen < 1 || *n < 1 || *repeats < 1 {
		return fmt.Errorf("-prompts, -prompt-tokens, -n and -repeats must be at least 1")
	}
	if (*baseDraft == "") != (*baseVerify == "") {
		return fmt.Errorf("-baseline-draft and -baseline-verify go together")
	}
	ks, err := parseKs(*ksFlag)
	if err != nil {
		return err
	}
	temps, err := parseTemperatures(*tempsFlag)
	if err != nil {
		return err
	}
	w, h, name, err := host.LoadModel(*modelPath)
	if err != nil {
		return err
	}
	c := w.Config
	if *promptLen+*n > c.Context {
		return fmt.Errorf("-prompt-tokens %d + -n %d exceed the context (%d)", *promptLen, *n, c.Context)
	}
	verify, drafts, err := parseSpecMixes(c, *verifyFlag, *draftsFlag)
	if err != nil {
		return err
	}
	bd, bv, trained, err := loadBaselinePair(*baseDraft, *baseVerify, h)
	if err != nil {
		return err
	}

	corpus, err := train.LoadCorpus(*text, *cache)
	if err != nil {
		return err
	}
	starts, err := experiment.SpecPrompts(h.Tokenizer.NewEncoder().Encode(corpus.Validation), *prompts, *promptLen)
	if err != nil {
		return fmt.Errorf("%s: %w", *text, err)
	}
	report := specReport{Model: name, Verifier: c.MixSpec(verify), Kernels: model.ActiveKernels().Name,
		Prompts: *prompts, PromptToks: *promptLen, NewTokens: *n, Repeats: *repeats, Trained: slices.DeleteFunc(append([]string{h.Meta["command"]}, trained...), func(s string) bool { return s == "" }), Text: *text, Command: "matedge speculate " + strings.Join(args, " ")}
	if bv != nil {
		report.Baseline = *baseDraft + " drafting for " + *baseVerify
	}
	status := newStatus("speculate", *quiet)
	defer status.Stop()
	progress := func(what string) { status.Stage("%s", what) }
	// Decoding runs on this goroutine; pinned to one thread, its thread CPU
	// time leaves out what other processes take on a shared machine.
	threadCPU, clockKind := host.ThreadClock()
	defer runtime.UnlockOSThread()
	report.Clock = clockKind

	experiment.Speculation{Weights: w, Verify: verify, Drafts: drafts, Ks: ks, Temps: temps, Starts: starts, N: *n, Repeats: *repeats,
		BaselineDraft: bd, BaselineVerify: bv, Clock: threadCPU, Progress: progress}.Speculate(&report)
	if *inModule {
		if err := bench.SpeculateInModule(context.Background(), bench.ModuleSpeculation{Backend: *backend, ModelPath: *modelPath, Wasm: *wasmPath,
			Decode: h.Tokenizer.Decode, Starts: starts, N: *n, Repeats: *repeats, Temps: temps, Drafts: drafts, Ks: ks, Verify: verify, Config: c,
			Progress: progress}, &report); err != nil {
			return err
		}
	}

	return writeSpecReport(report, *markdown, *asJSON, experiment.KVCacheBytes(c), progress)
}

// writeSpecReport writes the Markdown (-markdown) and prints the report:
// JSON, or a heading and the table.
func writeSpecReport(report specReport, markdown string, asJSON bool, cacheBytes int64, progress func(string)) error {
	if markdown != "" {
		if err := experiment.WriteKeepingSections(markdown, []byte(report.Markdown())); err != nil { // keeps web/bench/speculate.mjs's Chromium section
			return err
		}
		progress("wrote " + markdown)
		if err := writeSpecResults(report, markdown); err != nil {
			return err
		}
		progress("wrote the summary into " + filepath.Join(filepath.Dir(markdown), "RESULTS.md"))
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(report)
	}
	fmt.Printf("%s, verifier %s, %d prompts × %d tokens, native on %s kernels; KV cache %s\n%s\n\n",
		report.Model, report.Verifier, report.Prompts, report.NewTokens, report.Kernels, weights.HumanBytes(cacheBytes), report.CostsNative)
	return report.WriteTable(os.Stdout)
}

// parseSpecMixes reads -verify and -drafts.
func parseSpecMixes(c model.Config, verifyFlag, draftsFlag string) (model.Mix, []model.Mix, error) {
	verify, err := c.ParseMix(verifyFlag)
	if err != nil {
		return nil, nil, fmt.Errorf("-verify: %w", err)
	}
	var drafts []model.Mix
	for _, d := range strings.Split(draftsFlag, ",") {
		m, err := c.ParseMix(strings.TrimSpace(d))
		if err != nil {
			return nil, nil, fmt.Errorf("-drafts: %w", err)
		}
		drafts = append(drafts, m)
	}
	return verify, drafts, nil
}

// renderSpecFile writes a saved -json report as Markdown (-render).
func renderSpecFile(path, markdown string) error {
	if markdown == "" {
		return fmt.Errorf("-render needs -markdown, the file to write")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r specReport
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := experiment.WriteKeepingSections(markdown, []byte(r.Markdown())); err != nil {
		return err
	}
	return writeSpecResults(r, markdown)
}

// writeSpecResults writes the report's summary (the seed's table) as the
// "speculative" section of the RESULTS.md beside the -markdown file.
func writeSpecResults(r specReport, markdown string) error {
	results := filepath.Join(filepath.Dir(markdown), "RESULTS.md")
	return experiment.ReplaceSection(results, "speculative", r.ResultsSection(filepath.Base(markdown)))
}

// parseKs reads -k: draft lengths 1…64, auto as 0.
func parseKs(s string) ([]int, error) {
	var ks []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "auto" {
			ks = append(ks, 0)
			continue
		}
		k, err := strconv.Atoi(f)
		if err != nil || k < 1 || k > 64 {
			return nil, fmt.Errorf("-k: %q is not auto or an integer 1…64", f)
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// parseTemperatures reads -temperatures: 0, or 0.01…100.
func parseTemperatures(s string) ([]float64, error) {
	var temps []float64
	for _, f := range strings.Split(s, ",") {
		t, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(t == 0 || (t >= 0.01 && t <= 100)) {
			return nil, fmt.Errorf("-temperatures: %q is not 0 or 0.01…100", f)
		}
		temps = append(temps, t)
	}
	return temps, nil
}

// loadBaselinePair loads -baseline-draft and -baseline-verify (nil, nil when
// not given), checks that they fit the model h describes, and returns the
// commands that trained them.
func loadBaselinePair(draftPath, verifyPath string, h *weights.Header) (bd, bv *model.Weights, trained []string, err error) {
	if draftPath == "" {
		return nil, nil, nil, nil
	}
	bd, hd, _, err := host.LoadModel(draftPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-baseline-draft: %w", err)
	}
	bv, hv, _, err := host.LoadModel(verifyPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-baseline-verify: %w", err)
	}
	if err := experiment.CheckBaselinePair(h, hd, hv); err != nil {
		return nil, nil, nil, err
	}
	return bd, bv, []string{hd.Meta["command"], hv.Meta["command"]}, nil
}
