package model

// Self-speculative decoding (MatFormer's third result): a small nested
// submodel, the draft, proposes k tokens; the verifier checks all of them in
// one ForwardMany and keeps the longest agreeing prefix plus one token of its
// own. The draft is a prefix of the verifier's weights, so it costs no extra
// memory, and the two can share one KV cache: the verifier overwrites the
// draft's keys and values at every position it checks, so the draft always
// attends to the verifier's history.

// Speculator decodes with a draft and a verifier Mix of the same weights.
type Speculator struct {
	Weights *Weights
	Draft   Mix
	Verify  Mix
	K       int // tokens the draft proposes per round (≥ 1)
	// Shared makes draft and verifier use one KV cache; otherwise the draft
	// keeps its own, which costs another [layers][context][dim] × 2 floats.
	Shared bool
	// Temperature 0 is greedy: the output is exactly the verifier's greedy
	// decoding. Above 0, tokens are drawn from softmax(logits/Temperature)
	// with the speculative sampling rule, so the output has the verifier's
	// distribution.
	Temperature float32
	RNG         *RNG
	// Adaptive, when set, chooses each round's k (K is then ignored); k = 0
	// rounds are plain decoding steps of the verifier.
	Adaptive *KChooser
	// DraftWeights, when set, are another model's weights to draft with (an
	// independently trained small model with the same tokenizer); Draft is
	// then a mix of those weights, and the caches cannot be shared.
	DraftWeights *Weights

	// lag holds the tokens, from position lagPos on, that Prefill and plain
	// (k = 0) rounds gave the verifier but not yet a separate draft cache:
	// the draft reads them in one pass when it next drafts.
	lag    []int
	lagPos int
	// seq and dists are every round's scratch, so that a round allocates
	// nothing: seq holds the round's current token and proposal (then its
	// output), dists the draft's distributions [k][vocab] when sampling.
	seq   []int
	dists []float32
	// sampler draws the sampled tokens (Pick), its ranking scratch reused.
	sampler Sampler
}

// DraftModel is the weights the draft runs on: DraftWeights, or Weights.
func (sp *Speculator) DraftModel() *Weights {
	if sp.DraftWeights != nil {
		return sp.DraftWeights
	}
	return sp.Weights
}

// SpecStats counts what a speculative decode did.
type SpecStats struct {
	Rounds   int // draft-and-verify rounds
	Proposed int // draft tokens proposed
	Accepted int // draft tokens the verifier kept
	Emitted  int // tokens output (accepted + one per round, up to the limit)
}

// Add counts one round that proposed draft tokens, kept accepted of them and
// emitted tokens.
func (s *SpecStats) Add(proposed, accepted, emitted int) {
	s.Rounds++
	s.Proposed += proposed
	s.Accepted += accepted
	s.Emitted += emitted
}

// AcceptanceRate is the share of proposed draft tokens the verifier kept.
func (s SpecStats) AcceptanceRate() float64 {
	return float64(s.Accepted) / float64(max(s.Proposed, 1))
}

// Generate continues prompt (at least one token) with up to n new tokens,
// stopping early when the context is full.
func (sp *Speculator) Generate(prompt []int, n int) ([]int, SpecStats) {
	c := sp.Weights.Config
	if len(prompt) == 0 || len(prompt) > c.Context || (sp.K < 1 && sp.Adaptive == nil) {
		panic("model: Speculator.Generate: empty or too long prompt, or K < 1 and not adaptive")
	}
	verifier, draft := sp.NewStates()
	// The verifier has read the prompt up to its last token, which is the
	// "current" token of the first round, at position pos.
	sp.Prefill(verifier, draft, prompt[:len(prompt)-1], 0)
	pos, cur := len(prompt)-1, prompt[len(prompt)-1]
	out := make([]int, 0, n+maxDraftPerK+1)
	var st SpecStats
	for len(out) < n && pos < c.Context {
		// Always K, as a decoder that does not know n would: the same seed
		// then gives the same tokens whoever drives the rounds.
		tokens, accepted, proposed := sp.Round(verifier, draft, cur, pos, sp.NextK())
		sp.Observe(accepted, proposed)
		st.Rounds++
		st.Proposed += proposed
		st.Accepted += accepted
		out = append(out, tokens...)
		pos += len(tokens)
		cur = tokens[len(tokens)-1]
	}
	if len(out) > n {
		out = out[:n]
	}
	st.Emitted = len(out)
	return out, st
}

