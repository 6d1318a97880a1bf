// Package model is the MatFormer network in plain Go: a Llama-style decoder whose
// FFN blocks are nested, so that one set of weights holds many models.
//
// Granularity g of a layer uses only the first Config.FFNWidths[g] hidden neurons
// of that layer's FFN. A Mix picks one granularity per layer. Every tensor is a
// []float32 with its shape written in a comment, row-major, and every FFN matrix
// is stored neuron-major ([hidden][dim]) so that a granularity's neurons are a
// prefix of the rows.
//
// The package has no I/O, no GPU and no wasm: it is the reference every backend
// is compared to. Read config.go, weights.go, forward.go, sample.go in that order;
// training is train.go (a batched forward that keeps activations, and the
// backward pass of every op beside its forward), matmul.go, objective.go
// (MatFormer's joint loss), optim.go (AdamW, schedule, clipping) and bpe.go
// (tokenizer training).
package model

import (
	"fmt"
	"math"
	"strings"
)

// MaxVocab is the largest vocabulary a config may have.
const MaxVocab = 1 << 20

// Ranges of the float fields, checked by Validate. Both must be finite.
//
// rope_theta at least 1: below 1 the rotary frequencies grow along the head
// instead of falling (and a denormal base sends them to infinity); every
// published model uses 10^4 to 10^7. norm_eps a normal float32 up to 1: it
// only guards the RMSNorm division (models use 10^-12 to 10^-5); a
// denormal one flushes to zero on some GPUs, a large one erases the signal.
const (
	minRopeTheta = 1
	minNormEps   = 0x1p-126 // the smallest normal float32
	maxNormEps   = 1
)

// Config is the shape of a network. It is stored in every weights file header.
type Config struct {
	Vocab     int     `msgpack:"vocab" json:"vocab"`           // tokens in the vocabulary
	Dim       int     `msgpack:"dim" json:"dim"`               // d_model, the width of the residual stream
	Layers    int     `msgpack:"layers" json:"layers"`         // transformer blocks
	Heads     int     `msgpack:"heads" json:"heads"`           // attention heads; Dim/Heads is the head size
	FFNWidths []int   `msgpack:"ffn_widths" json:"ffn_widths"` // hidden width of each granularity, ascending; the last is XL
	Context   int     `msgpack:"context" json:"context"`       // longest sequence (KV cache length)
	RopeTheta float32 `msgpack:"rope_theta" json:"rope_theta"` // base of the rotary position frequencies
	NormEps   float32 `msgpack:"norm_eps" json:"norm_eps"`     // RMSNorm epsilon
	// RouterBudgets is the number of rows of the token router's budget table
	// (route.go); 0, the default and what files without a router carry, means
	// the network has no router tensors.
	RouterBudgets int `msgpack:"router_budgets,omitempty" json:"router_budgets,omitempty"`
	// Image, when set, makes the network a MatViT image encoder and
	// classifier (vision.go) instead of a language model: its input is an
	// image cut into patches, Context is the number of patches, Vocab the
	// number of classes, attention is bidirectional and there is no RoPE.
	Image *ImageConfig `msgpack:"image,omitempty" json:"image,omitempty"`
}

// NestedWidths returns the default MatFormer granularities for an XL hidden width:
// S, M, L, XL = hidden/8, hidden/4, hidden/2, hidden.
func NestedWidths(hidden int) []int {
	return []int{hidden / 8, hidden / 4, hidden / 2, hidden}
}

// Hidden is the XL (largest) FFN hidden width.
func (c Config) Hidden() int { return c.FFNWidths[len(c.FFNWidths)-1] }

// HeadDim is the size of one attention head.
func (c Config) HeadDim() int { return c.Dim / c.Heads }

// Granularities is G, the number of nested FFN widths.
func (c Config) Granularities() int { return len(c.FFNWidths) }

// Validate reports whether the config describes a network this package can run.
func (c Config) Validate() error {
	switch {
	case c.Vocab <= 0 || c.Vocab > MaxVocab:
		return fmt.Errorf("model: vocab %d out of range [1, 2^20]", c.Vocab)
	case c.Dim <= 0 || c.Dim > 1<<14:
		return fmt.Errorf("model: dim %d out of range [1, 16384]", c.Dim)
	case c.Layers <= 0 || c.Layers > 1024:
		return fmt.Errorf("model: layers %d out of range [1, 1024]", c.Layers)
	case c.Heads <= 0 || c.Dim%c.Heads != 0:
		return fmt.Errorf("model: dim %d is not a multiple of heads %d", c.Dim, c.Heads)
	case c.HeadDim()%2 != 0:
		return fmt.Errorf("model: head size %d is odd; rotary embedding needs pairs", c.HeadDim())
	case c.Context <= 0 || c.Context > 1<<16:
		return fmt.Errorf("model: context %d out of range [1, 65536]", c.Context)
	case len(c.FFNWidths) == 0 || len(c.FFNWidths) > 16:
		return fmt.Errorf("model: %d granularities, want 1 to 16", len(c.FFNWidths))
	case !(c.RopeTheta >= minRopeTheta) || math.IsInf(float64(c.RopeTheta), 0):
		return fmt.Errorf("model: rope_theta %g must be finite and at least %d", c.RopeTheta, minRopeTheta)
	case !(c.NormEps >= minNormEps && c.NormEps <= maxNormEps):
		return fmt.Errorf("model: norm_eps %g out of range [%g, %d] (finite, not denormal)", c.NormEps, float32(minNormEps), maxNormEps)
	}
	if c.RouterBudgets != 0 && (c.RouterBudgets < 2 || c.RouterBudgets > maxRouterBudgets || len(c.FFNWidths) < 2) {
		return fmt.Errorf("model: router_budgets %d: a router needs 2 to %d budget rows and at least 2 granularities (have %d)", c.RouterBudgets, maxRouterBudgets, len(c.FFNWidths))
	}
	if c.Image != nil {
		if err := c.Image.validate(c); err != nil {
			return err
		}
	}
	prev := 0
	for g, w := range c.FFNWidths {
		if w <= prev || w > 1<<16 {
			return fmt.Errorf("model: ffn width %d of granularity %d must be ascending and at most 65536", w, g)
		}
		prev = w
	}
	return nil
}

