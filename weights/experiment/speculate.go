package experiment

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// SpecRow is one configuration of the self-speculative decoding experiment
// (SPECULATIVE.md).
type SpecRow struct {
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

// SpecReport is the experiment's report: matedge speculate -json prints it
// and Markdown renders it.
type SpecReport struct {
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
	Alone      []SpecRow `json:"verifier_alone"` // K 0, speed-up 1: one per place and temperature
	Rows       []SpecRow `json:"rows"`
	Command    string    `json:"command"`
	// Trained are the commands that trained the models (from their headers).
	Trained     []string `json:"trained,omitempty"`
	CostsNative string   `json:"costs_native"`
}

// Speculation is what Speculate measures natively, in Go on this CPU.
type Speculation struct {
	Weights *model.Weights
	Verify  model.Mix
	Drafts  []model.Mix // uniform mixes of Weights, each tried as the draft
	Ks      []int       // draft lengths; 0 chooses k round by round
	Temps   []float64   // sampling temperatures; 0 is greedy
	Starts  [][]int     // the prompts' tokens
	N       int         // tokens generated per prompt
	Repeats int         // decodes of each prompt per configuration; the fastest counts
	// BaselineDraft drafting for BaselineVerify, independently trained
	// (both nil for none), adds the Baseline rows.
	BaselineDraft, BaselineVerify *model.Weights
	// Clock times the decodes: the thread's CPU time on a shared machine,
	// with the calling goroutine locked to its thread.
	Clock    func() time.Duration
	Progress func(string)

	costs model.SpecCosts // k auto's step costs for the first draft and the verifier
}

// KVCacheBytes is the memory of one f32 KV cache of c's whole context.
func KVCacheBytes(c model.Config) int64 {
	return int64(c.Layers) * int64(c.Context) * int64(c.Dim) * 2 * 4
}

// SpecPrompts cuts count prompts of length tokens from ids, spread evenly.
func SpecPrompts(ids []int, count, length int) ([][]int, error) {
	stride := len(ids) / count
	if stride < length {
		return nil, fmt.Errorf("%d validation tokens are too few for %d prompts of %d", len(ids), count, length)
	}
	var starts [][]int
	for i := range count {
		starts = append(starts, ids[i*stride:i*stride+length])
	}
	return starts, nil
}

// specPair is a verifier and the model it runs.
type specPair struct {
	name   string
	w      *model.Weights
	verify model.Mix
}

// Speculate measures the verifier alone and then each draft, k and cache
// mode, natively, and appends the rows to report. The machine may be
// shared, so each configuration is timed prompt by prompt interleaved with
// the verifier alone, and its speed-up is the ratio of the two in the same
// stretch. It first measures the step costs k auto chooses from, and
// records them in the report.
func (s Speculation) Speculate(report *SpecReport) {
	c := s.Weights.Config
	s.costs = model.MeasureSpecCosts(s.Weights, s.Drafts[0], s.Verify, 8)
	report.CostsNative = fmt.Sprintf("draft %s step %.3f ms; verifier pass over m positions %.3f + %.3f·m ms",
		c.MixSpec(s.Drafts[0]), s.costs.Draft*1e3, s.costs.VerifyBase*1e3, s.costs.VerifyPerPos*1e3)
	for _, temp := range s.Temps {
		pairs := []specPair{{"MatFormer", s.Weights, s.Verify}}
		if s.BaselineVerify != nil {
			bv := s.BaselineVerify
			pairs = append(pairs, specPair{"Baseline", bv, bv.Config.Uniform(len(bv.Config.FFNWidths) - 1)})
		}
		for _, pr := range pairs {
			s.progress(fmt.Sprintf("native, temperature %g: %s verifier alone", temp, pr.name))
			reference, _ := DecodeAlone(pr.w, pr.verify, s.Starts, s.N, temp) // also warms the caches
			var alone aloneTotal
			if pr.name == "MatFormer" {
				for _, d := range s.Drafts {
					for _, k := range s.Ks {
						for _, shared := range []bool{true, false} {
							sp := model.Speculator{Weights: s.Weights, Draft: d, Verify: s.Verify, K: k, Shared: shared, Temperature: float32(temp)}
							bytes := KVCacheBytes(c)
							if !shared {
								bytes *= 2
							}
							report.Rows = append(report.Rows, s.measure(pr, sp, c.MixSpec(d), k, temp, bytes, reference, &alone))
						}
					}
				}
			} else {
				bd, bv := s.BaselineDraft, s.BaselineVerify
				for _, k := range s.Ks {
					sp := model.Speculator{Weights: bv, DraftWeights: bd, Draft: bd.Config.Uniform(len(bd.Config.FFNWidths) - 1),
						Verify: pr.verify, K: k, Temperature: float32(temp)}
					bytes := int64(bv.Config.Layers)*int64(bv.Config.Context)*int64(bv.Config.Dim)*8 + int64(bd.Config.Layers)*int64(bd.Config.Context)*int64(bd.Config.Dim)*8
					report.Rows = append(report.Rows, s.measure(pr, sp, "Baseline-"+granularityOf(bd), k, temp, bytes, reference, &alone))
				}
			}
			report.Alone = append(report.Alone, SpecRow{Where: "native", Models: pr.name, Draft: "none", Temperature: temp,
				AcceptanceRate: -1, TokensPerRound: 1, TokensPerSec: PerSecond(alone.tokens, alone.time), Speedup: 1, CacheBytes: KVCacheBytes(c)})
		}
	}
}

// aloneTotal sums the verifier-alone decodes interleaved with a pair's rows.
type aloneTotal struct {
	tokens int
	time   time.Duration
}

func (s Speculation) progress(what string) {
	if s.Progress != nil {
		s.Progress(what)
	}
}

// measure times one configuration: each prompt decoded Repeats times by the
// verifier alone and by sp, interleaved, the fastest of each counted.
func (s Speculation) measure(pr specPair, sp model.Speculator, draftName string, k int, temp float64, cacheBytes int64, reference [][]int, alone *aloneTotal) SpecRow {
	s.progress(fmt.Sprintf("native, temperature %g: %s draft %s, k %s, %s cache", temp, pr.name, draftName, KName(k), CacheName(sp.Shared)))
	var total model.SpecStats
	same := true
	var specTime, rowAlone time.Duration
	// k auto's costs, measured once per row: the verifier's are the
	// report's unless this is another pair, the draft's are its own.
	rowCosts := s.costs
	if k == 0 && (sp.DraftWeights != nil || !slices.Equal(sp.Draft, s.Drafts[0]) || pr.w != s.Weights) {
		rowCosts = model.MeasureSpecCosts(pr.w, pr.verify, pr.verify, 8)
		rowCosts.Draft = model.StepSeconds(sp.DraftModel(), sp.Draft, 1)
	}
	for i, p := range s.Starts {
		var bestAlone, bestSpec time.Duration
		for r := range s.Repeats {
			t0 := s.Clock()
			DecodeAlone(pr.w, pr.verify, [][]int{p}, s.N, temp)
			a := s.Clock() - t0
			sp.RNG = model.NewRNG(uint64(i + 1))
			if k == 0 {
				sp.Adaptive = &model.KChooser{Costs: rowCosts, MaxK: 8, Prior: 0.6}
			}
			t1 := s.Clock()
			out, st := sp.Generate(p, s.N)
			spec := s.Clock() - t1
			if r == 0 || a < bestAlone {
				bestAlone = a
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
	alone.tokens += len(s.Starts) * s.N
	alone.time += rowAlone
	tps := PerSecond(total.Emitted, specTime)
	row := SpecRow{Where: "native", Models: pr.name, Draft: draftName, K: k, Shared: sp.Shared && sp.DraftWeights == nil, Temperature: temp,
		AcceptanceRate: total.AcceptanceRate(), TokensPerRound: float64(total.Emitted) / float64(max(total.Rounds, 1)),
		TokensPerSec: tps, Speedup: tps / PerSecond(len(s.Starts)*s.N, rowAlone), CacheBytes: cacheBytes}
	if total.Proposed == 0 {
		row.AcceptanceRate = -1
	}
	if temp == 0 {
		row.SameAsVerifier = &same
	}
	return row
}

// granularityOf names the single granularity of a baseline model (its widest).
func granularityOf(w *model.Weights) string {
	return w.Config.MixSpec(w.Config.Uniform(len(w.Config.FFNWidths) - 1))
}

// PerSecond is a rate, with the time counted as at least a microsecond (a
// thread's CPU clock can read 0 for a very short run).
func PerSecond(count int, d time.Duration) float64 {
	return float64(count) / max(d, time.Microsecond).Seconds()
}

// KName writes a draft length: auto for 0.
func KName(k int) string {
	if k == 0 {
		return "auto"
	}
	return strconv.Itoa(k)
}

// CacheName writes a cache mode.
func CacheName(shared bool) string {
	if shared {
		return "shared"
	}
	return "separate"
}

// DecodeAlone decodes n tokens after each prompt with mix alone, one Forward
// per token (seeded per prompt at a temperature), and returns the tokens and
// the speed in tokens per second.
func DecodeAlone(w *model.Weights, mix model.Mix, prompts [][]int, n int, temperature float64) ([][]int, float64) {
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

// Cells are the row's columns as the table and the Markdown show them:
// where, models, draft, k, cache, temperature, accepted, tokens per verify,
// tokens/s, speed-up, greedy = verifier, KV memory.
func (r SpecRow) Cells() []string {
	k, cache := "–", "–"
	if r.Draft != "none" {
		k, cache = KName(r.K), CacheName(r.Shared)
	}
	accepted, perRound := "–", "–"
	if r.AcceptanceRate >= 0 {
		accepted = fmt.Sprintf("%.1f%%", 100*r.AcceptanceRate)
	}
	if r.TokensPerRound >= 0 {
		perRound = fmt.Sprintf("%.2f", r.TokensPerRound)
	}
	same := "–"
	if r.SameAsVerifier != nil {
		same = "NO"
		if *r.SameAsVerifier {
			same = "yes"
		}
	}
	return []string{r.Where, r.Models, r.Draft, k, cache, fmt.Sprintf("%g", r.Temperature), accepted, perRound,
		fmt.Sprintf("%.0f", r.TokensPerSec), fmt.Sprintf("%.2f×", r.Speedup), same, weights.HumanBytes(r.CacheBytes)}
}

// WriteTable writes the rows as a table (matedge speculate's output).
func (r SpecReport) WriteTable(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "where\tmodels\tdraft\tk\tcache\ttemp\taccepted\ttokens/round\ttokens/s\tspeed-up\tsame as verifier\tKV memory\t")
	for _, row := range append(append([]SpecRow{}, r.Alone...), r.Rows...) {
		fmt.Fprintf(tw, "%s\t\n", strings.Join(row.Cells(), "\t"))
	}
	return tw.Flush()
}

// Markdown renders the report (SPECULATIVE.md).
func (r SpecReport) Markdown() string {
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
	for _, row := range append(append([]SpecRow{}, r.Alone...), r.Rows...) {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row.Cells(), " | "))
	}
	return b.String()
}

// ResultsSection is the seed's table at our scale, for RESULTS.md: (a) an
// independently trained small model drafting for its large one, (b) the
// nested draft with separate caches, (c) with the one shared cache, greedy,
// at the fixed k where (c) ran fastest natively, with k auto beside it, and
// (c) in each other place measured. The full table is in the file named.
func (r SpecReport) ResultsSection(full string) string {
	var draft string // the narrowest nested draft measured
	for _, row := range r.Rows {
		if row.Models == "MatFormer" {
			draft = row.Draft
			break
		}
	}
	find := func(where, models string, shared bool, k int) *SpecRow {
		for i, row := range r.Rows {
			if row.Where == where && row.Models == models && row.Shared == shared && row.K == k && row.Temperature == 0 &&
				(models == "Baseline" || row.Draft == draft) {
				return &r.Rows[i]
			}
		}
		return nil
	}
	k, fastest := 0, 0.0
	for _, row := range r.Rows {
		if row.Where == "native" && row.Models == "MatFormer" && row.Draft == draft && row.Shared && row.K > 0 && row.Temperature == 0 &&
			(k == 0 || row.Speedup > fastest) {
			k, fastest = row.K, row.Speedup
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Self-speculative decoding\n\n")
	fmt.Fprintf(&b, "The seed's table at our scale, from `%s` (all rows, sampling, M and L drafts, lavapipe and Chromium: %s). Verifier %s of %s, greedy, draft %s proposing k = %d tokens a round, and k auto (chosen round by round, 0 = a plain step); speed-up over the verifier decoding alone in the same place.\n\n",
		r.Command, full, r.Verifier, r.Model, draft, k)
	fmt.Fprintf(&b, "| | where | draft → verifier | cache | accepted | tokens per verify | speed-up, k = %d | speed-up, k auto |\n|---|---|---|---|---|---|---|---|\n", k)
	cell := func(row *SpecRow, f func(SpecRow) string) string {
		if row == nil {
			return "not measured"
		}
		return f(*row)
	}
	pct := func(row SpecRow) string {
		if row.AcceptanceRate < 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f %%", 100*row.AcceptanceRate)
	}
	perVerify := func(row SpecRow) string {
		if row.TokensPerRound < 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", row.TokensPerRound)
	}
	speedup := func(row SpecRow) string { return fmt.Sprintf("%.2f×", row.Speedup) }
	line := func(label, where, models, pair string, shared bool) {
		fixed, auto := find(where, models, shared, k), find(where, models, shared, 0)
		cache := "separate"
		if shared {
			cache = "shared"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", label, where, pair, cache,
			cell(fixed, pct), cell(fixed, perVerify), cell(fixed, speedup), cell(auto, speedup))
	}
	line("(a)", "native", "Baseline", "Baseline-"+draft+" → Baseline-"+r.Verifier, false)
	line("(b)", "native", "MatFormer", draft+" → "+r.Verifier, false)
	line("(c)", "native", "MatFormer", draft+" → "+r.Verifier, true)
	if find("wazero", "MatFormer", true, k) != nil {
		line("(c)", "wazero", "MatFormer", draft+" → "+r.Verifier, true)
	}
	fmt.Fprintf(&b, "\nGreedy output equals the verifier's in every row. Measured natively: %s, so a draft step plus a pass over one more position costs more than the tokens a round gains at these acceptance rates. The seed's targets are (c) ≥ 1.16× somewhere, k auto never below 1.0×, and (b) above (a) in acceptance.\n", r.CostsNative)
	return b.String()
}

// CheckBaselinePair refuses a baseline draft and verifier (headers hd, hv)
// that cannot stand in for the model h describes: they need its vocabulary,
// at least its context, and the same tokenizer.
func CheckBaselinePair(h, hd, hv *weights.Header) error {
	c, dc, vc := h.Config, hd.Config, hv.Config
	if dc.Vocab != vc.Vocab || vc.Vocab != c.Vocab || dc.Context < c.Context || vc.Context < c.Context {
		return fmt.Errorf("the baseline pair must have the model's vocabulary (%d) and context (%d)", c.Vocab, c.Context)
	}
	for id := range c.Vocab {
		if !bytes.Equal(hd.Tokenizer.Piece(id), h.Tokenizer.Piece(id)) || !bytes.Equal(hv.Tokenizer.Piece(id), h.Tokenizer.Piece(id)) {
			return fmt.Errorf("the baseline pair's tokenizer differs from the model's at token %d: train them on the same data with the same -vocab", id)
		}
	}
	return nil
}
