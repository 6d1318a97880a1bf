package experiment

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/train"
)

// FullScale is the part of RESULTS.md about full-size models trained by
// `matedge train`: the default MatFormer and, where trained, its baselines.
type FullScale struct {
	DefaultPath string
	Baselines   []string // [G] baseline .matw per granularity; "" where not trained
	Cache       string   // for the corpus, to measure consistency
	Tokens      int      // validation tokens for consistency
	Note        string
	Args        []string // the command line that rendered this section
}

func loadMatw(path string) (*model.Weights, *weights.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	w, h, err := weights.Load(f, fi.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, h, nil
}

func (f *FullScale) write(b *bytes.Buffer) error {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	mw, h, err := loadMatw(f.DefaultPath)
	if err != nil {
		return err
	}
	c := mw.Config
	q, err := h.Quality()
	if err != nil {
		return err
	}
	p("## Full scale: the default model\n\n")
	p("`%s`, trained with `%s` (corpus %s, sha256 `%s`, %s steps, seed %s). Its header's quality table (validation split of the corpus):\n\n",
		f.DefaultPath, h.Meta["command"], h.Meta["corpus"], h.Meta["corpus_sha256"], h.Meta["steps"], h.Meta["seed"])
	p("| mix | non-emb. params | nats/tok | bits/byte | tokens |\n|---|---:|---:|---:|---:|\n")
	for _, row := range q {
		p("| %s | %d | %.4f | %.4f | %d |\n", row.Mix, row.NonEmbeddingParams, row.LossNatsPerToken, row.BitsPerByte, row.Tokens)
	}
	if f.Note != "" {
		p("\nNote from whoever ran the command: %s\n", f.Note)
	}
	writeTargets(b, c, q)
	writeSamples(b, mw, &h.Tokenizer)
	have := 0
	for _, path := range f.Baselines {
		if path != "" {
			have++
		}
	}
	if have > 0 && len(f.Baselines) != c.Granularities() {
		return fmt.Errorf("-baselines: %d entries, want %d (S to XL, empty for missing)", len(f.Baselines), c.Granularities())
	}
	if have == 0 {
		f.Baselines = make([]string, c.Granularities())
	}

	corpus, err := train.LoadCorpus(h.Meta["corpus"], f.Cache)
	if err != nil {
		return err
	}
	ids := h.Tokenizer.NewEncoder().Encode(corpus.Validation)
	if len(ids) > f.Tokens+1 {
		ids = ids[:f.Tokens+1]
	}
	seqLen := c.Context
	mixQuality := map[string]weights.Quality{}
	for _, row := range q {
		mixQuality[row.Mix] = row
	}
	G := c.Granularities()
	matGreedy := make([][]int, G)
	baseGreedy := make([][]int, G)
	baseQuality := make([]*weights.Quality, G)
	var commands []string
	for g, path := range f.Baselines {
		matGreedy[g] = train.Greedy(mw, c.Uniform(g), ids, seqLen)
		if path == "" {
			continue
		}
		bw, bh, err := loadMatw(path)
		if err != nil {
			return err
		}
		if !slices.Equal(bh.Tokenizer.Merges, h.Tokenizer.Merges) || bh.Meta["corpus_sha256"] != h.Meta["corpus_sha256"] {
			return fmt.Errorf("%s: not trained on the same corpus and tokenizer as %s", path, f.DefaultPath)
		}
		bq, err := bh.Quality()
		if err != nil || len(bq) == 0 {
			return fmt.Errorf("%s: no quality table", path)
		}
		baseQuality[g] = &bq[0]
		baseGreedy[g] = train.Greedy(bw, bw.Config.Uniform(0), ids, seqLen)
		commands = append(commands, "`"+bh.Meta["command"]+"`")
	}
	p("\n### Full-scale baselines\n\n")
	if have == 0 {
		p("No full-scale baselines were given, so the full-scale MatFormer-vs-baseline comparison is not measured here. To run it (the four baselines together cost about what the MatFormer run did), train them with the same flags and then render with them:\n\n```sh\n%s\n```\n", baselineCommands(h.Meta["command"], f))
	} else {
		p("Trained with:\n\n")
		for _, cmd := range commands {
			p("* %s\n", cmd)
		}
	}
	p("\n| Z | non-emb. params | MatFormer nats/tok | Baseline nats/tok | Δ | MatFormer bits/byte | Baseline bits/byte | within 0.05 |\n|---|---:|---:|---:|---:|---:|---:|:-:|\n")
	for g := range G {
		name := c.GranularityName(g)
		mq := mixQuality[name]
		if baseQuality[g] == nil {
			p("| %s | %d | %.4f | not trained | | %.4f | | |\n", name, mq.NonEmbeddingParams, mq.LossNatsPerToken, mq.BitsPerByte)
			continue
		}
		bq := baseQuality[g]
		d := mq.LossNatsPerToken - bq.LossNatsPerToken
		p("| %s | %d | %.4f | %.4f | %+.4f | %.4f | %.4f | %s |\n", name, mq.NonEmbeddingParams, mq.LossNatsPerToken, bq.LossNatsPerToken, d, mq.BitsPerByte, bq.BitsPerByte, yesNo(d <= 0.05))
	}
	p("\nConsistency (greedy next-token agreement with XL) on the first %d validation tokens:\n\n", len(ids)-1)
	p("| Z | MatFormer-Z vs MatFormer-XL | Baseline-Z vs Baseline-XL |\n|---|---:|---:|\n")
	for g := range G - 1 {
		base := "not trained"
		if baseGreedy[g] != nil && baseGreedy[G-1] != nil {
			base = fmt.Sprintf("%.1f%%", 100*train.Agreement(baseGreedy[g], baseGreedy[G-1]))
		}
		p("| %s | %.1f%% | %s |\n", c.GranularityName(g), 100*train.Agreement(matGreedy[g], matGreedy[G-1]), base)
	}
	p("\n")
	return nil
}

// writeTargets checks the default model against the targets set for it: XL
// at most 1.65 bits/byte on the validation split, and S at least 0.08
// bits/byte worse than XL, so that the sizes are worth choosing between.
func writeTargets(b *bytes.Buffer, c model.Config, q []weights.Quality) {
	byMix := map[string]weights.Quality{}
	for _, row := range q {
		byMix[row.Mix] = row
	}
	s, xl := byMix[c.GranularityName(0)], byMix[c.GranularityName(c.Granularities()-1)]
	fmt.Fprintf(b, "\n| target | measured | met |\n|---|---:|:-:|\n")
	fmt.Fprintf(b, "| XL ≤ 1.65 bits/byte | %.4f | %s |\n", xl.BitsPerByte, yesNo(xl.BitsPerByte <= 1.65))
	gap := s.BitsPerByte - xl.BitsPerByte
	fmt.Fprintf(b, "| S − XL ≥ 0.08 bits/byte | %+.4f | %s |\n", gap, yesNo(gap >= 0.08))
}

// samplePrompt starts the default model's samples.
const samplePrompt = "It was a fine morning in the country, and Elizabeth"

// writeSamples shows text from each uniform granularity of the default
// model: greedy with a repetition penalty, and sampled.
func writeSamples(b *bytes.Buffer, w *model.Weights, tok *model.Tokenizer) {
	c := w.Config
	greedy := train.GenerateOptions{Tokens: 64, RepetitionPenalty: 1.3, PenaltyWindow: 64}
	sampled := train.GenerateOptions{Tokens: 64, Seed: 1, Temperature: 0.8, TopK: 40}
	fmt.Fprintf(b, "\nSamples, prompt %q, 64 tokens: greedy with repetition penalty %.1f over the last %d tokens; sampled at temperature %.1f from the top %d, seed %d.\n\n",
		samplePrompt, greedy.RepetitionPenalty, greedy.PenaltyWindow, sampled.Temperature, sampled.TopK, sampled.Seed)
	for g := range c.Granularities() {
		name := c.GranularityName(g)
		fmt.Fprintf(b, "* **%s, greedy**: %s\n", name, mdQuote(train.Generate(w, tok, c.Uniform(g), samplePrompt, greedy)))
		fmt.Fprintf(b, "* **%s, sampled**: %s\n", name, mdQuote(train.Generate(w, tok, c.Uniform(g), samplePrompt, sampled)))
	}
}

// baselineCommands is a shell script that trains the four full-scale
// baselines with the default model's training command (its -loss-weights
// dropped, -baseline and -out set) and renders RESULTS.md with them.
func baselineCommands(trainCommand string, f *FullScale) string {
	var flags []string
	fields := strings.Fields(strings.TrimPrefix(trainCommand, "matedge train"))
	for i := 0; i < len(fields); i++ {
		switch fields[i] {
		case "-out", "-loss-weights", "-checkpoint", "-baseline":
			i++ // and its value
			continue
		case "-resume":
			continue
		}
		flags = append(flags, fields[i])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "for z in S M L XL; do bin/matedge train %s -baseline $z -out runs/baseline-$z.matw; done\n", strings.Join(flags, " "))
	fmt.Fprintf(&b, "bin/matedge compare %s -baselines runs/baseline-S.matw,runs/baseline-M.matw,runs/baseline-L.matw,runs/baseline-XL.matw", ShellJoin(f.Args))
	return b.String()
}

// ShellJoin writes args as a POSIX shell would need them typed: arguments
// with spaces or shell metacharacters in single quotes.
func ShellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]#~{}!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}
