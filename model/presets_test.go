package model

import (
	"slices"
	"testing"
)

func TestMixnMatchPresets(t *testing.T) {
	c := Config{Layers: 4, FFNWidths: []int{8, 16, 32, 64}}
	want := []MixPreset{{"S→XL", "S,S,XL,XL"}, {"M/L", "M,L,M,L"}}
	if got := c.MixnMatchPresets(); !slices.Equal(got, want) {
		t.Errorf("MixnMatchPresets = %v; want %v", got, want)
	}
	for _, p := range c.MixnMatchPresets() {
		if _, err := c.ParseMix(p.Spec); err != nil {
			t.Errorf("preset %s: %v", p.Name, err)
		}
	}
}

func TestNestedWidthsOf(t *testing.T) {
	if got := NestedWidthsOf(0, 16, 3); !slices.Equal(got, []int{16, 32, 64}) {
		t.Errorf("NestedWidthsOf(0, 16, 3) = %v; want [16 32 64]", got)
	}
	if got := NestedWidthsOf(96, 16, 1); !slices.Equal(got, []int{96}) {
		t.Errorf("NestedWidthsOf(96, 16, 1) = %v; want [96]", got)
	}
}

func TestSpecOfNames(t *testing.T) {
	for _, tt := range []struct {
		names []string
		want  string
	}{{[]string{"S", "S"}, "S"}, {[]string{"S", "XL"}, "S,XL"}, {nil, ""}} {
		if got := SpecOfNames(tt.names); got != tt.want {
			t.Errorf("SpecOfNames(%q) = %q; want %q", tt.names, got, tt.want)
		}
	}
}

func TestDescribeWidths(t *testing.T) {
	c := Config{Layers: 2, FFNWidths: []int{8, 16, 32, 64}}
	if got, want := c.DescribeWidths([][]int{{0, 3}, {3, 3}}), "routed: mean FFN width 78% of XL over 2 tokens (S 25%, M 0%, L 0%, XL 75%)"; got != want {
		t.Errorf("DescribeWidths = %q; want %q", got, want)
	}
	if got := c.DescribeWidths(nil); got != "routed: no tokens" {
		t.Errorf("DescribeWidths(nil) = %q", got)
	}
}
