package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
)

// gpuSpeculative is self-speculative decoding on the gpu backend, the GPU
// twin of model.Speculator with a shared KV cache. A greedy round is
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
// A sampled round (temperature above 0) is one submission and one readback
// too, and emits the tokens model.Speculator emits for the same seed. The
// draft draws its proposals on the device with the sample kernel, which
// draws as model.Speculator.Pick does (model.Sampler's order, one number
// each) from the state of the module's generator, written to the device
// before the round; each draft step's logits are copied aside before the
// kernel turns them into probabilities. The readback is those k rows, the
// verifier's k+1 rows of logits and the k proposals. The module then draws
// the proposals again from the draft's rows with Pick — its generator
// moving on as the cpu backend's does, the rows becoming the distributions
// the test needs — and runs the cpu backend's test, model.Speculator.Judge,
// on them. (The device sums probabilities in another order than the CPU, so
// a draw within rounding of a boundary between two tokens could differ: the
// device's proposal, the one the verifier read, is kept; redrawn counts
// them.) A sampled round costs the copies, a readback of (2k+1)·vocab
// floats and the test on the CPU more than a greedy one.
//
// With k chosen round by round (adaptive), a round of k = 0 is a plain step
// of the verifier, and costs what one of the gpu backend costs: one
// single-row forward, argmax or the sample kernel writing the token into the
// tokens buffer at the next position, and those 4 bytes read back; the next
// round, if it is plain too, writes nothing (at a temperature the module's
// generator moves on by the kernel's one draw, so the device's state stays
// its own). Each round without a prompt is timed, from its recording to its
// tokens being known, into rounds (gpu_adaptive.go); once they are enough to
// fit, the chooser picks k from the fitted costs and the acceptance rate
// (and every plainEvery rounds of drafting one is plain, to keep the fit
// current; while it does not draft, a round now and then drafts one token,
// to keep that cost current), and until then the rounds alternate k = 0
// and k = 1.
type gpuSpeculative struct {
	g             *gpu
	draft, verify model.Mix
	k             int // proposals per round when fixed, at most the prefill batch less one

	adaptive *model.KChooser // chooses each round's k; nil when k is fixed
	rounds   *gpuRoundTimes  // the round times of this draft and verifier, shared across sequences
	clock    func() time.Duration
	began    time.Duration // when the round in flight was recorded
	timed    bool          // the round in flight is timed: it has no prompt
	probing  bool          // the round in flight drafts to re-time drafting while k auto does not draft

	// Sampling: sp holds the temperature and the sequence's generator, and
	// judges each round (Pick, Judge); nil when greedy.
	sp        *model.Speculator
	readback  *gpuReadback // where a sampled round gathers its rows for the readback
	rngSynced bool         // the device's sampler state is the generator's: no write before the next round
	rows      []float32    // a sampled round's rows, decoded from the readback
	proposal  []int        // a sampled round's proposals
	redrawn   int          // proposals the module drew otherwise from the draft's rows than the device did

	// onDevice is the token a plain round sampled, already in the tokens
	// buffer at position onDevicePos; -1 for none.
	onDevice, onDevicePos int

	round     []int // the tokens of the last round
	returned  int   // how many of them Token has returned
	proposed  int   // proposals in the round being read back
	readPos   int   // the position a plain round's token is read back from
	reading   bool
	ticket    webgpu.Ticket
	readBytes []byte
	stats     model.SpecStats
	lastK     int // proposals of the last round read back
}

// gpuReadback is the buffer that sampled rounds gather their rows in for
// their one readback, kept across sequences on one gpu and grown to the
// largest round asked for. A new gpu (another header or precision) releases
// the old one's buffers, this one with them.
type gpuReadback struct {
	g      *gpu
	buffer webgpu.Buffer
	size   int
}

// get returns a buffer of at least size bytes on g.
func (r *gpuReadback) get(g *gpu, size int) (webgpu.Buffer, error) {
	if r.g != g {
		*r = gpuReadback{g: g}
	}
	if r.size < size {
		if r.buffer != 0 {
			g.free(r.buffer)
			r.buffer, r.size = 0, 0
		}
		b, err := g.buffer("sampled round readback", size)
		if err != nil {
			return 0, err
		}
		r.buffer, r.size = b, size
	}
	return r.buffer, nil
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
	for _, t := range tokens {
		if t < 0 || t >= c.Vocab {
			return fmt.Errorf("%w: token %d outside the vocabulary", ErrArg, t)
		}
	}
	// A token a plain round sampled is on the device already, as after a
	// plain step of the gpu backend.
	if len(tokens) != 1 || tokens[0] != s.onDevice || pos != s.onDevicePos {
		ids := make([]byte, 4*len(tokens))
		for i, t := range tokens {
			binary.LittleEndian.PutUint32(ids[4*i:], uint32(t))
		}
		if err := g.device.WriteBuffer(g.tokens, uint64(4*pos), ids); err != nil {
			return fmt.Errorf("gpu: write tokens: %w", err)
		}
	}
	s.onDevice, s.onDevicePos = -1, -1
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
	if s.sp != nil {
		if !s.rngSynced {
			var state [4]byte
			binary.LittleEndian.PutUint32(state[:], s.sp.RNG.State())
			if err := g.device.WriteBuffer(g.rngState, 0, state[:]); err != nil {
				return fmt.Errorf("gpu: write sampler state: %w", err)
			}
		}
		// The round draws on the device: the generator catches up (and
		// the state is the generator's again) only once the round is read
		// back, not if it fails on the way.
		s.rngSynced = false
	}
	var read webgpu.Buffer
	var offset, size uint64
	switch {
	case k == 0:
		read, offset, size = s.recordPlain(pos)
	case s.sp != nil:
		var err error
		if read, size, err = s.recordSampled(pos, k); err != nil {
			return err
		}
	default:
		read, size = s.recordGreedy(pos, k)
	}
	if g.err != nil {
		return g.err
	}
	t, err := g.device.Read(read, offset, size)
	if err != nil {
		return fmt.Errorf("gpu: read round: %w", err)
	}
	s.ticket, s.proposed, s.readPos, s.reading = t, k, pos+1, true
	s.readBytes = slices.Grow(s.readBytes[:0], int(size))[:size]
	return nil
}

