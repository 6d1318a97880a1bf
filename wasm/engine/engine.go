// Package engine runs a MatFormer Mix on a backend. It is the heart of the
// wasm module: the exports in package main only move bytes in and out of it,
// so the same engine is tested natively and inside the module.
//
// The life of an engine: LoadHeader → Feed (weights bytes, any order) →
// SetMix → Reset (sampling options) → Prompt → Step, Step, … A Mix can be
// changed between generations; only the bytes it lacks must be fed.
package engine

import (
	"errors"
	"fmt"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// Errors the exports map to ABI codes.
var (
	ErrState   = errors.New("engine: call out of order")
	ErrMissing = errors.New("engine: weights for this mix are not loaded yet")
	ErrBackend = errors.New("engine: backend not available")
	ErrArg     = errors.New("engine: bad argument")
	ErrDone    = errors.New("engine: sequence is at the context limit")
)

// Options configure one generation.
type Options struct {
	Seed        uint64  `msgpack:"seed"`
	Temperature float32 `msgpack:"temperature"` // 0: greedy
	TopK        int     `msgpack:"top_k"`
	TopP        float32 `msgpack:"top_p"`
	Backend     string  `msgpack:"backend"` // "cpu", "gpu" or "auto"
}

// Engine holds one model and one sequence.
type Engine struct {
	header   *weights.Header
	asm      *weights.Assembler
	mix      model.Mix
	backend  Backend
	sampler  model.Sampler
	queued   []int // tokens to feed before the next sample: the prompt, then each sampled token
	pos      int   // tokens already in the KV cache
	started  bool  // Reset was called since the last SetMix
	prompted bool  // Prompt was called since Reset
}

// Backend runs the network one step at a time for one Mix.
type Backend interface {
	// Name is "cpu" or "gpu".
	Name() string
	// Logits feeds tokens at positions pos, pos+1, … and returns the logits
	// ([vocab]) after the last one, valid until the next call.
	Logits(tokens []int, pos int) ([]float32, error)
}

// LoadHeader parses the header from the first bytes of a weights file.
// fileSize is the whole file's size, or -1 if unknown.
func (e *Engine) LoadHeader(b []byte, fileSize int64) (*weights.Header, error) {
	h, err := weights.ParseHeader(b, fileSize)
	if err != nil {
		return nil, err
	}
	*e = Engine{header: h, asm: weights.NewAssembler(h)}
	return h, nil
}

// Header is the loaded header, or nil.
func (e *Engine) Header() *weights.Header { return e.header }

// Feed delivers weights bytes that start at offset in the file.
func (e *Engine) Feed(offset int64, b []byte) error {
	if e.header == nil {
		return fmt.Errorf("%w: feed before load_header", ErrState)
	}
	return e.asm.Feed(offset, b)
}

// Missing returns the byte ranges mix still needs.
func (e *Engine) Missing(mix model.Mix) []weights.Range { return e.asm.Missing(mix) }

// ParseMix reads a mix spec: a granularity name, a comma list with one per
// layer, or "auto" — the largest uniform granularity whose bytes are all here.
func (e *Engine) ParseMix(spec string) (model.Mix, error) {
	if e.header == nil {
		return nil, fmt.Errorf("%w: set_mix before load_header", ErrState)
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
	if e.header == nil {
		return fmt.Errorf("%w: set_mix before load_header", ErrState)
	}
	if err := e.header.Config.CheckMix(mix); err != nil {
		return fmt.Errorf("%w: %v", ErrArg, err)
	}
	e.mix = mix
	e.started = false
	return nil
}

// Mix is the current mix.
func (e *Engine) Mix() model.Mix { return e.mix }

// Reset starts a new sequence with the given options on the current Mix.
func (e *Engine) Reset(o Options) error {
	if e.mix == nil {
		return fmt.Errorf("%w: reset before set_mix", ErrState)
	}
	if missing := e.asm.Missing(e.mix); len(missing) > 0 {
		return fmt.Errorf("%w: %d bytes in %d ranges, first at offset %d", ErrMissing, weights.Bytes(missing), len(missing), missing[0].Offset)
	}
	if o.Temperature < 0 || o.TopP < 0 || o.TopP > 1 || o.TopK < 0 {
		return fmt.Errorf("%w: temperature %g, top_k %d, top_p %g", ErrArg, o.Temperature, o.TopK, o.TopP)
	}
	switch o.Backend {
	case "", "auto", "cpu":
		e.backend = newCPU(e.asm.Weights, e.mix)
	case "gpu":
		return fmt.Errorf("%w: gpu (this module has no GPU backend yet; use cpu or auto)", ErrBackend)
	default:
		return fmt.Errorf("%w: backend %q (want cpu, gpu or auto)", ErrArg, o.Backend)
	}
	e.sampler = model.Sampler{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, RNG: model.NewRNG(o.Seed)}
	e.queued, e.pos, e.started, e.prompted = nil, 0, true, false
	return nil
}

// Backend names the backend of the current sequence.
func (e *Engine) Backend() string {
	if e.backend == nil {
		return ""
	}
	return e.backend.Name()
}

// Prompt encodes text and queues it; it returns the prompt's token ids.
func (e *Engine) Prompt(text []byte) ([]int, error) {
	if !e.started {
		return nil, fmt.Errorf("%w: prompt before reset", ErrState)
	}
	if e.prompted {
		return nil, fmt.Errorf("%w: one prompt per reset", ErrState)
	}
	ids := e.header.Tokenizer.Encode(text)
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: empty prompt", ErrArg)
	}
	if len(ids) >= e.header.Config.Context {
		return nil, fmt.Errorf("%w: prompt is %d tokens, context is %d", ErrArg, len(ids), e.header.Config.Context)
	}
	e.queued, e.prompted = ids, true
	return ids, nil
}

// Step feeds what is queued and samples the next token. It returns ErrDone
// when the context is full.
func (e *Engine) Step() (int, error) {
	if !e.prompted {
		return 0, fmt.Errorf("%w: step before prompt", ErrState)
	}
	if e.pos+len(e.queued) > e.header.Config.Context {
		return 0, ErrDone
	}
	logits, err := e.backend.Logits(e.queued, e.pos)
	if err != nil {
		return 0, err
	}
	e.pos += len(e.queued)
	token := e.sampler.Sample(logits)
	e.queued = append(e.queued[:0], token)
	return token, nil
}

// Piece is the bytes of a token.
func (e *Engine) Piece(token int) []byte { return e.header.Tokenizer.Piece(token) }

// cpu is the backend that runs model.Forward inside the module.
type cpu struct {
	weights *model.Weights
	mix     model.Mix
	state   *model.State
}

func newCPU(w *model.Weights, mix model.Mix) *cpu {
	return &cpu{weights: w, mix: mix, state: model.NewState(w.Config)}
}

func (c *cpu) Name() string { return "cpu" }

func (c *cpu) Logits(tokens []int, pos int) ([]float32, error) {
	var logits []float32
	for i, t := range tokens {
		logits = model.Forward(c.weights, c.state, c.mix, t, pos+i)
	}
	return logits, nil
}
