// Package abi holds what the matedge module and its hosts must agree on: the
// ABI version, the status codes of the exports, and the msgpack documents
// that cross the boundary. ABI.md (beside this folder) describes each export.
package abi

import (
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

// Version is checked by every host at start-up against the module's
// abi_version export. Bump it on any incompatible change to ABI.md.
const Version = 1

// Status codes. Exports return a non-negative value on success; step returns
// a token id. On an error code the output buffer holds a one-line message.
const (
	Done        = -1 // step: the sequence reached the context limit
	Pending     = -2 // step: waiting for the host to complete a GPU readback; call step again
	ErrArg      = -3 // a bad argument: unparsable mix, options out of range, empty prompt
	ErrState    = -4 // an export called out of order (step before prompt, …)
	ErrFormat   = -5 // the weights header is invalid (magic, version, truncated, inconsistent)
	ErrChecksum = -6 // fed bytes completed a tensor whose checksum does not match
	ErrMissing  = -7 // the mix needs weights that have not been fed
	ErrBackend  = -8 // the requested backend is not available
	ErrInternal = -9 // a bug in the module (a recovered panic); the message says where
)

// ModelInfo is load_header's output.
type ModelInfo struct {
	Header        *weights.Header   `msgpack:"header"`
	DataStart     int64             `msgpack:"data_start"`     // file offset of the data section (not stored in the header itself)
	FormatVersion int               `msgpack:"format_version"` // the preamble's version: 1 has no header checksum
	Granularities []string          `msgpack:"granularities"`  // names, smallest first
	Ranges        [][]weights.Range `msgpack:"ranges"`         // per uniform granularity: the bytes it needs after the header
	// Architecture is the network: weights.MatFormerLM ("matformer-lm", a
	// language model: reset, prompt, step) or weights.MatViT ("matvit", an
	// image classifier and encoder: classify, load_index, index_image).
	Architecture string `msgpack:"architecture"`
}

// MixInfo is set_mix's output.
type MixInfo struct {
	Mix     []string        `msgpack:"mix"`     // granularity name per layer
	Missing []weights.Range `msgpack:"missing"` // bytes still to feed before reset can succeed
	Needed  []weights.Range `msgpack:"needed"`  // every byte range the mix reads
}

// Options is reset's input.
// Options configure one generation (reset's input).
type Options struct {
	Seed        uint64  `msgpack:"seed"`
	Temperature float32 `msgpack:"temperature"` // 0: greedy
	TopK        int     `msgpack:"top_k"`
	TopP        float32 `msgpack:"top_p"`
	Backend     string  `msgpack:"backend"`   // "cpu" (also ""), "gpu", or "auto": gpu when the host has an adapter
	Precision   string  `msgpack:"precision"` // GPU weights: "f32" (also "") or "f16"; the CPU backend always uses f32
	// Draft, when set (a mix spec such as "S"), turns on self-speculative
	// decoding on the CPU backend, or on the GPU backend with Backend "gpu":
	// the draft proposes DraftTokens tokens a round (0: chosen round by
	// round) and the mix verifies them in one pass, sharing one KV cache.
	// Greedy output is the mix's own; sampled output has its distribution
	// (temperature only: top_k and top_p must be unset), with the same
	// tokens on both backends for a seed.
	Draft       string `msgpack:"draft"`
	DraftTokens int    `msgpack:"draft_tokens"`
	// Penalties and min_p shape the logits before sampling (greedy decoding
	// too), on either backend (auto picks the CPU). RepetitionPenalty (CTRL, > 1 discourages
	// repeats; 0 or 1: off) divides a positive logit and multiplies a
	// negative one of every token among the last PenaltyWindow tokens (the
	// prompt's included; 0: 64); PresencePenalty is subtracted from them;
	// MinP keeps, when sampling, only tokens at least MinP times as likely as
	// the most likely one (0: off).
	RepetitionPenalty float32 `msgpack:"repetition_penalty"`
	PresencePenalty   float32 `msgpack:"presence_penalty"`
	PenaltyWindow     int     `msgpack:"penalty_window"`
	MinP              float32 `msgpack:"min_p"`
	// Route, when set (0 < route ≤ 1), turns on token routing on the CPU
	// backend: each token's FFN width in each layer is picked by the file's
	// routers, for a mean of about this fraction of XL's FFN FLOPs, never
	// wider than the set_mix mix's granularity in that layer.
	Route float32 `msgpack:"route"`
}

// DefaultPenaltyWindow is how many recent tokens the penalties look at when
// Options.PenaltyWindow is 0.
const DefaultPenaltyWindow = 64

// Shapes reports whether o asks for penalties or min_p.
func (o Options) Shapes() bool {
	return (o.RepetitionPenalty != 0 && o.RepetitionPenalty != 1) || o.PresencePenalty != 0 || o.MinP != 0
}

// PlanRequest is plan's input: what the host detected and what the caller
// wants. Mix, when set, fixes the mix (a mix spec) and leaves only the
// backend to choose.
type PlanRequest struct {
	Capabilities planner.Capabilities `msgpack:"capabilities"`
	Budget       planner.Budget       `msgpack:"budget"`
	Mix          string               `msgpack:"mix"`
}

// BenchRequest is bench_start's input: the mix whose decode step (or, for a
// vision model, whose image) to time on synthetic weights of the loaded
// header's shape, and the backend to run it on.
type BenchRequest struct {
	Mix     string `msgpack:"mix"`
	Backend string `msgpack:"backend"`
}

// PlanResult is plan's output. When nothing fits the budget, Plan is the
// smallest plan (so a host can still run something), Error says why and
// Constraint names the limit (planner.Constraint).
type PlanResult struct {
	Plan       *planner.Plan `msgpack:"plan" json:"plan"`
	Error      string        `msgpack:"error" json:"error,omitempty"`
	Constraint string        `msgpack:"constraint" json:"constraint,omitempty"`
}

// SpeculationInfo is speculation's output: what self-speculative decoding
// did in the sequence since the last reset. Each round emits its accepted
// proposals and one token of the verifier's own, so the tokens the rounds
// have emitted are Accepted + Rounds; step hands them out one at a time.
type SpeculationInfo struct {
	Draft    []string `msgpack:"draft"`    // the draft's granularity per layer; empty when the sequence does not speculate
	Proposed int      `msgpack:"proposed"` // draft tokens proposed
	Accepted int      `msgpack:"accepted"` // of them, those the verifier kept
	Rounds   int      `msgpack:"rounds"`   // draft-and-verify rounds, plain steps (k = 0) included
	K        int      `msgpack:"k"`        // draft tokens proposed in the last round; 0: a plain step (or none yet)
}

// ImageRequest is classify's input: one image of a vision model.
type ImageRequest struct {
	// Pixels are C·S·S float32 values, little-endian, [channel][row][column],
	// each in [0, 1] (a byte / 255). Grey models have C = 1.
	Pixels  []byte `msgpack:"pixels"`
	Backend string `msgpack:"backend"` // "cpu" (also ""), "gpu", or "auto": gpu when it can run, else cpu
	K       int    `msgpack:"k"`       // nearest entries of the loaded index to return; 0: none
}

// ImageResult is classify's output.
type ImageResult struct {
	Class     int                `msgpack:"class"`     // the most likely class (lowest on ties)
	Probs     []float32          `msgpack:"probs"`     // [classes] softmax of logits
	Logits    []float32          `msgpack:"logits"`    // [classes]
	Embedding []float32          `msgpack:"embedding"` // [dim] unit length: model.Normalize of the model's embedding
	Backend   string             `msgpack:"backend"`   // the backend that ran: "cpu" or "gpu"
	Neighbors []weights.Neighbor `msgpack:"neighbors"` // the k nearest index entries by cosine, highest first
}

// IndexInfo is load_index's output.
type IndexInfo struct {
	Count     int      `msgpack:"count"`
	Dim       int      `msgpack:"dim"`
	Mix       []string `msgpack:"mix"`        // the encoder that built it, one granularity per layer
	Classes   []string `msgpack:"classes"`    // label names
	ModelID   string   `msgpack:"model_id"`   // weights.ModelID of the model that built it (and is loaded)
	HasImages bool     `msgpack:"has_images"` // index_image can return each entry's pixels
}