// NextK is the number of draft tokens for the next round: K, or the adaptive
// choice.
func (sp *Speculator) NextK() int {
	if sp.Adaptive != nil {
		return sp.Adaptive.K()
	}
	return sp.K
}

// Observe tells the adaptive choice of k what a round did.
func (sp *Speculator) Observe(accepted, proposed int) {
	if sp.Adaptive != nil {
		sp.Adaptive.Observe(accepted, proposed)
	}
}

// NewStates allocates the verifier's state and the draft's: the same one
// when the cache is shared.
func (sp *Speculator) NewStates() (verifier, draft *State) {
	sp.lag = sp.lag[:0]
	verifier = NewState(sp.Weights.Config)
	if sp.Shared && sp.DraftWeights == nil {
		return verifier, verifier
	}
	return verifier, NewState(sp.DraftModel().Config)
}

// Prefill feeds tokens at positions pos, pos+1, … into the verifier's cache.
// A separate draft cache reads them when the draft next drafts, so that a
// decode whose k auto never drafts never pays for the draft's cache.
func (sp *Speculator) Prefill(verifier, draft *State, tokens []int, pos int) {
	if len(tokens) == 0 {
		return
	}
	ForwardManyLast(sp.Weights, verifier, sp.Verify, tokens, pos)
	if draft != verifier {
		sp.deferDraft(pos, tokens...)
	}
}

// deferDraft records tokens at positions pos, pos+1, … for a separate draft
// cache, which reads them all in one pass when the draft next drafts. A pos
// inside the tokens already waiting rewinds them to pos; one past their end
// drops them (the draft then lacks those positions, which costs acceptance,
// never exactness).
func (sp *Speculator) deferDraft(pos int, tokens ...int) {
	if end := sp.lagPos + len(sp.lag); len(sp.lag) > 0 && pos != end {
		if pos > sp.lagPos && pos < end {
			sp.lag = sp.lag[:pos-sp.lagPos]
		} else {
			sp.lag = sp.lag[:0]
		}
	}
	if len(sp.lag) == 0 {
		sp.lagPos = pos
	}
	sp.lag = append(sp.lag, tokens...)
}

// Round is one draft-and-verify round from token cur at position pos, with
// positions before pos in the caches. The draft proposes up to k tokens (fewer
// near the end of the context); the verifier reads cur and the proposal in
// one ForwardMany. It returns the proposal's accepted prefix followed by one
// token of the verifier's own (valid until the next Round on sp), how many
// were accepted and how many proposed. Afterwards the caches hold the
// verifier's keys and values for cur and the accepted tokens, so the next
// round starts from the last returned token at pos+len(tokens).
func (sp *Speculator) Round(verifier, draft *State, cur, pos, k int) (tokens []int, accepted, proposed int) {
	c := sp.Weights.Config
	vocab := c.Vocab
	k = max(min(k, c.Context-1-pos), 0)
	if k == 0 {
		// A plain step: the verifier's own token, drawn as a round would
		// draw it (same numbers, same random draws), without the copies.
		logits := Forward(sp.Weights, verifier, sp.Verify, cur, pos)
		if draft != verifier {
			sp.deferDraft(pos, cur) // for the draft's cache, when it next drafts
		}
		sp.seq = append(sp.seq[:0], sp.Pick(logits))
		return sp.seq, 0, 0
	}
	if len(sp.lag) > 0 {
		ForwardManyLast(sp.DraftModel(), draft, sp.Draft, sp.lag, sp.lagPos)
		sp.lag = sp.lag[:0]
	}
	// Greedy rounds only compare argmaxes, so they keep no logits; sampled
	// ones keep the draft's distributions for the acceptance test.
	sampled := sp.Temperature > 0
	if sampled && cap(sp.dists) < k*vocab {
		sp.dists = make([]float32, k*vocab)
	}
	sp.seq = append(sp.seq[:0], cur)
	tok := cur
	for i := range k {
		logits := Forward(sp.DraftModel(), draft, sp.Draft, tok, pos+i)
		if sampled {
			logits = sp.dists[i*vocab : (i+1)*vocab]
			copy(logits, draft.Logits)
		}
		tok = sp.Pick(logits)
		sp.seq = append(sp.seq, tok)
	}
	proposal := sp.seq[1:]
	logits := ForwardMany(sp.Weights, verifier, sp.Verify, sp.seq, pos)
	accepted, next := sp.Judge(logits, sp.dists, proposal)
	if draft != verifier && accepted == k {
		// The draft never read its last proposal; its cache at that position
		// must hold the draft's own keys and values.
		Forward(sp.DraftModel(), draft, sp.Draft, proposal[k-1], pos+k)
	}
	return append(proposal[:accepted], next), accepted, k
}

