package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
)

// gpu is the backend that runs the network with the WGSL kernels of package
// shaders on a webgpu.Device. It outlives a sequence: its weight buffers hold
// every shared tensor whole and each layer's FFN matrices only up to the
// widest granularity a mix has run with on that layer — S's rows at first;
// prepare grows them (grow copies the rows already on the device) and never
// shrinks them — and they are filled entry by entry (weights.Header.Entries)
// as mixes need them. Switching S → XL therefore uploads only the rows S
// lacked, and switching back uploads nothing. A change of precision rebuilds
// them (Engine.startGPU).
//
// One step runs every queued token (the prompt in batches of up to batch
// rows with matmul; a decoded token with matvec), applies the repetition
// and presence penalties (penalize), samples on the device (argmax or the
// sample kernel, with min-p), writes the token into the tokens buffer at
// the next position — where the next step's embed reads it — and reads back
// those 4 bytes, the only readback of a step.
//
// A routed sequence (token routing, model/route.go) runs each layer's
// router on the device: the route kernel writes every token's FFN width
// into g.widths, where the routed matrix kernels read it, so the step still
// reads back nothing before its end; the last token's widths come back with
// the sampled token, in the same readback (gpuRoute).
//
// A tensor larger than the device's maxStorageBufferBindingSize is stored as
// slabs of whole rows, each a buffer of its own (gpuTensor). Row kernels run
// once per slab with an output offset; the down projection, which sums over
// rows, adds the slabs' partial sums; the embedding gathers slab by slab
// (embed's first_row). Activations and each layer's KV cache are single
// buffers, and the prefill batch shrinks until they fit one binding.
type gpu struct {
	device   webgpu.Device
	pipes    *webgpu.Pipelines
	header   *weights.Header
	config   model.Config
	half     bool                  // matrices stored as f16 pairs packed in u32 (see halfTensor)
	limit    uint64                // bytes in one storage binding
	batch    int                   // prefill rows per pass
	tensors  map[string]*gpuTensor // every tensor on the device, by name, for uploads
	uploaded []bool                // parallel to header.Entries: its rows are on the device
	owned    []webgpu.Buffer

	// The tensors forward reads, resolved once at allocation, and each
	// layer's KV cache (gpuLayer).
	embed, finalNorm, head *gpuTensor
	layers                 []gpuLayer

	tokens       webgpu.Buffer // [context+1] u32: the token at each position; samples land at the next one
	x, xb, q     webgpu.Buffer // [batch][dim] residual stream, normed input, queries
	att, proj    webgpu.Buffer // [batch][dim] attention output, projection output
	acc, partial webgpu.Buffer // [dim] down-projection sums for split tensors
	gate, up     webgpu.Buffer // [batch][hidden]
	act          webgpu.Buffer // [batch][hidden] swiglu(gate, up)
	scores       webgpu.Buffer // [batch][heads][context]
	logits       webgpu.Buffer // [batch][vocab]: the last row's at 0, or every row's (verify)
	verified     webgpu.Buffer // [2·batch] u32: a speculative round's verifier argmaxes, then the draft's proposals
	ropeCos      webgpu.Buffer // [context][headDim/2]
	ropeSin      webgpu.Buffer // [context][headDim/2]
	rngState     webgpu.Buffer // [1] the sample kernel's model.RNG state
	ffnWidths    webgpu.Buffer // [granularities] u32 config.FFNWidths, for the route kernel; 0 without routers
	widths       webgpu.Buffer // [batch][layers] u32: the FFN rows each token of a routed pass runs per layer
	readback     webgpu.Buffer // [1 + layers] u32: a routed step's token, then its last token's widths
	vision       *gpuVision    // a vision model's buffers (gpu_vision.go), nil for a language model

	// The sequence.
	mix       model.Mix
	route     *gpuRoute // a routed sequence's router settings; nil runs mix
	sampling  Options
	onDevice  int  // the token the last step sampled, already in tokens at its position; -1 for none
	reading   bool // a readback of the sampled token is in flight
	ticket    webgpu.Ticket
	readSlot  int // position in tokens being read back
	err       error
	readBytes []byte // the readback: the token, and on a routed step its widths
}

// gpuRoute is a routed sequence on the gpu backend (Engine.resetRouted):
// every token's FFN width in every layer is model.RoutePick's on the
// device (the route kernel), capped at the sequence's mix, whose rows are
// what the device holds.
type gpuRoute struct {
	tau    float32 // the price, for the route kernel's scores
	forced int     // the granularity every token takes where RoutePick compares no scores; Granularities() when it does
	picks  []int   // per layer, the granularity the last step's last token ran: read back with its token
}

