// Package engine runs a MatFormer Mix on a backend. It is the heart of the
// wasm module: the exports in package main only move bytes in and out of it,
// so the same engine is tested natively and inside the module.
//
// The life of an engine: LoadHeader → Feed (weights bytes, any order) →
// SetMix → Reset (sampling options) → Prompt → Step, Step, … (its states and
// what each allows are in state.go). A Mix can be changed between
// generations; only the bytes it lacks must be fed.
//
// Two things follow the mix and are kept apart: the rows of each layer's FFN
// held in memory (Held), which only grow — SetMix makes room for a mix's
// rows, Feed for wider rows that arrive — and the mix that runs (Mix), any
// mix no wider than what is held. Switching to a narrower mix drops no row
// and needs no byte; a wider one needs only the rows not held yet.
//
// Two backends run a step: cpu (model.Forward inside the module) and gpu (the
// WGSL kernels of package shaders through package webgpu, gpu.go). A GPU
// step ends in an asynchronous readback of the sampled token, so Step may
// return ErrPending: call it again once the host has completed the read.
package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
)

// Errors the exports map to ABI codes.
var (
	ErrState   = errors.New("engine: call out of order")
	ErrMissing = errors.New("engine: weights for this mix are not loaded yet")
	ErrBackend = errors.New("engine: backend not available")
	ErrArg     = errors.New("engine: bad argument")
	ErrDone    = errors.New("engine: sequence is at the context limit")
	ErrPending = errors.New("engine: waiting for a GPU readback; step again")
)

// Options configure one generation; they are the ABI's document (abi.Options).
type Options = abi.Options

// Engine holds one model and one sequence.
type Engine struct {
	state  state // which calls come next (state.go)
	header *weights.Header
	asm    *weights.Assembler // the weights fed so far, in memory up to the rows held per layer (Held)
	// mix is what the next Reset (and Classify) runs: never wider than
	// the rows held (run checks it); nil until SetMix.
	mix     model.Mix
	backend Backend
	running model.Mix // the mix the sequence was reset with (the verifier's, speculating), which its steps run
	queued  []int     // tokens to feed before the next sample: the prompt, then each sampled token
	pos     int       // tokens already in the KV cache

	// OpenGPU opens the device of the gpu backend; nil means webgpu.Open.
	// The device, once open, and its weight buffers outlive a sequence.
	OpenGPU func() (webgpu.Device, error)
	// MaxBytes bounds what a model's weights and one sequence's state may
	// take, for a host that caps the module's memory below 4 GiB; 0 means
	// MaxModelBytes. Like OpenGPU, it outlives LoadHeader.
	MaxBytes  int64
	device    webgpu.Device
	deviceErr error // why OpenGPU failed, so that auto does not retry it every reset
	gpu       *gpu  // weights and buffers on device, for header

	// specCosts caches the measured costs of speculative decoding's steps,
	// by draft and verifier mix, for the weights in memory.
	specCosts map[string]model.SpecCosts
	// gpuRoundTimes holds the gpu backend's timed speculative rounds, by
	// draft, mix and precision, for the weights in memory (gpu_adaptive.go);
	// roundClock, when not nil, replaces the clock they are timed with (tests).
	gpuRoundTimes map[string]*gpuRoundTimes
	roundClock    func() time.Duration
	// gpuReadback is where the gpu backend's sampled speculative rounds
	// gather their rows for the readback, kept across sequences.
	gpuReadback gpuReadback
	// cpuState is the CPU backend's activations and KV cache, kept across
	// sequences of one header: a sequence overwrites each cache position
	// before reading it, and reusing it leaves no garbage for the collector.
	cpuState *model.State

	// A vision model's: the batch classify runs images through, and the
	// retrieval index load_index loaded (dropped with the model).
	visionBatch *model.Batch
	index       *weights.Index
}

// Backend runs the network one step at a time for one Mix and samples the
// next token where the activations are, so that a GPU step reads back only
// the token's id.
type Backend interface {
	// Name is "cpu" or "gpu".
	Name() string
	// Start feeds tokens at positions pos, pos+1, … and starts sampling the
	// token after them.
	Start(tokens []int, pos int) error
	// Token returns the sampled token; ready is false while it is still on
	// its way (a readback the host has not completed): call Token again later.
	Token() (token int, ready bool, err error)
}

