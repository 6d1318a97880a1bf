package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "speculate", summary: "measure self-speculative decoding: a nested draft, the verifier, a shared KV cache", run: runSpeculate})
}

// specRow is one configuration speculate measured.
type specRow struct {
	Draft           string  `json:"draft"`
	K               int     `json:"k"`
	Shared          bool    `json:"shared_cache"`
	AcceptanceRate  float64 `json:"acceptance_rate"`
	TokensPerRound  float64 `json:"tokens_per_round"`
	TokensPerSecond float64 `json:"tokens_per_second"`
	Speedup         float64 `json:"speedup"` // over the verifier decoding alone
	SameAsVerifier  bool    `json:"same_as_verifier"`
	CacheBytes      int64   `json:"kv_cache_bytes"`
}

func runSpeculate(args []string) error {
	fs := newFlags("speculate", "[flags]", `Decodes greedily with the verifier alone (one Forward per token), then with
self-speculative decoding for each draft and k: the draft (a nested submodel of
the same weights) proposes k tokens, the verifier checks them in one pass over
its weights and keeps the agreeing prefix plus one token of its own. Reports
the draft's acceptance rate, tokens emitted per verifier pass, decode speed
natively on this CPU and the speedup, whether the output is token for token the
verifier's, and the KV cache memory with one shared cache against two.

Prompts are the starts of -prompts windows of the validation split of -text.

With -backend gpu the decoding runs in the wasm module on its gpu backend
(WGSL through the webgpu imports, on this machine's adapter): the verifier
alone, then greedy self-speculative decoding with one shared KV cache (the
backend's only mode). Speeds are the module's; the acceptance rate and
tokens per round are model.Speculator's on the same prompt tokens, which
decides the same rounds whenever its tokens equal the module's (the "same as
verifier" column checks the module's output).`)
	modelPath := fs.String("model", "", "weights file (.matw); empty uses the embedded default model")
	text := fs.String("text", "austen", "austen, opticks, or a text file: where the prompts come from")
	cache := fs.String("cache", train.DefaultCache(), "where r-cran-janeaustenr is downloaded for -text austen")
	verifyFlag := fs.String("verify", "XL", "the verifier's mix")
	draftsFlag := fs.String("drafts", "S,M,L", "granularities to try as the draft, comma-separated (uniform mixes)")
	ksFlag := fs.String("k", "2,4", "draft lengths to try, comma-separated")
	prompts := fs.Int("prompts", 8, "prompts to decode")
	promptLen := fs.Int("prompt-tokens", 32, "tokens per prompt")
	n := fs.Int("n", 64, "tokens to generate per prompt")
	asJSON := fs.Bool("json", false, "print the rows as JSON")
	backend := fs.String("backend", "native", "native (model.Speculator on this CPU) or gpu (the module's gpu backend)")
	wasmPath := fs.String("wasm", "", "matedge.wasm for -backend gpu; empty finds it next to this program or in $"+host.ModuleEnv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if *backend != "native" && *backend != "gpu" {
		return fmt.Errorf("-backend %q: want native or gpu", *backend)
	}
	if *prompts < 1 || *promptLen < 1 || *n < 1 {
		return fmt.Errorf("-prompts, -prompt-tokens and -n must be at least 1")
	}
	w, h, name, err := loadModel(*modelPath)
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
	var ks []int
	for _, f := range strings.Split(*ksFlag, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 {
			return fmt.Errorf("-k: %q is not a positive integer", f)
		}
		ks = append(ks, k)
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

	if *backend == "gpu" {
		return speculateGPU(gpuSpec{modelPath: *modelPath, wasmPath: *wasmPath, w: w, h: h, name: name, verify: verify,
			drafts: drafts, ks: ks, starts: starts, n: *n, asJSON: *asJSON})
	}

	// The verifier alone: one Forward per token, as generate's CPU path runs.
	start := time.Now()
	var reference [][]int
	for _, p := range starts {
		reference = append(reference, greedyAlone(w, verify, p, *n))
	}
	aloneTPS := float64(*prompts**n) / time.Since(start).Seconds()
	cacheBytes := int64(c.Layers) * int64(c.Context) * int64(c.Dim) * 2 * 4

	var rows []specRow
	for _, d := range drafts {
		for _, k := range ks {
			for _, shared := range []bool{true, false} {
				sp := model.Speculator{Weights: w, Draft: d, Verify: verify, K: k, Shared: shared}
				var total model.SpecStats
				same := true
				start := time.Now()
				for i, p := range starts {
					out, st := sp.Generate(p, *n)
					same = same && slices.Equal(out, reference[i])
					total.Rounds, total.Proposed, total.Accepted, total.Emitted = total.Rounds+st.Rounds, total.Proposed+st.Proposed, total.Accepted+st.Accepted, total.Emitted+st.Emitted
				}
				tps := float64(total.Emitted) / time.Since(start).Seconds()
				row := specRow{Draft: c.MixSpec(d), K: k, Shared: shared, AcceptanceRate: total.AcceptanceRate(),
					TokensPerRound: float64(total.Emitted) / float64(max(total.Rounds, 1)), TokensPerSecond: tps, Speedup: tps / aloneTPS,
					SameAsVerifier: same, CacheBytes: cacheBytes}
				if !shared {
					row.CacheBytes *= 2
				}
				rows = append(rows, row)
			}
		}
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(struct {
			Model          string    `json:"model"`
			Verifier       string    `json:"verifier"`
			AloneTPS       float64   `json:"verifier_alone_tokens_per_second"`
			AloneCacheSize int64     `json:"verifier_alone_kv_cache_bytes"`
			Rows           []specRow `json:"rows"`
		}{name, c.MixSpec(verify), aloneTPS, cacheBytes, rows})
	}
	fmt.Printf("%s, verifier %s, %d prompts × %d greedy tokens on %s kernels: verifier alone %.0f tokens/s, KV cache %s\n\n",
		name, c.MixSpec(verify), *prompts, *n, model.ActiveKernels().Name, aloneTPS, humanBytes(cacheBytes))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "draft\tk\tcache\taccepted\ttokens/round\ttokens/s\tspeedup\tsame as verifier\tKV memory\t")
	for _, r := range rows {
		cacheKind := "shared"
		if !r.Shared {
			cacheKind = "separate"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f%%\t%.2f\t%.0f\t%.2f×\t%s\t%s\t\n", r.Draft, r.K, cacheKind, 100*r.AcceptanceRate, r.TokensPerRound, r.TokensPerSecond, r.Speedup, map[bool]string{true: "yes", false: "NO"}[r.SameAsVerifier], humanBytes(r.CacheBytes))
	}
	return tw.Flush()
}

// greedyAlone decodes n tokens greedily after prompt with mix, one Forward per
// token: the reference that speculative decoding must reproduce.
func greedyAlone(w *model.Weights, mix model.Mix, prompt []int, n int) []int {
	s := model.NewState(w.Config)
	var logits []float32
	for pos, tok := range prompt {
		logits = model.Forward(w, s, mix, tok, pos)
	}
	var out []int
	for pos := len(prompt); len(out) < n; pos++ {
		next := model.Argmax(logits)
		out = append(out, next)
		if len(out) == n || pos == w.Config.Context {
			break
		}
		logits = model.Forward(w, s, mix, next, pos)
	}
	return out
}

// gpuSpec is what speculate measures with -backend gpu.
type gpuSpec struct {
	modelPath, wasmPath string
	w                   *model.Weights
	h                   *weights.Header
	name                string
	verify              model.Mix
	drafts              []model.Mix
	ks                  []int
	starts              [][]int
	n                   int
	asJSON              bool
}

// speculateGPU times the verifier alone and each draft and k on the
// module's gpu backend, greedy, with the shared cache.
func speculateGPU(g gpuSpec) error {
	ctx := context.Background()
	var device string
	open := func() (webgpu.Device, error) {
		d, err := webgpu.Open()
		if err == nil {
			device = d.Info().String()
		}
		return d, err
	}
	mod, closeModule, err := startModuleWith(ctx, g.wasmPath, host.Config{GPU: open})
	if err != nil {
		return err
	}
	defer closeModule()
	r, size, _, err := openModel(g.modelPath)
	if err != nil {
		return err
	}
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	c := g.w.Config
	if _, _, err := mod.Load(ctx, r, size, c.GranularityName(c.Granularities()-1)); err != nil {
		return err
	}
	if _, err := mod.SetMix(ctx, c.MixSpec(g.verify)); err != nil {
		return err
	}
	var texts []string
	for _, p := range g.starts {
		var b []byte
		for _, t := range p {
			b = append(b, g.h.Tokenizer.Piece(t)...)
		}
		texts = append(texts, string(b))
	}
	// run generates every prompt with o; it returns the outputs, the prompt
	// tokens the module encoded and the tokens per second.
	run := func(o abi.Options) ([][]int, [][]int, float64, error) {
		o.Backend = "gpu"
		var outs, prompts [][]int
		var emitted int
		start := time.Now()
		for _, text := range texts {
			res, err := mod.Generate(ctx, host.Request{Prompt: text, MaxTokens: g.n, Options: o}, nil)
			if err != nil {
				return nil, nil, 0, err
			}
			if res.Backend != "gpu" {
				return nil, nil, 0, fmt.Errorf("ran on %s, not the gpu", res.Backend)
			}
			outs, prompts, emitted = append(outs, res.Tokens), append(prompts, res.PromptTokens), emitted+len(res.Tokens)
		}
		return outs, prompts, float64(emitted) / time.Since(start).Seconds(), nil
	}
	// Compile every pipeline and upload the weights outside the timings.
	if _, err := mod.Generate(ctx, host.Request{Prompt: texts[0], MaxTokens: 2, Options: abi.Options{Backend: "gpu", Draft: c.MixSpec(g.drafts[0]), DraftTokens: 1}}, nil); err != nil {
		return err
	}
	reference, prompts, aloneTPS, err := run(abi.Options{})
	if err != nil {
		return err
	}
	cacheBytes := int64(c.Layers) * int64(c.Context) * int64(c.Dim) * 2 * 4
	var rows []specRow
	for _, d := range g.drafts {
		for _, k := range g.ks {
			outs, _, tps, err := run(abi.Options{Draft: c.MixSpec(d), DraftTokens: k})
			if err != nil {
				return fmt.Errorf("draft %s k %d: %w", c.MixSpec(d), k, err)
			}
			same := true
			for i := range outs {
				same = same && slices.Equal(outs[i], reference[i])
			}
			sp := model.Speculator{Weights: g.w, Draft: d, Verify: g.verify, K: k, Shared: true}
			var total model.SpecStats
			for _, p := range prompts {
				_, st := sp.Generate(p, g.n)
				total.Rounds, total.Proposed, total.Accepted, total.Emitted = total.Rounds+st.Rounds, total.Proposed+st.Proposed, total.Accepted+st.Accepted, total.Emitted+st.Emitted
			}
			rows = append(rows, specRow{Draft: c.MixSpec(d), K: k, Shared: true, AcceptanceRate: total.AcceptanceRate(),
				TokensPerRound: float64(total.Emitted) / float64(max(total.Rounds, 1)), TokensPerSecond: tps, Speedup: tps / aloneTPS,
				SameAsVerifier: same, CacheBytes: cacheBytes})
		}
	}
	if g.asJSON {
		return json.NewEncoder(os.Stdout).Encode(struct {
			Model    string    `json:"model"`
			Backend  string    `json:"backend"`
			Device   string    `json:"device"`
			Verifier string    `json:"verifier"`
			AloneTPS float64   `json:"verifier_alone_tokens_per_second"`
			Rows     []specRow `json:"rows"`
		}{g.name, "gpu", device, c.MixSpec(g.verify), aloneTPS, rows})
	}
	fmt.Printf("%s, verifier %s, %d prompts × %d greedy tokens on the module's gpu backend (%s): verifier alone %.1f tokens/s\n\n",
		g.name, c.MixSpec(g.verify), len(texts), g.n, device, aloneTPS)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "draft\tk\tcache\taccepted\ttokens/round\ttokens/s\tspeedup\tsame as verifier\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\tshared\t%.1f%%\t%.2f\t%.1f\t%.2f×\t%s\t\n", r.Draft, r.K, 100*r.AcceptanceRate, r.TokensPerRound, r.TokensPerSecond, r.Speedup, map[bool]string{true: "yes", false: "NO"}[r.SameAsVerifier])
	}
	return tw.Flush()
}