// gpuLayer is one transformer block on the device: model.Layer's tensors
// and the block's KV cache.
type gpuLayer struct {
	attnNorm, query, key, value, output *gpuTensor
	ffnNorm, gate, up, down             *gpuTensor
	router                              *gpuTensor    // [G-1][dim+1] f32; nil in a network without routers
	keys, values                        webgpu.Buffer // [context][dim]
}

// gpuTensor is one weight tensor on the device: [rows][cols], f32 or f16
// pairs, in slabs of whole rows that each fit one storage binding.
type gpuTensor struct {
	name       string
	rows, cols int // rows allocated: a nested FFN tensor grows with the widest mix run
	half       bool
	slabs      []slab
	layer      int  // the block it belongs to, -1 for embedding, final norm and head
	nested     bool // an FFN matrix, allocated only up to the rows a mix needs
}

type slab struct {
	buffer      webgpu.Buffer
	first, rows int // rows [first, first+rows) of the tensor
}

// rowBytes is the size of one stored row.
func (t *gpuTensor) rowBytes() int {
	if t.half {
		return 2 * t.cols
	}
	return 4 * t.cols
}

// halfTensor reports whether the f16 backend stores t as packed halves:
// every matrix but the embedding (which embed gathers as f32), a vision
// model's input layer (patch_embed reads f32, and pos_embed is added, not
// multiplied) and the routers (the route kernel reads f32, so that its
// scores are the CPU's). RoundHalf rounds the same tensors for a CPU
// reference.
func halfTensor(t model.Tensor) bool {
	if _, part, _ := model.ParseLayerTensor(t.Name); part == model.Router {
		return false
	}
	return len(t.Shape) == 2 && t.Name != model.EmbedTensor && t.Name != model.PatchEmbedTensor && t.Name != model.PosEmbedTensor
}

// newGPU allocates every buffer for h's model on d (the FFN matrices with
// S's rows; prepare grows them to the mix and uploads) and uploads the
// rotary tables.
func newGPU(d webgpu.Device, h *weights.Header, half bool) (*gpu, error) {
	c := h.Config
	g := &gpu{
		device: d, pipes: webgpu.NewPipelines(d), header: h, config: c, half: half,
		limit: d.Info().Limits.MaxStorageBufferBindingSize, tensors: map[string]*gpuTensor{},
		uploaded: make([]bool, len(h.Entries)), onDevice: -1,
	}
	if g.limit == 0 {
		g.limit = 128 << 20
	}
	if err := g.allocate(); err != nil {
		g.release()
		return nil, err
	}
	return g, nil
}