// LoadHeader parses the header from the first bytes of a weights file.
// fileSize is the whole file's size, or -1 if unknown.
func (e *Engine) LoadHeader(b []byte, fileSize int64) (*weights.Header, error) {
	h, err := weights.ParseHeader(b, fileSize)
	if err != nil {
		return nil, err
	}
	// The weights live in the module's memory once decoded: a header that
	// promises more than a wasm32 module can address (a lying one, with the
	// file size unknown) is refused here rather than by an out-of-memory trap.
	// DataSize comes from the file and may be up to 2^63-1: compare without
	// adding it (the state is bounded by the config's limits, below 2^44).
	limit := int64(MaxModelBytes)
	if e.MaxBytes > 0 {
		limit = min(limit, e.MaxBytes)
	}
	if state := maxStateBytes(h); state > limit || h.DataSize > limit-state {
		return nil, fmt.Errorf("%w: the model needs %d bytes of weights and %d of state, this module can hold %d", weights.ErrTooLarge, h.DataSize, state, limit)
	}
	if e.gpu != nil {
		e.gpu.release()
	}
	*e = Engine{state: headerLoaded, header: h, asm: weights.NewAssembler(h), OpenGPU: e.OpenGPU, MaxBytes: e.MaxBytes, device: e.device, deviceErr: e.deviceErr}
	return h, nil
}

// MaxModelBytes is how much of the module's 4 GiB address space the weights
// and one sequence's state may take; the rest is for the Go runtime and copies.
const MaxModelBytes = 3 << 30

// maxStateBytes is the size of one sequence's KV cache and activations.
func maxStateBytes(h *weights.Header) int64 {
	c := h.Config
	return 4 * (2*int64(c.Layers)*int64(c.Context)*int64(c.Dim) + int64(c.Heads)*int64(c.Context) + int64(c.Vocab) + 6*int64(c.Hidden()))
}

// Header is the loaded header, or nil.
func (e *Engine) Header() *weights.Header { return e.header }

// Feed delivers weights bytes that start at offset in the file.
func (e *Engine) Feed(offset int64, b []byte) error {
	if err := e.Allowed(CallFeed); err != nil {
		return err
	}
	return e.asm.Feed(offset, b)
}

// Missing returns the byte ranges mix still needs.
func (e *Engine) Missing(mix model.Mix) []weights.Range { return e.asm.Missing(mix) }

// Held is, per layer, the widest granularity whose FFN rows are in memory
// (fed or with room made for them); nil before anything is. It only grows
// while one header is loaded.
func (e *Engine) Held() model.Mix {
	if e.asm == nil {
		return nil
	}
	return e.asm.Held()
}

// ParseMix reads a mix spec: a granularity name, a comma list with one per
// layer, or "auto" — the largest uniform granularity whose bytes are all here.
func (e *Engine) ParseMix(spec string) (model.Mix, error) {
	if err := e.Allowed(CallSetMix); err != nil {
		return nil, err
	}
	c := e.header.Config
	if spec == "auto" {
		for g := c.Granularities() - 1; g > 0; g-- {
			if len(e.asm.Missing(c.Uniform(g))) == 0 {
				return c.Uniform(g), nil
			}
		}
		return c.Uniform(0), nil
	}
	mix, err := c.ParseMix(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArg, err)
	}
	return mix, nil
}

// SetMix selects the submodel for the next generation. The weights it needs
// may still be arriving; Reset checks that they are all there.
func (e *Engine) SetMix(mix model.Mix) error {
	if err := e.Allowed(CallSetMix); err != nil {
		return err
	}
	if err := e.header.Config.CheckMix(mix); err != nil {
		return fmt.Errorf("%w: %v", ErrArg, err)
	}
	e.hold(mix)
	if err := e.run(mix); err != nil {
		return err
	}
	if e.state < prompted {
		e.state = mixSet // a sequence reset but not prompted is dropped: the next prompt needs a reset
	}
	return nil
}

// hold makes room in memory for every FFN row mix uses, in one allocation;
// what is held already stays (nothing is dropped for a narrower mix).
func (e *Engine) hold(mix model.Mix) { e.asm.Reserve(mix) }