// recordPlain records a plain step of the verifier from the token at pos,
// as the gpu backend's: its token goes into the tokens buffer at pos+1, and
// that word is what is read back.
func (s *gpuSpeculative) recordPlain(pos int) (webgpu.Buffer, uint64, uint64) {
	g, vocab := s.g, s.g.config.Vocab
	g.forward(pos, 1, s.verify, false)
	if s.sp != nil {
		g.run(shaders.Sample.Call(shaders.SampleArgs{N: vocab, Temperature: s.sp.Temperature, OutIndex: pos + 1, Logits: g.logits, State: g.rngState, Out: g.tokens}))
	} else {
		g.run(shaders.Argmax.Call(shaders.ArgmaxArgs{N: vocab, OutIndex: pos + 1, X: g.logits, Out: g.tokens}))
	}
	return g.tokens, uint64(4 * (pos + 1)), 4
}

// recordGreedy records a greedy round of k proposals from the token at pos;
// the readback is the verifier's k+1 argmaxes, then the proposals.
func (s *gpuSpeculative) recordGreedy(pos, k int) (webgpu.Buffer, uint64) {
	g, vocab := s.g, s.g.config.Vocab
	for i := range k {
		g.forward(pos+i, 1, s.draft, false)
		g.run(shaders.Argmax.Call(shaders.ArgmaxArgs{N: vocab, OutIndex: pos + i + 1, X: g.logits, Out: g.tokens}))
	}
	g.forward(pos, k+1, s.verify, true)
	for r := range k + 1 {
		g.run(shaders.Argmax.Call(shaders.ArgmaxArgs{N: vocab, OutIndex: r, XOffset: r * vocab, X: g.logits, Out: g.verified}))
	}
	if g.err == nil {
		if err := g.device.Copy(g.tokens, uint64(4*(pos+1)), g.verified, uint64(4*(k+1)), uint64(4*k)); err != nil {
			g.err = fmt.Errorf("gpu: copy proposals: %w", err)
		}
	}
	return g.verified, uint64(4 * (2*k + 1))
}

// recordSampled records a sampled round of k proposals from the token at
// pos; the readback is the draft's logits [k][vocab], the verifier's
// [k+1][vocab], then the k proposals.
func (s *gpuSpeculative) recordSampled(pos, k int) (webgpu.Buffer, uint64, error) {
	g, vocab := s.g, s.g.config.Vocab
	row := uint64(4 * vocab)
	size := uint64(2*k+1)*row + uint64(4*k)
	out, err := s.readback.get(g, int(size))
	if err != nil {
		return 0, 0, err
	}
	copyRows := func(src webgpu.Buffer, srcOffset, dstOffset, n uint64) {
		if g.err == nil {
			if err := g.device.Copy(src, srcOffset, out, dstOffset, n); err != nil {
				g.err = fmt.Errorf("gpu: copy a sampled round's rows: %w", err)
			}
		}
	}
	for i := range k {
		g.forward(pos+i, 1, s.draft, false)
		copyRows(g.logits, 0, uint64(i)*row, row) // before the kernel turns them into probabilities
		g.run(shaders.Sample.Call(shaders.SampleArgs{N: vocab, Temperature: s.sp.Temperature, OutIndex: pos + i + 1, Logits: g.logits, State: g.rngState, Out: g.tokens}))
	}
	g.forward(pos, k+1, s.verify, true)
	copyRows(g.logits, 0, uint64(k)*row, uint64(k+1)*row)
	copyRows(g.tokens, uint64(4*(pos+1)), uint64(2*k+1)*row, uint64(4*k))
	return out, size, nil
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
		if err := s.accept(); err != nil {
			return 0, false, err
		}
		if s.timed {
			// Timed once the tokens are known: a sampled round's test on
			// the CPU is part of what it costs.
			s.observe()
		}
	}
	if s.returned >= len(s.round) {
		return 0, false, fmt.Errorf("%w: gpu: no round in flight", ErrState)
	}
	t := s.round[s.returned]
	s.returned++
	return t, true, nil
}

