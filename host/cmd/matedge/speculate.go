package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "speculate", summary: "measure self-speculative decoding: a nested draft, the verifier, a shared KV cache", run: runSpeculate})
}

// specRow is one configuration speculate measured.
type specRow struct {
	Where          string  `json:"where"`  // "native" (this CPU, Go) or "wazero" (the wasm module's CPU backend)
	Models         string  `json:"models"` // "MatFormer" (a nested draft) or "Baseline" (an independently trained draft)
	Draft          string  `json:"draft"`
	K              int     `json:"k"` // 0: chosen round by round
	Shared         bool    `json:"shared_cache"`
	Temperature    float64 `json:"temperature"`
	AcceptanceRate float64 `json:"acceptance_rate"`  // -1 where not observable (in the module)
	TokensPerRound float64 `json:"tokens_per_round"` // -1 where not observable
	TokensPerSec   float64 `json:"tokens_per_second"`
	Speedup        float64 `json:"speedup"`          // over the verifier decoding alone, same place and temperature
	SameAsVerifier *bool   `json:"same_as_verifier"` // greedy only
	CacheBytes     int64   `json:"kv_cache_bytes"`
}

// specReport is what -json prints and -markdown renders.
type specReport struct {
	Model      string    `json:"model"`
	Baseline   string    `json:"baseline,omitempty"`
	Verifier   string    `json:"verifier"`
	Kernels    string    `json:"kernels"`
	Prompts    int       `json:"prompts"`
	PromptToks int       `json:"prompt_tokens"`
	NewTokens  int       `json:"new_tokens"`
	Repeats    int       `json:"repeats"`
	Clock      string    `json:"clock"` // what the speeds are timed in
	Text       string    `json:"text"`
	Alone      []specRow `json:"verifier_alone"` // K 0, speed-up 1: one per place and temperature
	Rows       []specRow `json:"rows"`
	Command    string    `json:"command"`
	// Trained are the commands that trained the models (from their headers).
	Trained     []string `json:"trained,omitempty"`
	CostsNative string   `json:"costs_native"`
}

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
-markdown writes the report as a Markdown file.

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
	backend := fs.String("backend", "cpu", "with -module: the module's backend, cpu or gpu (this machine's adapter; greedy temperatures only, k auto is 4)")
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
		if *markdown == "" {
			return fmt.Errorf("-render needs -markdown, the file to write")
		}
		b, err := os.ReadFile(*render)
		if err != nil {
			return err
		}
		var r specReport
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", *render, err)
		}
		return os.WriteFile(*markdown, []byte(renderSpec(r)), 0o644)
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
	var ks []int
	for _, f := range strings.Split(*ksFlag, ",") {
		f = strings.TrimSpace(f)
		if f == "auto" {
			ks = append(ks, 0)
			continue
		}
		k, err := strconv.Atoi(f)
		if err != nil || k < 1 || k > 64 {
			return fmt.Errorf("-k: %q is not auto or an integer 1…64", f)
		}
		ks = append(ks, k)
	}
	var temps []float64
	for _, f := range strings.Split(*tempsFlag, ",") {
		t, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(t == 0 || (t >= 0.01 && t <= 100)) {
			return fmt.Errorf("-temperatures: %q is not 0 or 0.01…100", f)
		}
		temps = append(temps, t)
	}
	w, h, name, err := host.LoadModel(*modelPath)
	if err != nil {
		return err
	}
	c := w.Config
	if *promptLen+*n > c.Context {
		return fmt.Errorf("-prompt-tokens %d + -n %d exceed the context (%d)", *promptLen, *n, c.Context)
	}
	verify, err := c.ParseMix(*verifyFlag)
	if err != nil {
		return fmt.Errorf("-verify: %w", err)
	}
	var drafts []model.Mix
	for _, d := range strings.Split(*draftsFlag, ",") {
		m, err := c.ParseMix(strings.TrimSpace(d))
		if err != nil {
			return fmt.Errorf("-drafts: %w", err)
		}
		drafts = append(drafts, m)
	}
	var bd, bv *model.Weights
	trained := []string{h.Meta["command"]}
	if *baseDraft != "" {
		bdw, hd, _, err := host.LoadModel(*baseDraft)
		if err != nil {
			return fmt.Errorf("-baseline-draft: %w", err)
		}
		bvw, hv, _, err := host.LoadModel(*baseVerify)
		if err != nil {
			return fmt.Errorf("-baseline-verify: %w", err)
		}
		bd, bv = bdw, bvw
		trained = append(trained, hd.Meta["command"], hv.Meta["command"])
		if bd.Config.Vocab != bv.Config.Vocab || bv.Config.Vocab != c.Vocab || bd.Config.Context < c.Context || bv.Config.Context < c.Context {
			return fmt.Errorf("the baseline pair must have the model's vocabulary (%d) and context (%d)", c.Vocab, c.Context)
		}
		for id := range c.Vocab {
			if !bytes.Equal(hd.Tokenizer.Piece(id), h.Tokenizer.Piece(id)) || !bytes.Equal(hv.Tokenizer.Piece(id), h.Tokenizer.Piece(id)) {
				return fmt.Errorf("the baseline pair's tokenizer differs from the model's at token %d: train them on the same data with the same -vocab", id)
			}
		}
	}

	corpus, err := train.LoadCorpus(*text, *cache)
	if err != nil {
		return err
	}
	ids := h.Tokenizer.NewEncoder().Encode(corpus.Validation)
	stride := len(ids) / *prompts
	if stride < *promptLen {
		return fmt.Errorf("%s: %d validation tokens are too few for %d prompts of %d", *text, len(ids), *prompts, *promptLen)
	}
	var starts [][]int
	for i := range *prompts {
		starts = append(starts, ids[i*stride:i*stride+*promptLen])
	}
	cacheBytes := int64(c.Layers) * int64(c.Context) * int64(c.Dim) * 2 * 4
	report := specReport{Model: name, Verifier: c.MixSpec(verify), Kernels: model.ActiveKernels().Name,
		Prompts: *prompts, PromptToks: *promptLen, NewTokens: *n, Repeats: *repeats, Trained: slices.DeleteFunc(trained, func(s string) bool { return s == "" }), Text: *text, Command: "matedge speculate " + strings.Join(args, " ")}
	if bv != nil {
		report.Baseline = *baseDraft + " drafting for " + *baseVerify
	}
	costs := model.MeasureSpecCosts(w, drafts[0], verify, 8)
	report.CostsNative = fmt.Sprintf("draft %s step %.3f ms; verifier pass over m positions %.3f + %.3f·m ms",
		c.MixSpec(drafts[0]), costs.Draft*1e3, costs.VerifyBase*1e3, costs.VerifyPerPos*1e3)
	status := newStatus("speculate", *quiet)
	defer status.Stop()
	progress := func(what string) { status.Stage("%s", what) }
	// Decoding runs on this goroutine; pinned to one thread, its thread CPU
	// time leaves out what other processes take on a shared machine.
	threadCPU, clockKind := host.ThreadClock()
	defer runtime.UnlockOSThread()
	report.Clock = clockKind

	// Natively, in Go on this CPU. The machine may be shared, so each
	// configuration is timed prompt by prompt interleaved with the verifier
	// alone, and its speed-up is the ratio of the two in the same stretch.
	for _, temp := range temps {
		type pair struct {
			name   string
			w      *model.Weights
			verify model.Mix
		}
		pairs := []pair{{"MatFormer", w, verify}}
		if bv != nil {
			pairs = append(pairs, pair{"Baseline", bv, bv.Config.Uniform(len(bv.Config.FFNWidths) - 1)})
		}
		for _, pr := range pairs {
			progress(fmt.Sprintf("native, temperature %g: %s verifier alone", temp, pr.name))
			reference, _ := decodeAlone(pr.w, pr.verify, starts, *n, temp) // also warms the caches
			var aloneTokens int
			var aloneTime time.Duration
			measure := func(sp model.Speculator, draftName string, k int, cacheBytes int64) {
				progress(fmt.Sprintf("native, temperature %g: %s draft %s, k %s, %s cache", temp, pr.name, draftName, kName(k), cacheName(sp.Shared)))
				var total model.SpecStats
				same := true
				var specTime, rowAlone time.Duration
				// k auto's costs, measured once per row: the verifier's are the
				// report's unless this is another pair, the draft's are its own.
				rowCosts := costs
				if k == 0 && (sp.DraftWeights != nil || !slices.Equal(sp.Draft, drafts[0]) || pr.w != w) {
					rowCosts = model.MeasureSpecCosts(pr.w, pr.verify, pr.verify, 8)
					rowCosts.Draft = model.StepSeconds(sp.DraftModel(), sp.Draft, 1)
				}
				for i, p := range starts {
					var bestAlone, bestSpec time.Duration
					for r := range *repeats {
						t0 := threadCPU()
						decodeAlone(pr.w, pr.verify, [][]int{p}, *n, temp)
						alone := threadCPU() - t0
						sp.RNG = model.NewRNG(uint64(i + 1))
						if k == 0 {
							sp.Adaptive = &model.KChooser{Costs: rowCosts, MaxK: 8, Prior: 0.6}
						}
						t1 := threadCPU()
						out, st := sp.Generate(p, *n)
						spec := threadCPU() - t1
						if r == 0 || alone < bestAlone {
							bestAlone = alone
						}
						if r == 0 || spec < bestSpec {
							bestSpec = spec
						}
						if r == 0 {
							same = same && slices.Equal(out, reference[i])
							total.Rounds, total.Proposed, total.Accepted, total.Emitted = total.Rounds+st.Rounds, total.Proposed+st.Proposed, total.Accepted+st.Accepted, total.Emitted+st.Emitted
						}
					}
					specTime += bestSpec
					rowAlone += bestAlone
				}
				aloneTokens += len(starts) * *n
				aloneTime += rowAlone
				tps := perSecond(total.Emitted, specTime)
				row := specRow{Where: "native", Models: pr.name, Draft: draftName, K: k, Shared: sp.Shared && sp.DraftWeights == nil, Temperature: temp,
					AcceptanceRate: total.AcceptanceRate(), TokensPerRound: float64(total.Emitted) / float64(max(total.Rounds, 1)),
					TokensPerSec: tps, Speedup: tps / perSecond(len(starts)**n, rowAlone), CacheBytes: cacheBytes}
				if total.Proposed == 0 {
					row.AcceptanceRate = -1
				}
				if temp == 0 {
					row.SameAsVerifier = &same
				}
				report.Rows = append(report.Rows, row)
			}
			if pr.name == "MatFormer" {
				for _, d := range drafts {
					for _, k := range ks {
						for _, shared := range []bool{true, false} {
							sp := model.Speculator{Weights: w, Draft: d, Verify: verify, K: k, Shared: shared, Temperature: float32(temp)}
							bytes := cacheBytes
							if !shared {
								bytes *= 2
							}
							measure(sp, c.MixSpec(d), k, bytes)
						}
					}
				}
			} else {
				for _, k := range ks {
					sp := model.Speculator{Weights: bv, DraftWeights: bd, Draft: bd.Config.Uniform(len(bd.Config.FFNWidths) - 1),
						Verify: pr.verify, K: k, Temperature: float32(temp)}
					bytes := int64(bv.Config.Layers)*int64(bv.Config.Context)*int64(bv.Config.Dim)*8 + int64(bd.Config.Layers)*int64(bd.Config.Context)*int64(bd.Config.Dim)*8
					measure(sp, "Baseline-"+granularityOf(bd), k, bytes)
				}
			}
			report.Alone = append(report.Alone, specRow{Where: "native", Models: pr.name, Draft: "none", Temperature: temp,
				AcceptanceRate: -1, TokensPerRound: 1, TokensPerSec: perSecond(aloneTokens, aloneTime), Speedup: 1, CacheBytes: cacheBytes})
		}
	}

	if *inModule {
		if err := speculateInModule(&report, *backend, *modelPath, *wasmPath, h.Tokenizer.Decode, starts, *n, *repeats, temps, drafts, ks, verify, c, cacheBytes, progress); err != nil {
			return err
		}
	}

	if *markdown != "" {
		if err := os.WriteFile(*markdown, []byte(renderSpec(report)), 0o644); err != nil {
			return err
		}
		progress("wrote " + *markdown)
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(report)
	}
	fmt.Printf("%s, verifier %s, %d prompts × %d tokens, native on %s kernels; KV cache %s\n%s\n\n",
		name, report.Verifier, *prompts, *n, report.Kernels, humanBytes(cacheBytes), report.CostsNative)
	return printSpecTable(os.Stdout, report)
}