// run makes mix the one the next Reset runs. It is the one place that sets
// the mix, and checks that memory holds its rows: a forward pass of a mix
// wider than the rows held would read past them.
func (e *Engine) run(mix model.Mix) error {
	held := e.Held()
	for l, g := range mix {
		if held == nil || g > held[l] {
			return fmt.Errorf("engine: the mix %s is wider than the rows held in memory (%s)", e.header.Config.MixSpec(mix), e.header.Config.MixSpec(held))
		}
	}
	e.mix = mix
	return nil
}

// Mix is the current mix.
func (e *Engine) Mix() model.Mix { return e.mix }

// CheckOptions checks what Reset can check of o without a model: the
// sampling ranges, the precision and the backend's name. Hosts call it to
// refuse bad options before any work; Reset calls it too.
func CheckOptions(o Options) error {
	// NaN fails every comparison, so the ranges are written to accept, not
	// to refuse. A temperature below 0.01 or above 100 would overflow or
	// flatten the logits to nothing useful: 0 is greedy.
	temperatureOK := o.Temperature == 0 || (o.Temperature >= 0.01 && o.Temperature <= 100)
	if !temperatureOK || !(o.TopP >= 0 && o.TopP <= 1) || o.TopK < 0 {
		return fmt.Errorf("%w: temperature %g (want 0, or 0.01 to 100), top_k %d (want ≥ 0), top_p %g (want 0 to 1)", ErrArg, o.Temperature, o.TopK, o.TopP)
	}
	if o.Precision != "" && o.Precision != "f32" && o.Precision != "f16" {
		return fmt.Errorf("%w: precision %q (want f32 or f16)", ErrArg, o.Precision)
	}
	switch o.Backend {
	case "", "cpu", "gpu", "auto":
	default:
		return fmt.Errorf("%w: backend %q (want cpu, gpu or auto)", ErrArg, o.Backend)
	}
	return nil
}

// Reset starts a new sequence with the given options on the current Mix.
func (e *Engine) Reset(o Options) error {
	if err := e.Allowed(CallReset); err != nil {
		return err
	}
	if missing := e.asm.Missing(e.mix); len(missing) > 0 {
		return fmt.Errorf("%w: %d bytes in %d ranges, first at offset %d", ErrMissing, weights.Bytes(missing), len(missing), missing[0].Offset)
	}
	if err := CheckOptions(o); err != nil {
		return err
	}
	if err := e.checkShaping(o); err != nil {
		return err
	}
	if o.Route != 0 {
		return e.resetRouted(o)
	}
	if o.Draft != "" {
		spec, err := e.speculator(o)
		if err != nil {
			return err
		}
		e.begin(spec)
		return nil
	}
	if o.DraftTokens != 0 {
		return fmt.Errorf("%w: draft_tokens %d without a draft", ErrArg, o.DraftTokens)
	}
	switch o.Backend {
	case "", "cpu":
		e.begin(e.newCPU(o))
	case "gpu":
		g, err := e.startGPU(o)
		if err != nil {
			return err
		}
		e.begin(g)
	case "auto":
		if g, err := e.startGPU(o); err == nil {
			e.begin(g)
		} else {
			e.begin(e.newCPU(o))
		}
	default:
		return fmt.Errorf("%w: backend %q (want cpu, gpu or auto)", ErrArg, o.Backend)
	}
	return nil
}

// begin starts a sequence on b: Reset's last step, once nothing can fail.
func (e *Engine) begin(b Backend) {
	e.backend, e.running = b, slices.Clone(e.mix)
	e.queued, e.pos, e.state = nil, 0, sequence
}

// checkShaping refuses penalties and min_p out of range, or with a draft.
func (e *Engine) checkShaping(o Options) error {
	rep, pres, minP := o.RepetitionPenalty, o.PresencePenalty, o.MinP
	if !(rep == 0 || (rep >= 1 && rep <= 10)) || !(pres >= -2 && pres <= 2) || !(minP >= 0 && minP <= 1) ||
		o.PenaltyWindow < 0 || o.PenaltyWindow > e.header.Config.Context {
		return fmt.Errorf("%w: repetition_penalty %g (want 0, or 1 to 10), presence_penalty %g (want -2 to 2), min_p %g (want 0 to 1), penalty_window %d (want 0 to %d)",
			ErrArg, rep, pres, minP, o.PenaltyWindow, e.header.Config.Context)
	}
	if o.Draft != "" && o.Shapes() {
		return fmt.Errorf("%w: repetition_penalty, presence_penalty and min_p do not combine with a draft", ErrArg)
	}
	return nil
}