func (g *gpu) allocate() error {
	c := g.config
	d, hidden := c.Dim, c.Hidden()
	// The prefill batch: as many rows as fit one binding in every activation.
	g.batch = min(64, c.Context)
	for g.batch > 1 && uint64(4*g.batch*max(hidden, c.Heads*c.Context, c.Vocab)) > g.limit {
		g.batch /= 2
	}
	for _, t := range model.Layout(c) {
		if !onGPU(t.Name) {
			continue
		}
		gt := &gpuTensor{name: t.Name, cols: 1, half: g.half && halfTensor(t), layer: t.Layer, nested: t.Nested}
		if len(t.Shape) == 2 {
			gt.cols = t.Shape[1]
		}
		rows := t.Shape[0]
		if t.Nested {
			rows = c.FFNWidths[0]
		}
		slabs, err := g.slabs(gt, rows)
		if err != nil {
			return err
		}
		gt.slabs, gt.rows = slabs, rows
		g.tensors[t.Name] = gt
	}
	g.embed, g.finalNorm, g.head = g.tensors[model.EmbedTensor], g.tensors[model.FinalNormTensor], g.tensors[model.HeadTensor]
	g.layers = make([]gpuLayer, c.Layers)
	for l := range g.layers {
		tensor := func(part model.LayerPart) *gpuTensor { return g.tensors[model.LayerTensor(l, part)] }
		g.layers[l] = gpuLayer{
			attnNorm: tensor(model.AttnNorm), query: tensor(model.Query), key: tensor(model.Key), value: tensor(model.Value), output: tensor(model.Output),
			ffnNorm: tensor(model.FFNNorm), gate: tensor(model.FFNGate), up: tensor(model.FFNUp), down: tensor(model.FFNDown),
			router: tensor(model.Router),
		}
	}
	if c.IsVision() {
		return g.allocateVision()
	}
	alloc := &allocator{g: g}
	activation := alloc.buffer
	g.tokens = activation("tokens", c.Context+1)
	g.x, g.xb, g.q = activation("x", g.batch*d), activation("xb", g.batch*d), activation("q", g.batch*d)
	g.att, g.proj = activation("att", g.batch*d), activation("proj", g.batch*d)
	g.acc, g.partial = activation("acc", d), activation("partial", d)
	g.gate, g.up, g.act = activation("gate", g.batch*hidden), activation("up", g.batch*hidden), activation("act", g.batch*hidden)
	g.scores = activation("scores", g.batch*c.Heads*c.Context)
	g.logits = activation("logits", g.batch*c.Vocab)
	g.verified = activation("verified tokens", 2*g.batch)
	half := c.HeadDim() / 2
	g.ropeCos, g.ropeSin = activation("rope cos", c.Context*half), activation("rope sin", c.Context*half)
	g.rngState = activation("sampler state", 1)
	for l := range g.layers {
		g.layers[l].keys, g.layers[l].values = activation("key cache", c.Context*d), activation("value cache", c.Context*d)
	}
	g.readBytes = make([]byte, 4)
	if c.HasRouter() {
		g.ffnWidths = activation("FFN widths", c.Granularities())
		g.widths = activation("routed widths", g.batch*c.Layers)
		g.readback = activation("routed readback", 1+c.Layers)
		g.readBytes = make([]byte, 4*(1+c.Layers))
	}
	if alloc.err != nil {
		return alloc.err
	}
	if c.HasRouter() {
		table := make([]byte, 4*c.Granularities())
		for i, w := range c.FFNWidths {
			binary.LittleEndian.PutUint32(table[4*i:], uint32(w))
		}
		if err := g.device.WriteBuffer(g.ffnWidths, 0, table); err != nil {
			return fmt.Errorf("gpu: upload FFN widths: %w", err)
		}
	}
	cos, sin := make([]float32, c.Context*half), make([]float32, c.Context*half)
	model.RopeTable(c, cos, sin)
	if err := g.device.WriteBuffer(g.ropeCos, 0, weights.EncodeF32(cos)); err != nil {
		return fmt.Errorf("gpu: upload rope table: %w", err)
	}
	if err := g.device.WriteBuffer(g.ropeSin, 0, weights.EncodeF32(sin)); err != nil {
		return fmt.Errorf("gpu: upload rope table: %w", err)
	}
	return nil
}

// slabs allocates rows rows of t as slabs of whole rows that each fit one
// storage binding.
func (g *gpu) slabs(t *gpuTensor, rows int) ([]slab, error) {
	perSlab := int(g.limit / uint64(t.rowBytes()))
	if perSlab == 0 {
		return nil, fmt.Errorf("%w: gpu: one row of %s is %d bytes, over the device's %d-byte storage binding", ErrBackend, t.name, t.rowBytes(), g.limit)
	}
	var out []slab
	for first := 0; first < rows; first += perSlab {
		n := min(perSlab, rows-first)
		b, err := g.buffer(fmt.Sprintf("weights %s rows [%d, %d)", t.name, first, first+n), n*t.rowBytes())
		if err != nil {
			return nil, err
		}
		out = append(out, slab{buffer: b, first: first, rows: n})
	}
	return out, nil
}

// grow reallocates t with rows rows, copying the rows it had on the device,
// so that memory follows the widest mix run rather than XL.
func (g *gpu) grow(t *gpuTensor, rows int) error {
	bigger, err := g.slabs(t, rows)
	if err != nil {
		return err
	}
	rb := t.rowBytes()
	for _, old := range t.slabs {
		for _, s := range bigger {
			lo, hi := max(old.first, s.first), min(old.first+old.rows, s.first+s.rows)
			if lo < hi {
				if err := g.device.Copy(old.buffer, uint64((lo-old.first)*rb), s.buffer, uint64((lo-s.first)*rb), uint64((hi-lo)*rb)); err != nil {
					return fmt.Errorf("gpu: grow %s: %w", t.name, err)
				}
			}
		}
	}
	for _, old := range t.slabs {
		g.free(old.buffer)
	}
	t.slabs, t.rows = bigger, rows
	return nil
}

