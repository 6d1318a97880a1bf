package train

import "github.com/matedge/matedge/model"

// Measurements for comparing nested submodels with independently trained
// ones: greedy agreement (consistency) and sampled text.

// Greedy returns, for every position of ids but the last, the token w running
// mix ranks first as the next one, in windows of seqLen as Evaluate reads them.
func Greedy(w *model.Weights, mix model.Mix, ids []int, seqLen int) []int {
	var out []int
	var full *model.Batch
	for pos := 0; pos+1 < len(ids); pos += seqLen {
		n := min(seqLen, len(ids)-1-pos)
		b := full
		if n < seqLen {
			b = model.NewBatch(w.Config, 1, n)
		} else if full == nil {
			full = model.NewBatch(w.Config, 1, n)
			b = full
		}
		b.Forward(w, mix, ids[pos:pos+n], nil)
		logits := b.Logits()
		for r := range n {
			out = append(out, model.Argmax(logits[r*w.Config.Vocab:(r+1)*w.Config.Vocab]))
		}
	}
	return out
}

// Agreement is the share of positions where a and b hold the same token.
func Agreement(a, b []int) float64 {
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(max(len(a), 1))
}

// Sample continues prompt with up to n tokens (as many as the context holds)
// from w running mix, sampling at the given temperature from the top 40
// tokens with a generator seeded by seed.
func Sample(w *model.Weights, tok *model.Tokenizer, mix model.Mix, prompt string, n int, seed uint64, temperature float32) string {
	return Generate(w, tok, mix, prompt, GenerateOptions{Tokens: n, Seed: seed, Temperature: temperature, TopK: 40})
}

// GenerateOptions say how Generate picks tokens.
type GenerateOptions struct {
	Tokens      int     // at most this many new tokens (fewer if the context fills)
	Seed        uint64  // of the sampler's generator
	Temperature float32 // 0 is greedy
	TopK        int     // 0 keeps every token
	// RepetitionPenalty (> 1 to enable) is applied to the tokens of the last
	// PenaltyWindow ids, prompt included; see model.Penalize.
	RepetitionPenalty float32
	PenaltyWindow     int
}

// Generate continues prompt natively on the CPU with w running mix.
func Generate(w *model.Weights, tok *model.Tokenizer, mix model.Mix, prompt string, o GenerateOptions) string {
	ids := tok.NewEncoder().Encode([]byte(prompt))
	if len(ids) >= w.Config.Context { // keep the end of a prompt that fills the context
		ids = ids[len(ids)-w.Config.Context+1:]
	}
	s := model.NewState(w.Config)
	sampler := model.Sampler{Temperature: o.Temperature, TopK: o.TopK, RNG: model.NewRNG(o.Seed)}
	var logits []float32
	for pos, id := range ids {
		logits = model.Forward(w, s, mix, id, pos)
	}
	var out []int
	for pos := len(ids); len(out) < o.Tokens; pos++ {
		all := append(ids[:len(ids):len(ids)], out...)
		model.Penalize(logits, all[max(0, len(all)-o.PenaltyWindow):], o.RepetitionPenalty)
		next := sampler.Sample(logits)
		out = append(out, next)
		if pos == w.Config.Context {
			break
		}
		logits = model.Forward(w, s, mix, next, pos)
	}
	return string(tok.Decode(out))
}