// startGPU opens the device once, builds the weight buffers for this header
// and precision once, and uploads what the mix still lacks.
func (e *Engine) startGPU(o Options) (*gpu, error) {
	if e.device == nil && e.deviceErr == nil {
		open := e.OpenGPU
		if open == nil {
			open = webgpu.Open
		}
		e.device, e.deviceErr = open()
	}
	if e.deviceErr != nil {
		return nil, errNoGPU(e.deviceErr)
	}
	half := o.Precision == "f16"
	if e.gpu != nil && e.gpu.half != half {
		e.gpu.release()
		e.gpu = nil
	}
	if e.gpu == nil {
		g, err := newGPU(e.device, e.header, half)
		if err != nil {
			return nil, errNoGPU(err)
		}
		e.gpu = g
	}
	if err := e.gpu.prepare(e.asm.Weights, e.mix, o); err != nil {
		return nil, errNoGPU(err)
	}
	return e.gpu, nil
}

// Backend names the backend of the current sequence.
func (e *Engine) Backend() string {
	if e.backend == nil {
		return ""
	}
	return e.backend.Name()
}

// Speculation reports what self-speculative decoding did in the sequence
// since the last Reset: zeros and an empty draft when it does not speculate
// (or no model is loaded), never an error.
func (e *Engine) Speculation() abi.SpeculationInfo {
	info := abi.SpeculationInfo{Draft: []string{}}
	var draft model.Mix
	var st model.SpecStats
	switch s := e.backend.(type) {
	case *speculative:
		draft, st, info.K = s.sp.Draft, s.stats, s.lastK
	case *gpuSpeculative:
		draft, st, info.K = s.draft, s.stats, s.lastK
	default:
		return info
	}
	info.Draft = e.header.Config.MixNames(draft)
	info.Proposed, info.Accepted, info.Rounds = st.Proposed, st.Accepted, st.Rounds
	return info
}

// Prompt encodes text and queues it; it returns the prompt's token ids.
func (e *Engine) Prompt(text []byte) ([]int, error) {
	if err := e.Allowed(CallPrompt); err != nil {
		return nil, err
	}
	ids := e.header.Tokenizer.Encode(text)
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: empty prompt", ErrArg)
	}
	if len(ids) >= e.header.Config.Context {
		return nil, fmt.Errorf("%w: prompt is %d tokens, context is %d", ErrArg, len(ids), e.header.Config.Context)
	}
	e.queued, e.state = ids, prompted
	return ids, nil
}

// Step feeds what is queued and samples the next token. It returns ErrDone
// when the context is full, and ErrPending while the sampled token is still
// being read back from the GPU: then call Step again (it does not redo the
// work) once the host has had a chance to complete the read.
func (e *Engine) Step() (int, error) {
	if err := e.Allowed(CallStep); err != nil {
		return 0, err
	}
	if e.state == prompted {
		if e.pos+len(e.queued) > e.header.Config.Context {
			return 0, ErrDone
		}
		if err := e.backend.Start(e.queued, e.pos); err != nil {
			return 0, err
		}
		e.state = stepping
	}
	token, ready, err := e.backend.Token()
	if err != nil {
		e.state = prompted
		return 0, err
	}
	if !ready {
		return 0, ErrPending
	}
	e.state = prompted
	e.pos += len(e.queued)
	e.queued = append(e.queued[:0], token)
	return token, nil
}

