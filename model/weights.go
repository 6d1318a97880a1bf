package model

import "fmt"

// Layer holds one transformer block's parameters. Matrices are out-major
// ([out][in]) except the FFN ones, which are neuron-major so that the first
// FFNWidths[g] rows are granularity g.
type Layer struct {
	AttnNorm []float32 // [dim] RMSNorm gain before attention
	Query    []float32 // [dim][dim]
	Key      []float32 // [dim][dim]
	Value    []float32 // [dim][dim]
	Output   []float32 // [dim][dim] attention output projection
	FFNNorm  []float32 // [dim] RMSNorm gain before the FFN
	Gate     []float32 // [hidden][dim] W1: neuron j's gate weights are row j
	Up       []float32 // [hidden][dim] W3: neuron j's up weights are row j
	Down     []float32 // [hidden][dim] W2ᵀ: neuron j's contribution to the output is row j
	// Router predicts, from the FFN input n = rmsnorm(x), the log error of each
	// granularity but XL: row g is [w_g · n + b_g] stored as w_g then b_g
	// (route.go). nil when the config has no router.
	Router []float32 // [G-1][dim+1]
}

// Weights are all parameters of a network, carved as named views out of one
// allocation (Data) so that an optimizer can treat them as a single vector.
//
// Weights may hold only a prefix of each layer's FFN neurons (NestedRows):
// a device that runs S needs memory for S's rows, not XL's.
type Weights struct {
	Config     Config
	NestedRows []int     // [layers] FFN rows allocated per layer; nil means all (Config.Hidden())
	Data       []float32 // every allocated parameter, in Tensors() order
	Embed      []float32 // [vocab][dim] token embedding; nil in a vision model
	PatchEmbed []float32 // [dim][patch_len] a vision model's patch projection (vision.go); nil in a language model
	PosEmbed   []float32 // [patches][dim] a vision model's learned position embedding; nil in a language model
	Layers     []Layer   // [layers]
	FinalNorm  []float32 // [dim]
	Head       []float32 // [vocab][dim] LM head
	// RouterBudget maps a budget (a fraction of XL's FFN FLOPs) to the
	// router's threshold: rows (fraction, τ), fractions ascending (route.go).
	// nil when the config has no router.
	RouterBudget []float32 // [RouterBudgets][2]
}

// Tensor is a named view of a parameter.
type Tensor struct {
	Name   string
	Shape  []int     // row-major; FFN tensors are [rows][dim]: hidden, or NestedRows[l] when allocated partly
	Data   []float32 // the view into Weights.Data
	Nested bool      // an FFN matrix: granularity g uses rows [0, FFNWidths[g])
	Layer  int       // the block it belongs to, -1 for embedding, final norm and head
}

// NewWeights allocates zeroed weights for c. It panics on an invalid config:
// callers validate configs that come from outside.
func NewWeights(c Config) *Weights { return NewNestedWeights(c, nil) }

// NewNestedWeights allocates zeroed weights for c with only the first
// rows[l] neurons of layer l's FFN matrices (rows nil: all of them). A Mix
// can run on them if every layer's width is at most its rows. It panics on an
// invalid config or row count.
func NewNestedWeights(c Config, rows []int) *Weights {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	if rows != nil {
		if len(rows) != c.Layers {
			panic(fmt.Sprintf("model: %d nested row counts for %d layers", len(rows), c.Layers))
		}
		for _, r := range rows {
			if r < 0 || r > c.Hidden() {
				panic(fmt.Sprintf("model: nested rows %d outside [0, %d]", r, c.Hidden()))
			}
		}
		rows = append([]int(nil), rows...)
	}
	w := &Weights{Config: c, NestedRows: rows, Layers: make([]Layer, c.Layers)}
	total := 0
	for _, t := range w.layout() {
		total += t.size
	}
	w.Data = make([]float32, total)
	off := 0
	for _, t := range w.layout() {
		*t.view = w.Data[off : off+t.size : off+t.size]
		off += t.size
	}
	return w
}

type slot struct {
	name   string
	shape  []int
	size   int
	view   *[]float32
	nested bool
	layer  int
}