// free destroys a buffer the gpu owns (after submitting recorded work).
func (g *gpu) free(b webgpu.Buffer) {
	g.owned = slices.DeleteFunc(g.owned, func(o webgpu.Buffer) bool { return o == b })
	g.device.DestroyBuffer(b) // best effort: a lost device frees it anyway
}

// buffer creates a buffer of at least size bytes that the gpu owns.
func (g *gpu) buffer(what string, size int) (webgpu.Buffer, error) {
	b, err := g.device.CreateBuffer(uint64(max(size+3&^3, 4)))
	if err != nil {
		return 0, fmt.Errorf("gpu: %s: %w", what, err)
	}
	g.owned = append(g.owned, b)
	return b, nil
}

// activation creates a buffer of elems 4-byte elements that is bound whole,
// so it must fit one storage binding.
func (g *gpu) activation(what string, elems int) (webgpu.Buffer, error) {
	if uint64(4*elems) > g.limit {
		return 0, fmt.Errorf("%w: gpu: %s needs %d bytes in one binding, the device allows %d", ErrBackend, what, 4*elems, g.limit)
	}
	return g.buffer(what, 4*elems)
}

// allocator makes activation buffers one after another: after the first
// failure it makes none (returning 0) and err says why, so that a run of
// allocations is checked once.
type allocator struct {
	g   *gpu
	err error
}

func (a *allocator) buffer(what string, elems int) webgpu.Buffer {
	if a.err != nil {
		return 0
	}
	b, err := a.g.activation(what, elems)
	a.err = err
	return b
}

// release frees every buffer; the device stays open.
func (g *gpu) release() {
	for _, b := range g.owned {
		g.device.DestroyBuffer(b) // best effort: the device may be gone
	}
	g.owned = nil
}

// prepare starts a sequence on mix: it uploads the entries mix needs that
// are not on the device yet (w holds them decoded) and seeds the sampler.
func (g *gpu) prepare(w *model.Weights, mix model.Mix, o Options) error {
	for _, lt := range model.Layout(g.config) { // in layout order, so buffers are made deterministically
		t := g.tensors[lt.Name]
		if t == nil || !t.nested {
			continue
		}
		if need := g.config.FFNWidths[mix[t.layer]]; t.rows < need {
			if err := g.grow(t, need); err != nil {
				return err
			}
		}
	}
	var byName map[string]model.Tensor // built once, on the first upload: Tensor(name) would list every tensor per entry
	for i, e := range g.header.Entries {
		if g.uploaded[i] || !e.NeededBy(mix) || !onGPU(e.Tensor) {
			continue
		}
		if byName == nil {
			byName = map[string]model.Tensor{}
			for _, t := range w.Tensors() {
				byName[t.Name] = t
			}
		}
		t := byName[e.Tensor]
		if err := g.upload(g.tensors[e.Tensor], t.Data, e.RowStart, e.RowEnd); err != nil {
			return err
		}
		g.uploaded[i] = true
	}
	if o.Temperature > 0 {
		var state [4]byte
		binary.LittleEndian.PutUint32(state[:], shaders.SamplerState(o.Seed))
		if err := g.device.WriteBuffer(g.rngState, 0, state[:]); err != nil {
			return fmt.Errorf("gpu: seed sampler: %w", err)
		}
	}
	g.mix, g.route, g.sampling, g.onDevice, g.reading, g.err = mix, nil, o, -1, false, nil
	return nil
}

// routeAt makes the sequence prepared last a routed one, at the price tau
// that the budget gave (Weights.RouteThreshold).
func (g *gpu) routeAt(tau float32) error {
	c := g.config
	last := c.Granularities() - 1
	r := &gpuRoute{tau: tau, forced: last + 1, picks: make([]int, c.Layers)}
	// Where model.RoutePick compares no scores: τ = +∞ is S, −∞ the last;
	// so is a price e^τ that float64 rounds to +Inf or 0, against which
	// every cost compares alike (never below +Inf, never below 0).
	switch price := math.Exp(float64(tau)); {
	case math.IsInf(float64(tau), 1):
		r.forced = 0
	case math.IsInf(price, 1), price == 0:
		r.forced = last
	}
	if r.forced <= last {
		r.tau = 0
	}
	for _, layer := range g.layers {
		if layer.router == nil || len(layer.router.slabs) != 1 {
			return fmt.Errorf("%w: gpu: route: the routers are not on the device in one binding each", ErrBackend)
		}
	}
	g.route = r
	return nil
}