// granularityOf names the single granularity of a baseline model (its widest).
func granularityOf(w *model.Weights) string {
	return w.Config.MixSpec(w.Config.Uniform(len(w.Config.FFNWidths) - 1))
}

// perSecond is a rate, with the time counted as at least a microsecond (a
// thread's CPU clock can read 0 for a very short run).
func perSecond(count int, d time.Duration) float64 {
	return float64(count) / max(d, time.Microsecond).Seconds()
}

func kName(k int) string {
	if k == 0 {
		return "auto"
	}
	return strconv.Itoa(k)
}

func cacheName(shared bool) string {
	if shared {
		return "shared"
	}
	return "separate"
}

// decodeAlone decodes n tokens after each prompt with mix alone, one Forward
// per token (seeded per prompt at a temperature), and returns the tokens and
// the speed in tokens per second.
func decodeAlone(w *model.Weights, mix model.Mix, prompts [][]int, n int, temperature float64) ([][]int, float64) {
	start := time.Now()
	var out [][]int
	for i, p := range prompts {
		sp := model.Speculator{Weights: w, Draft: mix, Verify: mix, K: 1, Shared: true, Temperature: float32(temperature), RNG: model.NewRNG(uint64(i + 1)),
			Adaptive: &model.KChooser{Costs: model.SpecCosts{VerifyPerPos: 1}}} // never drafts: k = 0 rounds are plain steps
		tokens, _ := sp.Generate(p, n)
		out = append(out, tokens)
	}
	return out, float64(len(prompts)*n) / time.Since(start).Seconds()
}