// word is word i of the readback, a token id.
func (s *gpuSpeculative) word(i int) (int, error) {
	t := int(binary.LittleEndian.Uint32(s.readBytes[4*i:]))
	if t >= s.g.config.Vocab {
		return 0, fmt.Errorf("gpu: round token %d outside the vocabulary %d", t, s.g.config.Vocab)
	}
	return t, nil
}

// accept turns the readback into the round's tokens.
func (s *gpuSpeculative) accept() error {
	k := s.proposed
	s.round, s.returned = s.round[:0], 0
	var accepted int
	var err error
	switch {
	case k == 0:
		var t int
		if t, err = s.word(0); err != nil {
			return err
		}
		s.round = append(s.round, t)
		s.onDevice, s.onDevicePos = t, s.readPos
		if s.sp != nil {
			s.sp.RNG.Uint32() // the sample kernel's one draw: the device's state is the generator's again
			s.rngSynced = true
		}
	case s.sp != nil:
		accepted, err = s.judge(k)
	default:
		accepted, err = s.acceptGreedy(k)
	}
	if err != nil {
		return err
	}
	if s.adaptive != nil {
		s.adaptive.Observe(accepted, k)
	}
	s.stats.Add(k, accepted, len(s.round))
	s.lastK = k
	return nil
}

// acceptGreedy reads a greedy round's readback (the verifier's k+1
// argmaxes, then the k proposals).
func (s *gpuSpeculative) acceptGreedy(k int) (int, error) {
	accepted := 0
	for ; ; accepted++ {
		best, err := s.word(accepted)
		if err != nil {
			return 0, err
		}
		if accepted == k {
			s.round = append(s.round, best)
			return accepted, nil
		}
		proposal, err := s.word(k + 1 + accepted)
		if err != nil {
			return 0, err
		}
		if proposal != best {
			s.round = append(s.round, best)
			return accepted, nil
		}
		s.round = append(s.round, proposal)
	}
}

// judge reads a sampled round's readback (the draft's k rows of logits, the
// verifier's k+1, the k proposals) and applies the cpu backend's test.
func (s *gpuSpeculative) judge(k int) (int, error) {
	vocab := s.g.config.Vocab
	n := (2*k + 1) * vocab
	s.rows = slices.Grow(s.rows[:0], n)[:n]
	for i := range s.rows {
		s.rows[i] = math.Float32frombits(binary.LittleEndian.Uint32(s.readBytes[4*i:]))
	}
	s.proposal = s.proposal[:0]
	for i := range k {
		t, err := s.word(n + i)
		if err != nil {
			return 0, err
		}
		s.proposal = append(s.proposal, t)
	}
	// The draft's draws again, as the cpu backend makes them: the
	// generator moves on past the device's draws, and each row becomes the
	// distribution its proposal was drawn from.
	for i := range k {
		if s.sp.Pick(s.rows[i*vocab:(i+1)*vocab]) != s.proposal[i] {
			s.redrawn++
		}
	}
	accepted, next := s.sp.Judge(s.rows[k*vocab:], s.rows[:k*vocab], s.proposal)
	s.round = append(append(s.round, s.proposal[:accepted]...), next)
	return accepted, nil
}

// nextK is the next round's k: the fixed one, or the chooser's from the
// round times fitted so far (k = 0 and 1 in turn while they are too few),
// with a plain round every plainEvery while it drafts, and while it does
// not, a round of one proposal now and then to re-time drafting
// (gpuRoundTimes.retimeDue).
func (s *gpuSpeculative) nextK() int {
	s.probing = false
	if s.adaptive == nil {
		return s.k
	}
	r := s.rounds
	if !r.ready() {
		return r.learningK()
	}
	s.adaptive.Costs = r.costs()
	k := s.adaptive.K()
	switch {
	case k > 0 && r.sincePlain >= plainEvery:
		return 0 // a plain round, to keep the fit's plain time current
	case k == 0 && r.retimeDue():
		s.probing = true
		return 1
	}
	return k
}

// observe records the time of the round just read back, and after a round
// that re-timed drafting, whether drafting at the cost it measured would
// pay: then the next such round comes soon, so that a fit a busy moment
// threw off is corrected within a few rounds.
func (s *gpuSpeculative) observe() {
	r := s.rounds
	r.observe(s.proposed, (s.clock() - s.began).Seconds())
	switch {
	case s.proposed == 0:
	case !s.probing:
		r.retimeAfter = 0 // the chooser drafts: the next wait starts afresh
	default:
		c := model.SpecCosts{Draft: max(r.perDraft[len(r.perDraft)-1], 0) * median(r.plain), VerifyBase: median(r.plain)}
		k, gain := c.BestK(s.adaptive.Alpha(), maxAdaptiveK)
		r.retimed(k > 0 && gain >= model.DraftGain)
	}
}