// upload writes rows [from, to) of t (data is the whole tensor, f32) to the
// slabs that hold them.
func (g *gpu) upload(t *gpuTensor, data []float32, from, to int) error {
	for _, s := range t.slabs {
		lo, hi := max(from, s.first), min(to, s.first+s.rows)
		if lo >= hi {
			continue
		}
		rows := data[lo*t.cols : hi*t.cols]
		var b []byte
		if t.half {
			b = shaders.PackHalves(rows)
		} else {
			b = weights.EncodeF32(rows)
		}
		if err := g.device.WriteBuffer(s.buffer, uint64((lo-s.first)*t.rowBytes()), b); err != nil {
			return fmt.Errorf("gpu: upload %s rows [%d, %d): %w", t.name, lo, hi, err)
		}
	}
	return nil
}

func (g *gpu) Name() string { return "gpu" }

// Start records the forward pass of tokens at pos… and the sampling of the
// next token, and starts reading it back.
func (g *gpu) Start(tokens []int, pos int) error {
	if g.reading {
		return fmt.Errorf("%w: gpu: a step is already in flight", ErrState)
	}
	g.err = nil
	if len(tokens) != 1 || tokens[0] != g.onDevice {
		ids := make([]byte, 4*len(tokens))
		for i, t := range tokens {
			if t < 0 || t >= g.config.Vocab {
				return fmt.Errorf("%w: token %d outside the vocabulary", ErrArg, t)
			}
			binary.LittleEndian.PutUint32(ids[4*i:], uint32(t))
		}
		if err := g.device.WriteBuffer(g.tokens, uint64(4*pos), ids); err != nil {
			return fmt.Errorf("gpu: write tokens: %w", err)
		}
	}
	rows := 0 // of the last pass
	for done := 0; done < len(tokens); done += g.batch {
		rows = min(g.batch, len(tokens)-done)
		g.forward(pos+done, rows, g.mix, false)
	}
	next := pos + len(tokens)
	o := g.sampling
	if o.RepetitionPenalty > 1 || o.PresencePenalty != 0 {
		// The window is the last tokens of the sequence, which the tokens
		// buffer holds at their positions, as the cpu backend's history.
		window := o.PenaltyWindow
		if window == 0 {
			window = abi.DefaultPenaltyWindow
		}
		first := max(0, next-window)
		g.run(shaders.Penalize.Call(shaders.PenalizeArgs{N: g.config.Vocab, First: first, Count: next - first,
			Repetition: o.RepetitionPenalty, Presence: o.PresencePenalty, Tokens: g.tokens, Logits: g.logits}))
	}
	if o.Temperature > 0 {
		g.run(shaders.Sample.Call(shaders.SampleArgs{N: g.config.Vocab, TopK: o.TopK, TopP: o.TopP, Temperature: o.Temperature, MinP: o.MinP,
			OutIndex: next, Logits: g.logits, State: g.rngState, Out: g.tokens}))
	} else {
		g.run(shaders.Argmax.Call(shaders.ArgmaxArgs{N: g.config.Vocab, OutIndex: next, X: g.logits, Out: g.tokens}))
	}
	if g.err != nil {
		return g.err
	}
	read, offset, size := g.tokens, uint64(4*next), uint64(4)
	if g.route != nil {
		// The token and its row's widths side by side, for one readback.
		layers := uint64(g.config.Layers)
		if err := g.device.Copy(g.tokens, offset, g.readback, 0, 4); err != nil {
			return fmt.Errorf("gpu: copy token: %w", err)
		}
		if err := g.device.Copy(g.widths, 4*uint64(rows-1)*layers, g.readback, 4, 4*layers); err != nil {
			return fmt.Errorf("gpu: copy routed widths: %w", err)
		}
		read, offset, size = g.readback, 0, 4*(1+layers)
	}
	t, err := g.device.Read(read, offset, size)
	if err != nil {
		return fmt.Errorf("gpu: read token: %w", err)
	}
	g.ticket, g.readSlot, g.reading = t, next, true
	g.readBytes = g.readBytes[:size]
	return nil
}