// resetRouted starts a routed sequence: o.Route is the budget, a fraction
// of XL's FFN FLOPs, and the mix caps each layer's width. Backend gpu runs
// the routers on the device (gpu.routeAt), cpu in model.ForwardRouted, and
// auto as without a route: the gpu when its device opens, else the cpu.
func (e *Engine) resetRouted(o Options) error {
	switch {
	case !(o.Route > 0 && o.Route <= 1):
		return fmt.Errorf("%w: route %g (want a fraction of XL's FFN FLOPs in (0, 1], or 0 for off)", ErrArg, o.Route)
	case o.Draft != "" || o.DraftTokens != 0:
		return fmt.Errorf("%w: route and draft together are not supported", ErrArg)
	case o.Backend != "" && o.Backend != "cpu" && o.Backend != "auto" && o.Backend != "gpu":
		return fmt.Errorf("%w: backend %q (want cpu, gpu or auto)", ErrArg, o.Backend)
	}
	w := e.asm.Weights
	if err := w.CheckRouter(); err != nil {
		return fmt.Errorf("%w: route: %v", ErrArg, err)
	}
	tau := w.RouteThreshold(float64(o.Route))
	if o.Backend == "gpu" || o.Backend == "auto" {
		g, err := e.startGPU(o)
		if err == nil {
			err = g.routeAt(tau)
		}
		if err == nil {
			e.begin(g)
			return nil
		}
		if o.Backend == "gpu" {
			return err
		}
	}
	c := e.newCPU(o)
	pick, mix := w.Threshold(tau), e.mix
	c.route = func(l int, n []float32) int { return min(pick(l, n), mix[l]) }
	c.widths = slices.Clone(mix)
	e.begin(c)
	return nil
}

// Widths returns the granularity each layer ran for the last position of the
// last step: the router's picks on a routed sequence, else the mix. ErrState
// before a sequence has stepped.
func (e *Engine) Widths() ([]int, error) {
	if err := e.Allowed(CallWidths); err != nil {
		return nil, err
	}
	switch b := e.backend.(type) {
	case *cpu:
		if b.route != nil {
			return slices.Clone(b.widths), nil
		}
	case *gpu:
		if b.route != nil {
			return slices.Clone(b.route.picks), nil
		}
	}
	// The mix the sequence was reset with: set_mix during a sequence
	// changes the next Reset's mix, not this one's.
	return slices.Clone(e.running), nil
}

// Piece is the bytes of a token.
func (e *Engine) Piece(token int) []byte { return e.header.Tokenizer.Piece(token) }

// cpu is the backend that runs model.Forward and model.Sampler inside the module.
type cpu struct {
	weights *model.Weights
	mix     model.Mix
	state   *model.State
	sampler model.Sampler
	token   int
	// The penalties, and the tokens fed so far when they are on.
	repetition, presence float32
	window               int
	history              []int
	// route, when not nil, picks each token's granularity per layer
	// (capped at mix); widths holds the last position's picks.
	route  model.Picker
	widths []int // [layers]
}

func (e *Engine) newCPU(o Options) *cpu {
	w := e.asm.Weights
	if e.cpuState == nil {
		e.cpuState = model.NewState(w.Config)
	}
	window := o.PenaltyWindow
	if window == 0 {
		window = abi.DefaultPenaltyWindow
	}
	return &cpu{weights: w, mix: e.mix, state: e.cpuState,
		sampler:    model.Sampler{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, MinP: o.MinP, RNG: model.NewRNG(o.Seed)},
		repetition: o.RepetitionPenalty, presence: o.PresencePenalty, window: window}
}

func (c *cpu) Name() string { return "cpu" }

// Start runs a prompt through ForwardManyLast, which visits each weight row
// once for all its tokens (the kernels' batched products) and computes the
// output head for the last token only, and a single token through Forward;
// both give the bits of one Forward per token.
func (c *cpu) Start(tokens []int, pos int) error {
	var logits []float32
	switch {
	case c.route != nil:
		for i, t := range tokens {
			logits = model.ForwardRouted(c.weights, c.state, c.route, t, pos+i, c.widths)
		}
	case len(tokens) == 1:
		logits = model.Forward(c.weights, c.state, c.mix, tokens[0], pos)
	default:
		logits = model.ForwardManyLast(c.weights, c.state, c.mix, tokens, pos)
	}
	if c.repetition > 1 || c.presence != 0 {
		c.history = append(c.history, tokens...)
		recent := c.history[max(0, len(c.history)-c.window):]
		model.Penalize(logits, recent, c.repetition)
		model.PenalizePresence(logits, recent, c.presence)
	}
	c.token = c.sampler.Sample(logits)
	return nil
}

func (c *cpu) Token() (int, bool, error) { return c.token, true, nil }