// layout is the one place that fixes the tensors' order; their names are
// names.go's.
func (w *Weights) layout() []slot {
	c := w.Config
	d, v := c.Dim, c.Vocab
	mk := func(name string, view *[]float32, layer int, nested bool, shape ...int) slot {
		size := 1
		for _, s := range shape {
			size *= s
		}
		return slot{name: name, shape: shape, size: size, view: view, nested: nested, layer: layer}
	}
	s := []slot{mk(EmbedTensor, &w.Embed, -1, false, v, d)}
	if im := c.Image; im != nil {
		s = []slot{
			mk(PatchEmbedTensor, &w.PatchEmbed, -1, false, d, im.PatchLen()),
			mk(PosEmbedTensor, &w.PosEmbed, -1, false, im.Patches(), d),
		}
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		s = append(s,
			mk(LayerTensor(i, AttnNorm), &l.AttnNorm, i, false, d),
			mk(LayerTensor(i, Query), &l.Query, i, false, d, d),
			mk(LayerTensor(i, Key), &l.Key, i, false, d, d),
			mk(LayerTensor(i, Value), &l.Value, i, false, d, d),
			mk(LayerTensor(i, Output), &l.Output, i, false, d, d),
			mk(LayerTensor(i, FFNNorm), &l.FFNNorm, i, false, d),
			mk(LayerTensor(i, FFNGate), &l.Gate, i, true, w.rows(i), d),
			mk(LayerTensor(i, FFNUp), &l.Up, i, true, w.rows(i), d),
			mk(LayerTensor(i, FFNDown), &l.Down, i, true, w.rows(i), d),
		)
	}
	s = append(s,
		mk(FinalNormTensor, &w.FinalNorm, -1, false, d),
		mk(HeadTensor, &w.Head, -1, false, v, d),
	)
	if c.RouterBudgets > 0 {
		// After every tensor of a network without a router, so that adding one
		// moves no other tensor in memory.
		for i := range w.Layers {
			s = append(s, mk(LayerTensor(i, Router), &w.Layers[i].Router, i, false, c.Granularities()-1, d+1))
		}
		s = append(s, mk(RouterBudgetTensor, &w.RouterBudget, -1, false, c.RouterBudgets, 2))
	}
	return s
}

// rows is how many FFN neurons of layer l are allocated.
func (w *Weights) rows(l int) int {
	if w.NestedRows == nil {
		return w.Config.Hidden()
	}
	return w.NestedRows[l]
}

// Tensors lists every parameter as a named view, in storage order. A nested
// tensor's Shape is its allocated rows, [NestedRows[l]][dim].
func (w *Weights) Tensors() []Tensor {
	slots := w.layout()
	ts := make([]Tensor, len(slots))
	for i, s := range slots {
		ts[i] = Tensor{Name: s.name, Shape: s.shape, Data: *s.view, Nested: s.nested, Layer: s.layer}
	}
	return ts
}

// Tensor returns the view named name, or false.
func (w *Weights) Tensor(name string) (Tensor, bool) {
	for _, t := range w.Tensors() {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// InitRandom fills w the way a network is initialised for training: norm gains
// one, matrices uniform in ±1/√fan_in from a seeded generator, so the same seed
// gives the same weights on every platform.
func (w *Weights) InitRandom(seed uint64) {
	r := NewRNG(seed)
	for _, t := range w.Tensors() {
		if len(t.Shape) == 1 {
			for i := range t.Data {
				t.Data[i] = 1
			}
			continue
		}
		fanIn := t.Shape[1]
		if _, part, _ := ParseLayerTensor(t.Name); part == FFNDown {
			fanIn = t.Shape[0] // W2ᵀ is stored [hidden][dim]; its inputs are the hidden neurons
		}
		scale := 1 / sqrt32(float32(fanIn))
		for i := range t.Data {
			t.Data[i] = (2*r.Float32() - 1) * scale
		}
	}
}

// Layout lists the tensors of config c in storage order without allocating
// them: every Tensor's Data is nil. c must be valid.
func Layout(c Config) []Tensor {
	w := &Weights{Config: c, Layers: make([]Layer, c.Layers)}
	return w.Tensors()
}