// Token collects the sampled token once the readback has completed.
func (g *gpu) Token() (int, bool, error) {
	if !g.reading {
		return 0, false, fmt.Errorf("%w: gpu: no step in flight", ErrState)
	}
	done, err := g.device.ReadResult(g.ticket, g.readBytes)
	if err != nil {
		g.reading = false
		return 0, false, fmt.Errorf("gpu: read token: %w", err)
	}
	if !done {
		return 0, false, nil
	}
	g.reading = false
	token := int(binary.LittleEndian.Uint32(g.readBytes))
	if token >= g.config.Vocab {
		return 0, false, fmt.Errorf("gpu: sampled token %d outside the vocabulary %d", token, g.config.Vocab)
	}
	if r := g.route; r != nil {
		for l := range r.picks {
			rows := int(binary.LittleEndian.Uint32(g.readBytes[4*(1+l):]))
			if r.picks[l] = slices.Index(g.config.FFNWidths, rows); r.picks[l] < 0 {
				return 0, false, fmt.Errorf("gpu: layer %d ran %d FFN rows, no granularity's width", l, rows)
			}
		}
	}
	g.onDevice = token
	return token, true, nil
}

// forward records rows tokens at positions pos… through the network with
// mix; the logits of the last one land in g.logits, or with every, those of
// each row r at r·vocab. It is model.Forward for a batch of rows.
func (g *gpu) forward(pos, rows int, mix model.Mix, every bool) {
	c := g.config
	d := c.Dim
	if g.vision != nil {
		if g.err == nil {
			g.err = fmt.Errorf("%w: gpu: this is a vision model (matvit): it classifies images, it does not generate", ErrState)
		}
		return
	}
	for _, s := range g.embed.slabs {
		g.run(shaders.Embed.Call(shaders.EmbedArgs{Dim: d, Count: rows, Vocab: s.rows, TokenOffset: pos, FirstRow: s.first,
			Table: s.buffer, Tokens: g.tokens, Out: g.x}))
	}
	g.blocks(pos, rows, mix)
	// The last FFN's output is added into the residual stream with the final norm.
	g.run(shaders.AddRMSNorm.Call(shaders.AddRMSNormArgs{N: d, Rows: rows, Eps: c.NormEps, Y: g.proj, Gain: g.slab(g.finalNorm), X: g.x, Out: g.xb}))
	if every {
		g.matmul(g.head, c.Vocab, rows, g.xb, g.logits, 0, everyRow)
	} else {
		g.matvec(g.head, c.Vocab, g.xb, (rows-1)*d, g.logits, 0, everyRow)
	}
}