// speculator checks the options of speculative decoding and starts its
// backend: the CPU's (model.Speculator; "auto" means the CPU with a draft)
// or, with backend "gpu", the GPU's (gpuSpeculative), greedy or sampled,
// with the same tokens for the same seed. Both share one KV cache between
// draft and verifier, and both choose k round by round when draft_tokens is 0.
func (e *Engine) speculator(o Options) (Backend, error) {
	if o.Backend != "" && o.Backend != "cpu" && o.Backend != "auto" && o.Backend != "gpu" {
		return nil, fmt.Errorf("%w: backend %q (want cpu, gpu or auto)", ErrArg, o.Backend)
	}
	k := o.DraftTokens
	if k < 0 || k > 64 {
		return nil, fmt.Errorf("%w: draft_tokens %d (want 1…64, or 0 to choose k round by round)", ErrArg, k)
	}
	if o.Temperature > 0 && (o.TopK != 0 || (o.TopP != 0 && o.TopP != 1)) {
		return nil, fmt.Errorf("%w: speculative sampling draws from the whole distribution: unset top_k and top_p", ErrArg)
	}
	if o.Backend == "gpu" {
		return e.gpuSpeculator(o, k)
	}
	var draft model.Mix
	var costs model.SpecCosts
	if o.Draft == "auto" {
		var err error
		if draft, costs, err = e.autoDraft(); err != nil {
			return nil, err
		}
	} else {
		var err error
		if draft, err = e.parseDraft(o.Draft); err != nil {
			return nil, err
		}
		if k == 0 {
			costs = e.measureSpec(draft)
		}
	}
	var adaptive *model.KChooser
	if k == 0 {
		adaptive = &model.KChooser{Costs: costs, MaxK: maxAdaptiveK, Prior: specPrior}
	}
	sp := &speculative{sp: model.Speculator{Weights: e.asm.Weights, Draft: draft, Verify: e.mix, K: k, Shared: true,
		Temperature: o.Temperature, RNG: model.NewRNG(o.Seed), Adaptive: adaptive}}
	// One shared cache: the CPU backend's state, kept across sequences (each
	// position is written before it is read), so a reset allocates nothing.
	if e.cpuState == nil {
		e.cpuState = model.NewState(e.asm.Weights.Config)
	}
	sp.verifier, sp.draft = e.cpuState, e.cpuState
	return sp, nil
}

// parseDraft reads a draft's mix spec and checks that its weights are all fed.
func (e *Engine) parseDraft(spec string) (model.Mix, error) {
	draft, err := e.ParseMix(spec)
	if err != nil {
		return nil, fmt.Errorf("draft: %w", err)
	}
	if missing := e.asm.Missing(draft); len(missing) > 0 {
		return nil, fmt.Errorf("%w: the draft %s needs %d more bytes", ErrMissing, spec, weights.Bytes(missing))
	}
	return draft, nil
}

// gpuSpeculator starts speculative decoding on the gpu backend
// (gpuSpeculative). With k = 0 it chooses k round by round from its own
// round times (gpu_adaptive.go), and draft "auto" picks from them too
// (gpuAutoDraft); nothing is timed on the cpu.
func (e *Engine) gpuSpeculator(o Options, k int) (Backend, error) {
	half, sampled := o.Precision == "f16", o.Temperature > 0
	var draft model.Mix
	var err error
	if o.Draft == "auto" {
		draft, err = e.gpuAutoDraft(half, sampled)
	} else {
		draft, err = e.parseDraft(o.Draft)
	}
	if err != nil {
		return nil, err
	}
	g, err := e.startGPU(o)
	if err != nil {
		return nil, err
	}
	// The draft's rows on the device too; then the verifier's mix again, last.
	if err := g.prepare(e.asm.Weights, draft, o); err != nil {
		return nil, errNoGPU(err)
	}
	if err := g.prepare(e.asm.Weights, e.mix, o); err != nil {
		return nil, errNoGPU(err)
	}
	s := &gpuSpeculative{g: g, draft: draft, verify: e.mix, k: k, onDevice: -1, onDevicePos: -1}
	if sampled {
		// The generator the cpu backend's Speculator would draw from; the
		// device's sampler state was seeded to it (gpu.prepare). Pick and
		// Judge read only Temperature and RNG.
		s.sp = &model.Speculator{Temperature: o.Temperature, RNG: model.NewRNG(o.Seed)}
		s.readback, s.rngSynced = &e.gpuReadback, true
	}
	if k == 0 {
		s.adaptive = &model.KChooser{MaxK: maxAdaptiveK, Prior: specPrior}
		s.rounds, s.clock = e.gpuRounds(draft, half, sampled), e.roundClock
		if s.clock == nil {
			s.clock = monotonic
		}
	}
	return s, nil
}