// speculateInModule measures the module's CPU or GPU backend under wazero:
// the mix alone, then each draft and k with the shared cache, as generate
// runs them. The CPU backend is timed in thread CPU time; the GPU backend,
// whose work runs on the driver's threads (lavapipe's, on a machine without
// a GPU), in wall time. The GPU speculates greedily only: other temperatures
// are skipped there.
func speculateInModule(report *specReport, backend, modelPath, wasmPath string, decode func([]int) []byte, starts [][]int, n, repeats int, temps []float64,
	drafts []model.Mix, ks []int, verify model.Mix, c model.Config, cacheBytes int64, progress func(string)) error {
	ctx := context.Background()
	file, size, name, err := host.OpenModel(modelPath)
	if err != nil {
		return err
	}
	if cl, ok := file.(io.Closer); ok {
		defer cl.Close()
	}
	cfg, where := host.Config{}, "wazero"
	if backend == "gpu" {
		cfg.GPU, where = webgpu.Open, "wazero gpu"
	}
	mod, closeModule, err := host.StartModule(ctx, wasmPath, cfg)
	if err != nil {
		return err
	}
	defer closeModule()
	info, err := mod.ReadHeader(ctx, file, size)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := mod.FetchMix(ctx, file, info, c.MixSpec(verify)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	threadCPU, _ := host.ThreadClock()
	if backend == "gpu" {
		began := time.Now()
		threadCPU = func() time.Duration { return time.Since(began) }
	}
	one := func(o abi.Options, i int) (*host.Result, error) {
		o.Seed = uint64(i + 1)
		start := threadCPU()
		res, err := mod.Generate(ctx, host.Request{Prompt: string(decode(starts[i])), MaxTokens: n, Options: o}, nil)
		if res != nil {
			res.Duration = threadCPU() - start
		}
		return res, err
	}
	for _, temp := range temps {
		if backend == "gpu" && temp > 0 {
			continue
		}
		plain := abi.Options{Backend: backend, Temperature: float32(temp)}
		if temp > 0 {
			plain.TopP = 1
		}
		var ref [][]int
		progress(fmt.Sprintf("%s, temperature %g: the verifier alone", where, temp))
		for i := range starts {
			res, err := one(plain, i)
			if err != nil {
				return err
			}
			ref = append(ref, res.Tokens)
		}
		var aloneTokens int
		var aloneTime time.Duration
		for _, d := range drafts {
			for _, k := range ks {
				progress(fmt.Sprintf("%s, temperature %g: draft %s, k %s, shared cache", where, temp, c.MixSpec(d), kName(k)))
				o := plain
				o.Draft, o.DraftTokens = c.MixSpec(d), k
				if _, err := one(o, 0); err != nil { // with k auto, the first reset measures the costs; time the rest
					return err
				}
				same := true
				var rowAlone, specTime time.Duration
				var rowAloneTokens, specTokens int
				for i := range starts {
					var bestAlone, bestSpec time.Duration
					for r := range repeats {
						a, err := one(plain, i)
						if err != nil {
							return err
						}
						b, err := one(o, i)
						if err != nil {
							return err
						}
						if r == 0 || a.Duration < bestAlone {
							bestAlone = a.Duration
						}
						if r == 0 || b.Duration < bestSpec {
							bestSpec = b.Duration
						}
						if r == 0 {
							rowAloneTokens, specTokens = rowAloneTokens+len(a.Tokens), specTokens+len(b.Tokens)
							same = same && slices.Equal(b.Tokens, ref[i])
						}
					}
					rowAlone, specTime = rowAlone+bestAlone, specTime+bestSpec
				}
				aloneTokens, aloneTime = aloneTokens+rowAloneTokens, aloneTime+rowAlone
				tps := perSecond(specTokens, specTime)
				row := specRow{Where: where, Models: "MatFormer", Draft: c.MixSpec(d), K: k, Shared: true, Temperature: temp,
					AcceptanceRate: -1, TokensPerRound: -1, TokensPerSec: tps, Speedup: tps / perSecond(rowAloneTokens, rowAlone), CacheBytes: cacheBytes}
				if temp == 0 {
					row.SameAsVerifier = &same
				}
				report.Rows = append(report.Rows, row)
			}
		}
		report.Alone = append(report.Alone, specRow{Where: where, Models: "MatFormer", Draft: "none", Temperature: temp,
			AcceptanceRate: -1, TokensPerRound: 1, TokensPerSec: perSecond(aloneTokens, aloneTime), Speedup: 1, CacheBytes: cacheBytes})
	}
	return nil
}

func printSpecTable(out io.Writer, r specReport) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "where\tmodels\tdraft\tk\tcache\ttemp\taccepted\ttokens/round\ttokens/s\tspeed-up\tsame as verifier\tKV memory\t")
	for _, row := range append(append([]specRow{}, r.Alone...), r.Rows...) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%g\t%s\t%s\t%.0f\t%.2f×\t%s\t%s\t\n", row.Where, row.Models, row.Draft, kOrDash(row), cacheOrDash(row), row.Temperature,
			pctOrDash(row.AcceptanceRate), numOrDash(row.TokensPerRound), row.TokensPerSec, row.Speedup, sameOrDash(row.SameAsVerifier), humanBytes(row.CacheBytes))
	}
	return tw.Flush()
}

