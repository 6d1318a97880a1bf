package engine

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
)

// gpuSpeculative is self-speculative greedy decoding on the gpu backend,
// the GPU twin of model.Speculator with a shared KV cache. A round is
// recorded as one submission with one readback:
//
//  1. the draft mix decodes k tokens from cur at pos, one single-row forward
//     each, its argmax writing every proposal into the tokens buffer at the
//     next position, where the next draft step's embed reads it: the draft
//     never leaves the GPU;
//  2. the verifier reads cur and the k proposals in one batched forward (the
//     prefill path: matmul, reading each weight row once for k+1 tokens),
//     writing its keys and values over the draft's at pos … pos+k, with the
//     logits of every row; argmax of each row goes to verified[0 … k];
//  3. the proposals are copied after them, to verified[k+1 … 2k], and those
//     2k+1 words are read back.
//
// The accepted prefix is the proposals that equal the verifier's argmax at
// their position, followed by the verifier's own token where they first
// differ (or after the last). Rewinding is by position only: the cache past
// the accepted tokens holds stale entries that the next round overwrites
// before any query reaches them (attention reads positions ≤ its own).
// Greedy output is therefore the verifier's alone, token for token.
//
// With k chosen round by round (adaptive), a round of k = 0 is a plain
// step of the verifier: one single-row forward, its argmax, one word read
// back. Each round without a prompt is timed, from its recording to its
// readback's arrival, into rounds (gpu_adaptive.go); once they are enough to
// fit, the chooser picks k from the fitted costs and the acceptance rate
// (and every plainEvery rounds of drafting one is plain, to keep the fit
// current), and until then the rounds alternate k = 0 and k = 1.
type gpuSpeculative struct {
	g             *gpu
	draft, verify model.Mix
	k             int // proposals per round when fixed, at most the prefill batch less one

	adaptive *model.KChooser // chooses each round's k; nil when k is fixed
	rounds   *gpuRoundTimes  // the round times of this draft and verifier, shared across sequences
	clock    func() time.Duration
	began    time.Duration // when the round in flight was recorded
	timed    bool          // the round in flight is timed: it has no prompt

	round     []int // the tokens of the last round
	returned  int   // how many of them Token has returned
	proposed  int   // proposals in the round being read back
	reading   bool
	ticket    webgpu.Ticket
	readBytes []byte
	stats     model.SpecStats
	lastK     int // proposals of the last round read back
}

func (s *gpuSpeculative) Name() string { return "gpu" }

// Start records a round from the last of tokens (the earlier ones, a prompt,
// are prefilled with the verifier first), unless tokens is a token of the
// last round that Token has already returned: that one is in the cache.
func (s *gpuSpeculative) Start(tokens []int, pos int) error {
	if s.reading {
		return fmt.Errorf("%w: gpu: a round is already in flight", ErrState)
	}
	if s.returned < len(s.round) {
		return nil
	}
	g, c := s.g, s.g.config
	g.err = nil
	ids := make([]byte, 4*len(tokens))
	for i, t := range tokens {
		if t < 0 || t >= c.Vocab {
			return fmt.Errorf("%w: token %d outside the vocabulary", ErrArg, t)
		}
		binary.LittleEndian.PutUint32(ids[4*i:], uint32(t))
	}
	if err := g.device.WriteBuffer(g.tokens, uint64(4*pos), ids); err != nil {
		return fmt.Errorf("gpu: write tokens: %w", err)
	}
	prompt := len(tokens) - 1
	for done := 0; done < prompt; done += g.batch {
		g.forward(pos+done, min(g.batch, prompt-done), s.verify, false)
	}
	pos += prompt
	s.timed = s.adaptive != nil && prompt == 0
	if s.timed {
		s.began = s.clock()
	}
	k := max(min(s.nextK(), g.batch-1, c.Context-1-pos), 0)
	for i := range k {
		g.forward(pos+i, 1, s.draft, false)
		g.run(shaders.Argmax.Call(shaders.ArgmaxArgs{N: c.Vocab, OutIndex: pos + i + 1, X: g.logits, Out: g.tokens}))
	}
	g.forward(pos, k+1, s.verify, true)
	for r := range k + 1 {
		g.run(shaders.Argmax.Call(shaders.ArgmaxArgs{N: c.Vocab, OutIndex: r, XOffset: r * c.Vocab, X: g.logits, Out: g.verified}))
	}
	if g.err == nil && k > 0 {
		if err := g.device.Copy(g.tokens, uint64(4*(pos+1)), g.verified, uint64(4*(k+1)), uint64(4*k)); err != nil {
			g.err = fmt.Errorf("gpu: copy proposals: %w", err)
		}
	}
	if g.err != nil {
		return g.err
	}
	t, err := g.device.Read(g.verified, 0, uint64(4*(2*k+1)))
	if err != nil {
		return fmt.Errorf("gpu: read round: %w", err)
	}
	s.ticket, s.proposed, s.reading = t, k, true
	s.readBytes = make([]byte, 4*(2*k+1))
	return nil
}

// Token returns the round's tokens one at a time, once its readback is in.
func (s *gpuSpeculative) Token() (int, bool, error) {
	if s.reading {
		done, err := s.g.device.ReadResult(s.ticket, s.readBytes)
		if err != nil {
			s.reading = false
			return 0, false, fmt.Errorf("gpu: read round: %w", err)
		}
		if !done {
			return 0, false, nil
		}
		s.reading = false
		if s.timed {
			s.rounds.observe(s.proposed, (s.clock() - s.began).Seconds())
		}
		if err := s.accept(); err != nil {
			return 0, false, err
		}
	}
	if s.returned >= len(s.round) {
		return 0, false, fmt.Errorf("%w: gpu: no round in flight", ErrState)
	}
	t := s.round[s.returned]
	s.returned++
	return t, true, nil
}

// accept turns the readback (the verifier's k+1 argmaxes, then the k
// proposals) into the round's tokens.
func (s *gpuSpeculative) accept() error {
	k := s.proposed
	word := func(i int) (int, error) {
		t := int(binary.LittleEndian.Uint32(s.readBytes[4*i:]))
		if t >= s.g.config.Vocab {
			return 0, fmt.Errorf("gpu: round token %d outside the vocabulary %d", t, s.g.config.Vocab)
		}
		return t, nil
	}
	s.round, s.returned = s.round[:0], 0
	accepted := 0
	for ; ; accepted++ {
		best, err := word(accepted)
		if err != nil {
			return err
		}
		if accepted == k {
			s.round = append(s.round, best)
			break
		}
		proposal, err := word(k + 1 + accepted)
		if err != nil {
			return err
		}
		if proposal != best {
			s.round = append(s.round, best)
			break
		}
		s.round = append(s.round, proposal)
	}
	if s.adaptive != nil {
		s.adaptive.Observe(accepted, k)
	}
	s.stats.Rounds++
	s.stats.Proposed += k
	s.stats.Accepted += accepted
	s.stats.Emitted += len(s.round)
	s.lastK = k
	return nil
}

// nextK is the next round's k: the fixed one, or the chooser's from the
// round times fitted so far (k = 0 and 1 in turn while they are too few),
// with a plain round every plainEvery while it drafts.
func (s *gpuSpeculative) nextK() int {
	if s.adaptive == nil {
		return s.k
	}
	if !s.rounds.ready() {
		return s.rounds.learningK()
	}
	s.adaptive.Costs = s.rounds.costs()
	k := s.adaptive.K()
	if k > 0 && s.rounds.sincePlain >= plainEvery {
		return 0 // a plain round, to keep the fit's plain time current
	}
	return k
}