const (
	// maxAdaptiveK bounds the draft tokens per round when k is chosen round
	// by round.
	maxAdaptiveK = 8
	// specPrior is the acceptance rate assumed before a sequence has shown
	// its own: nested drafts of the default model keep 56–80 % of their
	// tokens at k = 2 (matedge speculate). A few rounds outweigh it.
	specPrior = 0.6
)

// measureSpec measures (once per draft and mix) what a draft step and a
// verifier pass cost on this device.
func (e *Engine) measureSpec(draft model.Mix) model.SpecCosts {
	key := fmt.Sprint(draft, e.mix)
	if c, ok := e.specCosts[key]; ok {
		return c
	}
	if e.specCosts == nil {
		e.specCosts = map[string]model.SpecCosts{}
	}
	c := model.MeasureSpecCosts(e.asm.Weights, draft, e.mix, maxAdaptiveK)
	e.specCosts[key] = c
	return c
}

// draftCandidates are the drafts "auto" chooses among: the uniform
// granularities narrower than the mix in every layer whose weights are all
// in memory, narrowest first. None is ERR_ARG.
func (e *Engine) draftCandidates() ([]model.Mix, error) {
	c := e.header.Config
	var drafts []model.Mix
	for g := range c.FFNWidths {
		if draft := c.Uniform(g); draft.NarrowerThan(e.mix) && len(e.asm.Missing(draft)) == 0 {
			drafts = append(drafts, draft)
		}
	}
	if len(drafts) == 0 {
		return nil, fmt.Errorf("%w: draft auto: no granularity is narrower than the mix %s", ErrArg, c.MixSpec(e.mix))
	}
	return drafts, nil
}

// autoDraft picks the draft for "auto": of draftCandidates, the one with
// the best expected speed-up at the prior acceptance rate, as measured on
// this device. When none is expected to pay, the adaptive k keeps
// speculation off.
func (e *Engine) autoDraft() (model.Mix, model.SpecCosts, error) {
	drafts, err := e.draftCandidates()
	if err != nil {
		return nil, model.SpecCosts{}, err
	}
	var best model.Mix
	var bestCosts model.SpecCosts
	bestSpeedup := 0.0
	for _, draft := range drafts {
		costs := e.measureSpec(draft)
		if _, s := costs.BestK(specPrior, maxAdaptiveK); best == nil || s > bestSpeedup {
			best, bestCosts, bestSpeedup = draft, costs, s
		}
	}
	return best, bestCosts, nil
}

// speculative is the CPU backend with self-speculative decoding. A round
// yields several tokens; the engine still takes them one step at a time.
// Every token of a round but the last is already in the KV cache, so the
// step that feeds it back computes nothing.
type speculative struct {
	sp              model.Speculator
	verifier, draft *model.State
	round           []int // the tokens of the last round
	returned        int   // how many of them Token has returned
	stats           model.SpecStats
	lastK           int // proposals of the last round
}

func (s *speculative) Name() string { return "cpu" }

func (s *speculative) Start(tokens []int, pos int) error {
	if s.returned < len(s.round) {
		// tokens is the round's token just returned, already in the cache.
		return nil
	}
	s.sp.Prefill(s.verifier, s.draft, tokens[:len(tokens)-1], pos)
	var accepted, proposed int
	s.round, accepted, proposed = s.sp.Round(s.verifier, s.draft, tokens[len(tokens)-1], pos+len(tokens)-1, s.sp.NextK())
	s.sp.Observe(accepted, proposed)
	s.returned = 0
	s.stats.Add(proposed, accepted, len(s.round))
	s.lastK = proposed
	return nil
}

func (s *speculative) Token() (int, bool, error) {
	t := s.round[s.returned]
	s.returned++
	return t, true, nil
}
