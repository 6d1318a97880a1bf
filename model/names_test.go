package model

import (
	"slices"
	"testing"
)

// TestTensorNames pins the names files are written with (changing one breaks
// every weights file) and checks that ParseLayerTensor inverts LayerTensor.
func TestTensorNames(t *testing.T) {
	c := Config{Vocab: 8, Dim: 4, Layers: 2, Heads: 1, FFNWidths: []int{4, 8}, Context: 4, RopeTheta: 10000, NormEps: 1e-5, RouterBudgets: 2}
	var names []string
	for _, tensor := range Layout(c) {
		names = append(names, tensor.Name)
	}
	want := []string{"embed",
		"layers.0.attn_norm", "layers.0.query", "layers.0.key", "layers.0.value", "layers.0.output",
		"layers.0.ffn_norm", "layers.0.ffn_gate", "layers.0.ffn_up", "layers.0.ffn_down",
		"layers.1.attn_norm", "layers.1.query", "layers.1.key", "layers.1.value", "layers.1.output",
		"layers.1.ffn_norm", "layers.1.ffn_gate", "layers.1.ffn_up", "layers.1.ffn_down",
		"final_norm", "head", "layers.0.router", "layers.1.router", "router_budget"}
	if !slices.Equal(names, want) {
		t.Fatalf("Layout names = %q; want %q", names, want)
	}
	for _, tensor := range Layout(c) {
		l, part, ok := ParseLayerTensor(tensor.Name)
		if ok != (tensor.Layer >= 0) || (ok && (l != tensor.Layer || LayerTensor(l, part) != tensor.Name)) {
			t.Errorf("ParseLayerTensor(%q) = %d, %q, %v; the tensor is in layer %d", tensor.Name, l, part, ok, tensor.Layer)
		}
	}
	for _, bad := range []string{"", "layers.", "layers.1", "layers.1.", "layers.x.query", "layers.-1.query", "layers.01.query", "layers. 1.query", "head"} {
		if l, part, ok := ParseLayerTensor(bad); ok {
			t.Errorf("ParseLayerTensor(%q) = %d, %q; want not ok", bad, l, part)
		}
	}
}
