package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/matedge/matedge/model"
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

Prompts are the starts of -prompts windows of the validation split of -text.`)
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
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
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
	progress := newStatus("speculate", *quiet)
	defer progress.Stop()
	progress.Stage("loading the %s text", *text)
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

	// The verifier alone: one Forward per token, as generate's CPU path runs.
	progress.Stage("decoding %d prompts with the verifier alone", *prompts)
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
				progress.Stage("decoding with draft %s, k %d, %s cache", c.MixSpec(d), k, map[bool]string{true: "shared", false: "separate"}[shared])
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
	progress.Idle()
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