// Judge is the verifier's test of a round's k proposals: logits holds the
// verifier's logits [k+1][vocab] at the round's positions (its current
// token's, then each proposal's), dists the draft's distributions [k][vocab]
// the proposals were drawn from (sampled only; greedy ignores it), proposal
// the k drafted tokens. It returns how many proposals the verifier keeps and
// the token after them: its correction at the first one it rejects, or its
// own next token after the last. The rows it reads of logits become
// distributions (and residuals) in place, and it draws from RNG in this
// order: per proposal tested one number, one more to resample a rejected
// one's residual, or to draw the next token after the last. Round runs it on
// its own rows; the gpu backend on the rows it reads back from the device, so
// that both emit the same tokens for the same seed.
func (sp *Speculator) Judge(logits, dists []float32, proposal []int) (accepted, next int) {
	k := len(proposal)
	vocab := len(logits) / (k + 1)
	for i := 0; ; i++ {
		p := logits[i*vocab : (i+1)*vocab]
		if i == k {
			return k, sp.Pick(p) // every proposal kept: the verifier's own next token
		}
		var q []float32
		if sp.Temperature > 0 {
			q = dists[i*vocab : (i+1)*vocab]
		}
		if ok, corrected := sp.accept(p, q, proposal[i]); !ok {
			return i, corrected
		}
	}
}

// Pick draws a token from logits (the argmax at temperature 0) and leaves the
// distribution it drew from in logits. A sampled draw is model.Sampler's with
// nothing cut (one number from RNG, the vocabulary walked most likely first):
// the shaders' sample kernel draws the same way, so the gpu backend's draft,
// which draws on the device, proposes what the draft proposes here.
func (sp *Speculator) Pick(logits []float32) int {
	if sp.Temperature <= 0 {
		return Argmax(logits)
	}
	sp.sampler.Temperature, sp.sampler.RNG = sp.Temperature, sp.RNG
	return sp.sampler.Sample(logits)
}

// State is the generator's state word, from which the shaders' sample kernel
// continues the stream (shaders.SamplerState gives it for a new generator):
// the gpu backend's speculative sampling draws the draft's tokens on the
// device from the state the module's generator has reached.
func (r *RNG) State() uint32 { return r.state }

// accept applies the verifier's test to a draft token, given the verifier's
// logits p (turned into its distribution) and the draft's distribution q.
// Greedy: keep it if it is the verifier's argmax, else correct to that. Sampled
// (Leviathan et al. 2023): keep it with probability min(1, p/q), else draw
// from the residual max(0, p − q), normalized.
func (sp *Speculator) accept(p, q []float32, token int) (bool, int) {
	if sp.Temperature <= 0 {
		best := Argmax(p)
		return best == token, best
	}
	toDistribution(p, sp.Temperature)
	if u := sp.RNG.Float32(); q[token] > 0 && u*q[token] < p[token] {
		return true, token
	}
	var total float32
	for i := range p {
		p[i] = max(p[i]-q[i], 0)
		total += p[i]
	}
	if total == 0 { // p ≤ q everywhere only when p = q: any draw from p is exact
		return true, token
	}
	return false, drawFrom(p, sp.RNG.Float32())
}

// toDistribution turns logits into softmax(logits / temperature) in place.
func toDistribution(logits []float32, temperature float32) {
	for i := range logits {
		logits[i] /= temperature
	}
	Softmax(logits)
}

// drawFrom returns the first index where the running sum of weights exceeds
// u times their total.
func drawFrom(weights []float32, u float32) int {
	var total float32
	for _, v := range weights {
		total += v
	}
	u *= total
	for i, v := range weights {
		u -= v
		if u < 0 {
			return i
		}
	}
	for i := len(weights) - 1; i > 0; i-- {
		if weights[i] > 0 {
			return i
		}
	}
	return 0
}
