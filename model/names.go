package model

import (
	"strconv"
	"strings"
)

// The names of the tensors, as weights files, checkpoints and the GPU
// backend call them (weights/doc.go lists each one's shape and meaning).
// Weights.layout fixes their order; every other package names a tensor with
// these, never by formatting its own string.
const (
	EmbedTensor        = "embed"         // [vocab][dim]; absent in a vision model
	PatchEmbedTensor   = "patch_embed"   // a vision model's [dim][patch_len]
	PosEmbedTensor     = "pos_embed"     // a vision model's [patches][dim]
	FinalNormTensor    = "final_norm"    // [dim]
	HeadTensor         = "head"          // [vocab][dim]
	RouterBudgetTensor = "router_budget" // [router_budgets][2]; only with a router
)

// LayerPart is one of a block's tensors; LayerTensor gives its name in a layer.
type LayerPart string

// The tensors of block l, in storage order (the routers come after every
// other tensor: Weights.layout).
const (
	AttnNorm LayerPart = "attn_norm"
	Query    LayerPart = "query"
	Key      LayerPart = "key"
	Value    LayerPart = "value"
	Output   LayerPart = "output"
	FFNNorm  LayerPart = "ffn_norm"
	FFNGate  LayerPart = "ffn_gate"
	FFNUp    LayerPart = "ffn_up"
	FFNDown  LayerPart = "ffn_down"
	Router   LayerPart = "router"
)

// AttentionParts are the attention projections, [dim][dim] each.
var AttentionParts = [...]LayerPart{Query, Key, Value, Output}

// FFNParts are the nested FFN matrices, [hidden][dim] each: granularity g
// uses their first FFNWidths[g] rows.
var FFNParts = [...]LayerPart{FFNGate, FFNUp, FFNDown}

// layerPrefix starts every block tensor's name.
const layerPrefix = "layers."

// LayerTensor is the name of part in block l: "layers.3.ffn_up".
func LayerTensor(l int, part LayerPart) string {
	return layerPrefix + strconv.Itoa(l) + "." + string(part)
}

// ParseLayerTensor splits a block tensor's name into its block and part; ok
// is false for a shared tensor's name (embed, head, …) or a malformed one.
// The part is not checked against the known ones.
func ParseLayerTensor(name string) (l int, part LayerPart, ok bool) {
	rest, found := strings.CutPrefix(name, layerPrefix)
	if !found {
		return 0, "", false
	}
	num, p, found := strings.Cut(rest, ".")
	if !found || p == "" {
		return 0, "", false
	}
	l, err := strconv.Atoi(num)
	if err != nil || l < 0 || strconv.Itoa(l) != num {
		return 0, "", false
	}
	return l, LayerPart(p), true
}
