package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
)

// A vision model (MatViT) on the gpu backend: model.Classify's forward pass
// with the WGSL kernels. The weights are the gpu's tensors, uploaded and
// grown per mix as for a language model (prepare); the blocks are the
// language model's (gpu.blocks) with bidirectional attention, no RoPE and
// the down projection of all patches in one matmul_t; patch_embed,
// mean_pool and the head replace the embedding gather and the sampler. One
// classification is one pass over all T patches at once —
// every query attends to every patch, so every key must exist before any
// query runs — and one readback of the logits and the embedding.

// gpuVision is what a vision model needs on the device besides the blocks'
// buffers, which allocateVision sizes for T rows.
type gpuVision struct {
	pixels    webgpu.Buffer // [C][S][S] the image, as given
	pooled    webgpu.Buffer // [dim] mean of the last block's output over the patches
	embedding webgpu.Buffer // [dim] final_norm(pooled)
	result    webgpu.Buffer // [classes + dim]: the logits, then the embedding; the one readback

	// The classification in flight.
	reading bool
	ticket  webgpu.Ticket
	input   []float32 // its pixels and mix, so that only the same request collects it
	mix     model.Mix
	raw     []byte // [4·(classes + dim)] the readback
}

// allocateVision makes the activations of a vision model: every block
// buffer holds all T = Context patches, and the KV cache of each layer is
// those T rows.
func (g *gpu) allocateVision() error {
	c := g.config
	t, d, hidden := c.Context, c.Dim, c.Hidden()
	for _, name := range []string{model.PatchEmbedTensor, model.PosEmbedTensor} {
		if len(g.tensors[name].slabs) > 1 {
			return fmt.Errorf("%w: gpu: %s is larger than the device's %d-byte storage binding", ErrBackend, name, g.limit)
		}
	}
	g.batch = t
	alloc := &allocator{g: g}
	activation := alloc.buffer
	g.x, g.xb, g.q = activation("x", t*d), activation("xb", t*d), activation("q", t*d)
	g.att, g.proj = activation("att", t*d), activation("proj", t*d)
	g.acc, g.partial = activation("acc", d), activation("partial", d)
	g.gate, g.up, g.act = activation("gate", t*hidden), activation("up", t*hidden), activation("act", t*hidden)
	g.scores = activation("scores", t*c.Heads*t)
	for l := range g.layers {
		g.layers[l].keys, g.layers[l].values = activation("keys", t*d), activation("values", t*d)
	}
	v := &gpuVision{raw: make([]byte, 4*(c.Vocab+d))}
	v.pixels = activation("pixels", c.Image.Pixels())
	v.pooled, v.embedding = activation("pooled", d), activation("embedding", d)
	v.result = activation("logits and embedding", c.Vocab+d)
	if alloc.err != nil {
		return alloc.err
	}
	g.vision = v
	return nil
}

// classify records the forward pass of one image through mix and starts
// reading back its logits and embedding (collect).
func (g *gpu) classify(pixels []float32, mix model.Mix) error {
	c := g.config
	im, v := c.Image, g.vision
	t, d := c.Context, c.Dim
	if v.reading {
		return fmt.Errorf("%w: gpu: a classification is already in flight", ErrState)
	}
	g.err = nil
	if err := g.device.WriteBuffer(v.pixels, 0, weights.EncodeF32(pixels)); err != nil {
		return fmt.Errorf("gpu: write pixels: %w", err)
	}
	g.run(shaders.PatchEmbed.Call(shaders.PatchEmbedArgs{Dim: d, Size: im.Size, Side: im.Patch, Channels: im.Channels,
		Pixels: v.pixels, W: g.slab(g.tensors[model.PatchEmbedTensor]), Pos: g.slab(g.tensors[model.PosEmbedTensor]), Out: g.x}))
	g.blocks(0, t, mix)
	g.run(shaders.Add.Call(shaders.AddArgs{N: t * d, Y: g.proj, X: g.x}))
	g.run(shaders.MeanPool.Call(shaders.MeanPoolArgs{N: d, Rows: t, Scale: 1 / float32(t), X: g.x, Out: v.pooled}))
	g.run(shaders.RMSNorm.Call(shaders.RMSNormArgs{N: d, Rows: 1, Eps: c.NormEps, X: v.pooled, Gain: g.slab(g.finalNorm), Out: v.embedding}))
	g.matvec(g.head, c.Vocab, v.embedding, 0, v.result, 0, everyRow)
	if g.err != nil {
		return g.err
	}
	if err := g.device.Copy(v.embedding, 0, v.result, uint64(4*c.Vocab), uint64(4*d)); err != nil {
		return fmt.Errorf("gpu: copy embedding: %w", err)
	}
	ticket, err := g.device.Read(v.result, 0, uint64(len(v.raw)))
	if err != nil {
		return fmt.Errorf("gpu: read logits: %w", err)
	}
	v.reading, v.ticket = true, ticket
	v.input, v.mix = append(v.input[:0], pixels...), append(v.mix[:0], mix...)
	return nil
}

// collect returns the logits and embedding of the classification in
// flight, or ErrPending while the readback is on its way.
func (g *gpu) collect() (logits, embedding []float32, err error) {
	v := g.vision
	done, err := g.device.ReadResult(v.ticket, v.raw)
	if err != nil {
		v.reading = false
		return nil, nil, fmt.Errorf("gpu: read logits: %w", err)
	}
	if !done {
		return nil, nil, ErrPending
	}
	v.reading = false
	classes := g.config.Vocab
	out := make([]float32, len(v.raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(v.raw[4*i:]))
	}
	return out[:classes:classes], out[classes:], nil
}

// classifyGPU runs one image (pixels [C][S][S], values in [0, 1]) through
// the current mix on the gpu backend and returns its class logits and its
// embedding (final_norm of the mean over patches, not unit length), as
// model.Classify does on the CPU.
//
// The results come back in one readback. In a browser it completes only
// after the module has returned to the host's event loop, so classifyGPU
// may return ErrPending with the work in flight, as Step does: call it
// again with the same pixels and mix to collect the results (any other
// request gets ErrState until then). Under wazero the read completes
// at once, natively within a few calls. A device that cannot hold the
// model gives ErrBackend, so that backend auto falls back to the CPU.
func (e *Engine) classifyGPU(pixels []float32) ([]float32, []float32, error) {
	if err := e.Allowed(CallClassify); err != nil {
		return nil, nil, err
	}
	c := e.header.Config
	if want := c.Image.Pixels(); len(pixels) != want {
		return nil, nil, fmt.Errorf("%w: %d pixel values; want C·S·S = %d·%d·%d = %d", ErrArg, len(pixels), c.Image.Channels, c.Image.Size, c.Image.Size, want)
	}
	if g := e.gpu; g != nil && g.vision != nil && g.vision.reading {
		if !slices.Equal(pixels, g.vision.input) || !slices.Equal(e.mix, g.vision.mix) {
			return nil, nil, fmt.Errorf("%w: a GPU classification of another image or mix is in flight: call classify again with its pixels to collect it", ErrState)
		}
		return g.collect()
	}
	if missing := e.asm.Missing(e.mix); len(missing) > 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes in %d ranges, first at offset %d", ErrMissing, weights.Bytes(missing), len(missing), missing[0].Offset)
	}
	g, err := e.startGPU(Options{Backend: "gpu"})
	if err != nil {
		return nil, nil, err
	}
	if err := g.classify(pixels, e.mix); err != nil {
		return nil, nil, err
	}
	return g.collect()
}