func kOrDash(r specRow) string {
	if r.Draft == "none" {
		return "–"
	}
	return kName(r.K)
}

func cacheOrDash(r specRow) string {
	if r.Draft == "none" {
		return "–"
	}
	return cacheName(r.Shared)
}

func pctOrDash(v float64) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func numOrDash(v float64) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func sameOrDash(b *bool) string {
	switch {
	case b == nil:
		return "–"
	case *b:
		return "yes"
	}
	return "NO"
}

// renderSpec writes the report as Markdown.
func renderSpec(r specReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Self-speculative decoding, measured\n\n")
	fmt.Fprintf(&b, "Written by `%s` (rerun it to refresh this file). Verifier %s of %s; %d prompts of %d tokens from the validation split of %s, %d new tokens each; native rows run in Go on this CPU with the %s kernels, wazero rows in the wasm module's CPU backend. Speeds are timed in %s, each configuration interleaved prompt by prompt with the verifier alone, the fastest of %d runs of each counted; the speed-up is the ratio within that stretch.",
		r.Command, r.Verifier, r.Model, r.Prompts, r.PromptToks, r.Text, r.NewTokens, r.Kernels, r.Clock, r.Repeats)
	if r.Baseline != "" {
		fmt.Fprintf(&b, " Baseline rows: %s, independently trained with the same data, tokenizer and steps.", r.Baseline)
	}
	if len(r.Trained) > 0 {
		fmt.Fprintf(&b, " The models were trained by:\n\n```sh\n%s\n```", strings.Join(r.Trained, "\n"))
	}
	fmt.Fprintf(&b, "\n\nMeasured step costs, natively: %s. k auto chooses k round by round (0 = a plain step) from these and the running acceptance rate.\n\n", r.CostsNative)
	fmt.Fprintf(&b, "| where | models | draft | k | cache | temperature | accepted | tokens per verify | tokens/s | speed-up | greedy = verifier | KV memory |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	sampledInModule := false
	for _, row := range append(append([]specRow{}, r.Alone...), r.Rows...) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %g | %s | %s | %.0f | %.2f× | %s | %s |\n", row.Where, row.Models, row.Draft, kOrDash(row), cacheOrDash(row), row.Temperature,
			pctOrDash(row.AcceptanceRate), numOrDash(row.TokensPerRound), row.TokensPerSec, row.Speedup, sameOrDash(row.SameAsVerifier), humanBytes(row.CacheBytes))
		sampledInModule = sampledInModule || (row.Where != "native" && row.Temperature > 0)
	}
	if sampledInModule {
		fmt.Fprintf(&b, "\nAt a temperature, the module's rows compare two samplers, not only speculation: plain decoding samples with `model.Sampler`, which sorts the whole vocabulary every token, while speculative rounds (k auto's plain k = 0 steps included) draw from the distribution without sorting. The k auto rows, which decode without drafting here, show what that costs; the native rows do not have this difference.\n")
	}
	return b.String()
}