// GranularityName names granularity g: S, M, L, XL for the paper's four, g0… otherwise.
func (c Config) GranularityName(g int) string {
	if len(c.FFNWidths) == 4 {
		return [...]string{"S", "M", "L", "XL"}[g]
	}
	return fmt.Sprintf("g%d", g)
}

// Mix is one granularity index per layer: Mix[i] selects FFNWidths[Mix[i]] for layer i.
// A uniform Mix is one of the trained submodels; any other is a Mix'n'Match model.
type Mix []int

// NarrowerThan reports whether m is no wider than other in any layer and
// narrower in at least one: a draft for other that reads only its rows.
func (m Mix) NarrowerThan(other Mix) bool {
	less := false
	for l := range m {
		if m[l] > other[l] {
			return false
		}
		less = less || m[l] < other[l]
	}
	return less
}

// Uniform returns the Mix that uses granularity g in every layer.
func (c Config) Uniform(g int) Mix {
	m := make(Mix, c.Layers)
	for i := range m {
		m[i] = g
	}
	return m
}

// ParseMix reads a Mix: one granularity name ("S", "XL", "g2"), used for every
// layer, or a comma list with one name per layer ("S,S,M,XL").
func (c Config) ParseMix(spec string) (Mix, error) {
	parts := strings.Split(strings.TrimSpace(spec), ",")
	if len(parts) != 1 && len(parts) != c.Layers {
		return nil, fmt.Errorf("mix %q: %d entries, want 1 or one per layer (%d)", spec, len(parts), c.Layers)
	}
	m := make(Mix, len(parts))
	for i, p := range parts {
		g, ok := c.granularityByName(strings.TrimSpace(p))
		if !ok {
			return nil, fmt.Errorf("mix %q: unknown granularity %q (want one of %s)", spec, p, strings.Join(c.granularityNames(), ", "))
		}
		m[i] = g
	}
	if len(m) == 1 {
		return c.Uniform(m[0]), nil
	}
	return m, nil
}

func (c Config) granularityNames() []string {
	names := make([]string, len(c.FFNWidths))
	for g := range names {
		names[g] = c.GranularityName(g)
	}
	return names
}

func (c Config) granularityByName(name string) (int, bool) {
	for g, n := range c.granularityNames() {
		if strings.EqualFold(n, name) {
			return g, true
		}
	}
	return 0, false
}

// CheckMix reports whether m has one valid granularity per layer.
func (c Config) CheckMix(m Mix) error {
	if len(m) != c.Layers {
		return fmt.Errorf("mix has %d layers, model has %d", len(m), c.Layers)
	}
	for i, g := range m {
		if g < 0 || g >= len(c.FFNWidths) {
			return fmt.Errorf("mix layer %d: granularity %d out of range [0, %d)", i, g, len(c.FFNWidths))
		}
	}
	return nil
}

// MixNames returns the Mix as granularity names, one per layer.
func (c Config) MixNames(m Mix) []string {
	names := make([]string, len(m))
	for i, g := range m {
		names[i] = c.GranularityName(g)
	}
	return names
}

// NonEmbeddingParams counts the parameters a Mix uses outside the embedding and
// LM head: attention, norms, and each layer's FFN prefix.
func (c Config) NonEmbeddingParams(m Mix) int {
	n := c.Dim // final norm
	for _, g := range m {
		n += 2*c.Dim + 4*c.Dim*c.Dim + 3*c.FFNWidths[g]*c.Dim
	}
	return n
}

// PresetMixes are the mixes whose quality a trained file records: every
// uniform granularity and, with several granularities and layers, "grows
// with depth" and "shrinks with depth".
func (c Config) PresetMixes() []Mix {
	var mixes []Mix
	for g := range c.FFNWidths {
		mixes = append(mixes, c.Uniform(g))
	}
	if c.Granularities() > 1 && c.Layers > 1 {
		grow, shrink := make(Mix, c.Layers), make(Mix, c.Layers)
		for l := range grow {
			grow[l] = l * c.Granularities() / c.Layers
			shrink[c.Layers-1-l] = grow[l]
		}
		mixes = append(mixes, grow, shrink)
	}
	return mixes
}

// MixSpec writes a mix the way ParseMix reads it: one name if uniform, else
// one name per layer joined by commas.
func (c Config) MixSpec(m Mix) string {
	names := c.MixNames(m)
	for _, n := range names[1:] {
		if n != names[0] {
			return strings.Join(names, ",")
		}
	}
	return names[0]
}