// blocks records the transformer blocks with mix over rows rows of g.x at
// positions pos…, and leaves the last block's FFN output in g.proj, not yet
// added into g.x. A language model's attention is causal with RoPE, its keys
// and values going into the cache at pos; a vision model's (pos 0, rows
// every patch) is bidirectional without RoPE, as model.Batch.ForwardImages.
func (g *gpu) blocks(pos, rows int, mix model.Mix) {
	c := g.config
	d, hd := c.Dim, c.HeadDim()
	vision := c.IsVision()
	attention := shaders.Attention
	if vision {
		attention = shaders.AttentionBidirectional
	}
	// Each residual add is fused with the norm that follows it (add_rmsnorm):
	// residual says that g.proj still has to be added into g.x.
	residual := false
	norm := func(gain *gpuTensor) {
		if residual {
			g.run(shaders.AddRMSNorm.Call(shaders.AddRMSNormArgs{N: d, Rows: rows, Eps: c.NormEps, Y: g.proj, Gain: g.slab(gain), X: g.x, Out: g.xb}))
		} else {
			g.run(shaders.RMSNorm.Call(shaders.RMSNormArgs{N: d, Rows: rows, Eps: c.NormEps, X: g.x, Gain: g.slab(gain), Out: g.xb}))
		}
		residual = false
	}
	rope := func(x webgpu.Buffer, offset int) {
		g.run(shaders.RoPE.Call(shaders.RoPEArgs{N: d, HeadDim: hd, Rows: rows, Pos: pos, XOffset: offset, CosTable: g.ropeCos, SinTable: g.ropeSin, X: x}))
	}
	for l, layer := range g.layers {
		// Attention: x += Wo · attend(rope(Wq·n), rope(Wk·n), Wv·n), n = rmsnorm(x).
		// This step's keys and values go straight into the cache.
		norm(layer.attnNorm)
		g.matmul(layer.query, d, rows, g.xb, g.q, 0, everyRow)
		g.matmul(layer.key, d, rows, g.xb, layer.keys, pos*d, everyRow)
		g.matmul(layer.value, d, rows, g.xb, layer.values, pos*d, everyRow)
		if !vision {
			rope(g.q, 0)
			rope(layer.keys, pos*d)
		}
		g.run(attention.Call(shaders.AttentionArgs{HeadDim: hd, Heads: c.Heads, Rows: rows, Start: pos, ScoresStride: c.Context,
			Scale: float32(1 / math.Sqrt(float64(hd))), Q: g.q, Keys: layer.keys, Values: layer.values, Scores: g.scores, Out: g.att}))
		g.matmul(layer.output, d, rows, g.att, g.proj, 0, everyRow)
		residual = true

		// FFN, nested: only the first width neurons of this layer.
		// x += Σ_j<width silu(gate_j·n) · (up_j·n) · down_j, n = rmsnorm(x).
		// Routed, each token's width is the router's pick, at most the mix's
		// width, which then sizes the dispatches and strides the rows.
		width := c.FFNWidths[mix[l]]
		norm(layer.ffnNorm)
		rowsOf := everyRow
		if g.route != nil && !vision {
			rowsOf = perToken{routed: true, offset: l, stride: c.Layers}
			g.run(shaders.Route.Call(shaders.RouteArgs{Dim: d, Rows: rows, Granularities: c.Granularities(), Cap: mix[l],
				Forced: g.route.forced, Tau: g.route.tau, WidthOffset: l, WidthStride: c.Layers,
				X: g.xb, Router: g.slab(layer.router), FFNWidths: g.ffnWidths, Widths: g.widths}))
		}
		g.matmul(layer.gate, width, rows, g.xb, g.gate, 0, rowsOf)
		g.matmul(layer.up, width, rows, g.xb, g.up, 0, rowsOf)
		g.run(shaders.SwiGLU.Call(shaders.SwiGLUArgs{N: rows * width, Gate: g.gate, Up: g.up, Out: g.act}))
		if down := layer.down; vision && !down.half && len(down.slabs) == 1 {
			// All patches in one dispatch (one per row cost a vision model
			// three quarters of its time on lavapipe).
			g.run(shaders.MatMulT.Call(shaders.MatMulArgs{Rows: width, Cols: d, Tokens: rows, W: down.slabs[0].buffer, X: g.act, Out: g.proj}))
		} else {
			for r := range rows {
				g.matvecT(down, width, g.act, r*width, g.proj, r*d, rowsOf.row(r))
			}
		}
		residual = true
	}
}

// slab is the buffer of a tensor that is never split (a norm gain).
func (g *gpu) slab(t *gpuTensor) webgpu.Buffer {
	if len(t.slabs) != 1 {
		panic(fmt.Sprintf("engine: gpu: %s is split", t.name))
	}
	return t.slabs[0].buffer
}

// perToken says how many of the rows a matrix kernel is asked for each
// token runs. The zero value, everyRow, runs them all (the plain kernels);
// routed, row r of a batch runs g.widths[offset + r·stride] (the route
// kernel's pick, a row count) through the kernels' routed variants.
type perToken struct {
	routed         bool
	offset, stride int
}

// everyRow runs every row asked for.
var everyRow perToken

// row is where batch row r's count is, for a kernel of that one token.
func (p perToken) row(r int) perToken {
	return perToken{routed: p.routed, offset: p.offset + r*p.stride}
}

// routed is a matvec*'s or matvec_t*'s arguments for its routed variant, on
// a slab whose first row is first.
func (g *gpu) routed(a shaders.MatVecArgs, first int, rowsOf perToken) shaders.RoutedArgs {
	return shaders.RoutedArgs{Rows: a.Rows, Cols: a.Cols, Tokens: 1, WOffset: a.WOffset, XOffset: a.XOffset, OutOffset: a.OutOffset,
		FirstRow: first, WidthOffset: rowsOf.offset, W: a.W, X: a.X, Out: a.Out, Widths: g.widths}
}

