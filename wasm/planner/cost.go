package planner

import (
	"fmt"
	"slices"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// elementBytes is the size of one weight as stored and as held in memory:
// f32, the only dtype weights files carry so far.
const elementBytes = 4

// Work is what one decode step reads and computes.
type Work struct {
	Bytes int64 `msgpack:"bytes" json:"bytes"` // weights and KV cache read
	FLOPs int64 `msgpack:"flops" json:"flops"` // a multiply-add is 2
}

// DecodeWork is the work of decoding the token at position pos (0-based)
// with mix: every matrix of the mix is read once (the embedding only one
// row), and every layer reads the keys and values of positions 0…pos.
func DecodeWork(c model.Config, mix model.Mix, pos int) Work {
	d, cached := int64(c.Dim), int64(pos+1)
	matrices := int64(c.NonEmbeddingParams(mix)) + int64(c.Vocab)*d // the blocks, the final norm, the LM head
	cache := 2 * int64(c.Layers) * cached * d                       // [layers][keys, values][pos+1][dim]
	return Work{
		Bytes: elementBytes * (matrices + d + cache),
		FLOPs: 2*matrices + 2*cache, // q·k and scores·v: one multiply-add per cached element each
	}
}

// typicalPosition is the mean position of a generation that fills the
// context: the KV cache read per token averages out to this position's.
func typicalPosition(c model.Config) int { return (c.Context - 1) / 2 }

// stateBytes is what model.NewState allocates for one sequence: the KV cache
// for the whole context and the activations (sized for XL, whatever the mix).
func stateBytes(c model.Config) int64 {
	d, ctx := int64(c.Dim), int64(c.Context)
	kv := 2 * int64(c.Layers) * ctx * d                        // [layers][context][dim], keys and values
	activations := 4*d + 2*int64(c.Hidden()) + int64(c.Vocab)  // x, xb, xb2, q; hb, hb2; logits
	activations += int64(c.Heads)*ctx + ctx*int64(c.HeadDim()) // scores; RoPE cos and sin tables
	return elementBytes * (kv + activations)
}

// costModel holds what the header says each layer costs at each
// granularity, so that a candidate mix is priced in O(layers).
type costModel struct {
	config         model.Config
	sharedDownload int64     // entries of no layer: embedding, final norm, head
	sharedLargest  int64     // the largest of them
	layerDownload  [][]int64 // [layer][granularity] bytes layer l needs at that granularity
	layerLargest   [][]int64 // [layer][granularity] its largest entry
	state          int64
}

func newCostModel(h *weights.Header) *costModel {
	c := h.Config
	m := &costModel{config: c, state: stateBytes(c)}
	m.layerDownload = make([][]int64, c.Layers)
	m.layerLargest = make([][]int64, c.Layers)
	for l := range m.layerDownload {
		m.layerDownload[l] = make([]int64, c.Granularities())
		m.layerLargest[l] = make([]int64, c.Granularities())
	}
	for _, e := range h.Entries {
		if e.Layer < 0 {
			m.sharedDownload += e.Length
			m.sharedLargest = max(m.sharedLargest, e.Length)
			continue
		}
		for g := e.Granularity; g < c.Granularities(); g++ {
			m.layerDownload[e.Layer][g] += e.Length
			m.layerLargest[e.Layer][g] = max(m.layerLargest[e.Layer][g], e.Length)
		}
	}
	return m
}

// download is the bytes of the file mix needs after the header:
// weights.Bytes(h.Ranges(mix)).
// subtractRanges is the parts of ranges (sorted, disjoint) that lie in no
// range of cut (in any order).
func subtractRanges(ranges, cut []weights.Range) []weights.Range {
	out := slices.Clone(ranges)
	for _, c := range cut {
		var next []weights.Range
		for _, r := range out {
			if c.End() <= r.Offset || c.Offset >= r.End() {
				next = append(next, r)
				continue
			}
			if c.Offset > r.Offset {
				next = append(next, weights.Range{Offset: r.Offset, Length: c.Offset - r.Offset})
			}
			if c.End() < r.End() {
				next = append(next, weights.Range{Offset: c.End(), Length: r.End() - c.End()})
			}
		}
		out = next
	}
	return out
}

func (m *costModel) download(mix model.Mix) int64 {
	n := m.sharedDownload
	for l, g := range mix {
		n += m.layerDownload[l][g]
	}
	return n
}

// wasmMemory is what the module holds for mix: the weights (decoded from
// f32 to f32, the same size as downloaded), one sequence's state, and the
// largest entry's bytes while the assembler verifies its checksum.
func (m *costModel) wasmMemory(mix model.Mix, download int64) int64 {
	largest := m.sharedLargest
	for l, g := range mix {
		largest = max(largest, m.layerLargest[l][g])
	}
	return download + m.state + largest
}

// Split is a tensor that the GPU backend binds in pieces because it is larger
// than one storage binding may be.
type Split struct {
	Tensor string `msgpack:"tensor" json:"tensor"` // e.g. "layers.3.ffn_up"
	Bytes  int64  `msgpack:"bytes" json:"bytes"`   // at the mix's width
	Pieces int    `msgpack:"pieces" json:"pieces"` // row blocks, each a binding of at most the limit
}

// bindings is how the GPU backend must bind a mix's tensors.
type bindings struct {
	limit   int64   // largest binding: min(maxStorageBufferBindingSize, maxBufferSize)
	splits  []Split // tensors larger than limit, split into row blocks
	extra   int     // dispatches the splits add to one decode step
	blocked string  // why the GPU cannot run this mix at all, or ""
	need    int64   // for blocked: the bytes that would have to be one binding
}

// gpuBindings checks every binding the GPU backend makes for mix against the
// adapter's limits, the way wasm/engine's gpu backend binds them: a matrix
// larger than one binding is stored as slabs of whole rows, each bound in a
// dispatch of its own (row outputs are independent; the down projection adds
// the slabs' partial sums); activations and each layer's KV cache are bound
// whole, so each must fit one binding, and so must one row of a matrix.
func gpuBindings(c model.Config, mix model.Mix, l Limits) bindings {
	b := bindings{limit: int64(min(l.MaxStorageBufferBindingSize, l.MaxBufferSize))}
	d := int64(c.Dim)
	whole := []struct {
		elems int64
		what  func() string
	}{
		{d, func() string { return fmt.Sprintf("one row of a matrix (%d values)", c.Dim) }},
		{int64(c.Context) * d, func() string { return fmt.Sprintf("one layer's key cache (%d positions × %d)", c.Context, c.Dim) }},
		{int64(c.Vocab), func() string { return fmt.Sprintf("the logits (%d values)", c.Vocab) }},
		{int64(c.Heads) * int64(c.Context), func() string {
			return fmt.Sprintf("the attention scores (%d heads × %d positions)", c.Heads, c.Context)
		}},
		{int64(c.Hidden()), func() string { return fmt.Sprintf("the FFN activations (%d values)", c.Hidden()) }},
	}
	for _, w := range whole {
		if size := w.elems * elementBytes; size > b.limit && size > b.need {
			b.blocked, b.need = fmt.Sprintf("%s is %s and is bound whole", w.what(), formatBytes(size)), size
		}
	}
	if b.blocked != "" {
		return b
	}
	// check splits a tensor of rows×dim if it is over the limit; name is
	// only computed then, since most candidates split nothing.
	check := func(rows int, name func() string) {
		size := int64(rows) * d * elementBytes
		if size <= b.limit {
			return
		}
		pieces := int((size + b.limit - 1) / b.limit)
		b.splits = append(b.splits, Split{Tensor: name(), Bytes: size, Pieces: pieces})
		b.extra += pieces - 1
	}
	check(c.Vocab, func() string { return model.EmbedTensor })
	for i, g := range mix {
		for _, t := range model.AttentionParts {
			check(c.Dim, func() string { return model.LayerTensor(i, t) })
		}
		for _, t := range model.FFNParts {
			check(c.FFNWidths[g], func() string { return model.LayerTensor(i, t) })
		}
	}
	check(c.Vocab, func() string { return model.HeadTensor })
	return b
}

// dispatchesPerLayer is what the gpu backend records for one layer of one
// decode step (wasm/engine/gpu.go's blocks, one token): the attention norm,
// the query, key and value matvecs, RoPE of the query and of the keys,
// attention, the output matvec; the FFN norm (fused with the residual add),
// gate, up, SwiGLU and the down projection.
const dispatchesPerLayer = 13

// GPUDispatches is how many dispatches the gpu backend records for one
// decode step of a language model of c whose tensors each fit one binding
// (gpuBindings' extra counts those that splits add): the embedding lookup,
// dispatchesPerLayer per layer, the final norm, the LM head and the pick of
// the token (argmax or sample). It must follow wasm/engine/gpu.go's forward:
// a fused kernel there is one fewer here (wasm/engine's
// TestGPUDispatchCount counts them).
func GPUDispatches(c model.Config) int { return 1 + dispatchesPerLayer*c.Layers + 3 }

// MatrixRows is how many matrix rows one decode step of mix reads: per layer
// the query, key, value and output projections' dim rows each and the FFN's
// gate, up and down rows of its width, then the LM head's vocab rows (the
// embedding's one row is left out). On a GPU each row is an invocation's
// work (or a quarter of one), with a cost of its own beyond its bytes.
func MatrixRows(c model.Config, mix model.Mix) int64 {
	n := int64(c.Vocab)
	for _, g := range mix {
		n += 4*int64(c.Dim) + 3*int64(c.FFNWidths[g])
	}
	return n
}
