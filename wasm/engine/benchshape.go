package engine

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
)

// Benchmarks on synthetic weights. A planner needs the device's speed before
// it can choose a mix, and a browser should not download weights to learn
// it: a decode step costs the same whatever the weights hold, so the module
// times steps of a model with the loaded header's shape and made-up values.
// ShapeBench builds that model without a byte of the real file.

// ShapeBench returns a new engine that holds a synthetic model of the loaded
// header's shape (config, tokenizer, architecture) with the rows mix needs
// fed and mix selected: Reset, Prompt and Step on it (or Classify, for a
// vision model) run exactly the work the real weights would, on every
// backend. The values are a fixed pattern, not trained weights, so its
// tokens mean nothing. It shares the GPU device with e, opening it on e's
// behalf if needed, so that the benchmark and later generations use one
// device. Call Release when done, to free its GPU buffers.
func (e *Engine) ShapeBench(mix model.Mix) (*Engine, error) {
	if e.header == nil {
		return nil, fmt.Errorf("%w: a shape benchmark before load_header", ErrState)
	}
	c := e.header.Config
	if err := c.CheckMix(mix); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArg, err)
	}
	h := &weights.Header{Config: c, Tokenizer: e.header.Tokenizer, Architecture: e.header.Architecture, Entries: weights.Plan(c, weights.F32)}
	for i := range h.Entries {
		if h.Entries[i].NeededBy(mix) {
			h.Entries[i].CRC32C = weights.Checksum(syntheticBytes(h.Entries[i]))
		}
	}
	last := h.Entries[len(h.Entries)-1]
	h.DataSize = last.Offset + last.Length
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("shape benchmark: the synthetic header: %w", err) // a bug: the loaded header was valid
	}
	b := &Engine{state: headerLoaded, header: h, asm: weights.NewAssembler(h), OpenGPU: e.sharedDevice, MaxBytes: e.MaxBytes}
	b.asm.Reserve(mix)
	for _, en := range h.Entries { // DataStart is 0: file offsets are data offsets
		if en.NeededBy(mix) {
			if err := b.Feed(en.Offset, syntheticBytes(en)); err != nil {
				return nil, fmt.Errorf("shape benchmark: %w", err)
			}
		}
	}
	if err := b.SetMix(mix); err != nil {
		return nil, err
	}
	return b, nil
}

// sharedDevice opens e's GPU device once, as startGPU does, for an engine
// that ShapeBench made from e.
func (e *Engine) sharedDevice() (webgpu.Device, error) {
	if e.device == nil && e.deviceErr == nil {
		open := e.OpenGPU
		if open == nil {
			open = webgpu.Open
		}
		e.device, e.deviceErr = open()
	}
	return e.device, e.deviceErr
}

// Release frees the engine's GPU buffers (the device stays open). The engine
// can still run on the CPU; a later GPU reset uploads the weights again.
func (e *Engine) Release() {
	if e.gpu != nil {
		e.gpu.release()
		e.gpu = nil
	}
}

// BenchImage is the request a shape benchmark of a vision model classifies:
// a black image on backend.
func (e *Engine) BenchImage(backend string) abi.ImageRequest {
	return abi.ImageRequest{Pixels: make([]byte, 4*e.header.Config.Image.Pixels()), Backend: backend}
}

// syntheticBytes is an entry's stored bytes in the synthetic model: f32
// values of a fixed pattern in [-1/16, 1/16), different from row to row.
// Any finite values would do; these keep activations small.
func syntheticBytes(en weights.Entry) []byte {
	b := make([]byte, en.Length)
	for i := 0; i+4 <= len(b); i += 4 {
		j := uint32(en.Offset/4) + uint32(i/4)
		v := float32(int32(j*2654435761)>>20) / (1 << 15) // Knuth's multiplicative hash, scaled
		binary.LittleEndian.PutUint32(b[i:], math.Float32bits(v))
	}
	return b
}