// matmul records out[outOffset + r·n + row] = t[row]·x[r] for the first n
// rows of t (of token r's own count, when routed) and tokens rows of x
// ([tokens][t.cols]): matmul for a batch, matvec for one token, and one
// matvec per token when t is split (a batch's output rows are interleaved,
// which slabs cannot write).
func (g *gpu) matmul(t *gpuTensor, n, tokens int, x webgpu.Buffer, out webgpu.Buffer, outOffset int, rowsOf perToken) {
	if tokens == 1 || len(t.slabs) > 1 {
		for r := range tokens {
			g.matvec(t, n, x, r*t.cols, out, outOffset+r*n, rowsOf.row(r))
		}
		return
	}
	if rowsOf.routed {
		kernel := shaders.MatMulRouted
		if t.half {
			kernel = shaders.MatMulF16Routed
		}
		g.run(kernel.Call(shaders.RoutedArgs{Rows: n, Cols: t.cols, Tokens: tokens, OutOffset: outOffset,
			WidthOffset: rowsOf.offset, WidthStride: rowsOf.stride, W: t.slabs[0].buffer, X: x, Out: out, Widths: g.widths}))
		return
	}
	kernel := shaders.MatMul
	if t.half {
		kernel = shaders.MatMulF16
	}
	g.run(kernel.Call(shaders.MatMulArgs{Rows: n, Cols: t.cols, Tokens: tokens, OutOffset: outOffset, W: t.slabs[0].buffer, X: x, Out: out}))
}

// matvec records out[outOffset + row] = t[row]·x[xOffset:] for row < n
// (below the token's own count, when routed), slab by slab: with matvec4 (4
// rows per invocation) when the shapes allow.
func (g *gpu) matvec(t *gpuTensor, n int, x webgpu.Buffer, xOffset int, out webgpu.Buffer, outOffset int, rowsOf perToken) {
	kernel, routed := shaders.MatVec, shaders.MatVecRouted
	switch {
	case t.half:
		kernel, routed = shaders.MatVecF16, shaders.MatVecF16Routed
	case t.cols%4 == 0 && xOffset%4 == 0:
		kernel, routed = shaders.MatVec4, shaders.MatVec4Routed
	}
	for _, s := range t.slabs {
		rows := min(s.rows, n-s.first)
		if rows <= 0 {
			break
		}
		a := shaders.MatVecArgs{Rows: rows, Cols: t.cols, XOffset: xOffset, OutOffset: outOffset + s.first, W: s.buffer, X: x, Out: out}
		if rowsOf.routed {
			g.run(routed.Call(g.routed(a, s.first, rowsOf)))
		} else {
			g.run(kernel.Call(a))
		}
	}
}

// matvecT records out[outOffset : outOffset+t.cols] = Σ_{j<n} x[xOffset+j]·t[j]
// (the down projection; j below the token's own count, when routed). Over
// several slabs, each slab's sum goes to g.partial and is added into g.acc,
// which is then copied to out.
func (g *gpu) matvecT(t *gpuTensor, n int, x webgpu.Buffer, xOffset int, out webgpu.Buffer, outOffset int, rowsOf perToken) {
	kernel, routed := shaders.MatVecT, shaders.MatVecTRouted
	if t.half {
		kernel, routed = shaders.MatVecTF16, shaders.MatVecTF16Routed
	}
	run := func(a shaders.MatVecArgs, first int) {
		if rowsOf.routed {
			g.run(routed.Call(g.routed(a, first, rowsOf)))
		} else {
			g.run(kernel.Call(a))
		}
	}
	if n <= t.slabs[0].rows {
		run(shaders.MatVecArgs{Rows: n, Cols: t.cols, XOffset: xOffset, OutOffset: outOffset, W: t.slabs[0].buffer, X: x, Out: out}, 0)
		return
	}
	for i, s := range t.slabs {
		rows := min(s.rows, n-s.first)
		if rows <= 0 {
			break
		}
		dst := g.acc
		if i > 0 {
			dst = g.partial
		}
		run(shaders.MatVecArgs{Rows: rows, Cols: t.cols, XOffset: xOffset + s.first, W: s.buffer, X: x, Out: dst}, s.first)
		if i > 0 {
			g.run(shaders.Add.Call(shaders.AddArgs{N: t.cols, Y: g.partial, X: g.acc}))
		}
	}
	if g.err == nil {
		if err := g.device.Copy(g.acc, 0, out, uint64(4*outOffset), uint64(4*t.cols)); err != nil {
			g.err = fmt.Errorf("gpu: copy down projection: %w", err)
		}
	}
}

// run records one dispatch (a shaders Def's Call: its params, buffers and
// grid); the first error sticks in g.err and later calls do nothing.
func (g *gpu) run(d shaders.Dispatch) {
	if g.err != nil {
		return
	}
	if err := d.Record(g.device, g.pipes); err != nil {
		g.err = fmt.Errorf("gpu: %w", err)
	}
}

// errNoGPU wraps why the gpu backend could not start.
func errNoGPU(err error) error {
	if errors.Is(err, ErrBackend) {
		return err
	}
	return fmt.Errorf("%w: gpu: %v", ErrBackend, err)
}
