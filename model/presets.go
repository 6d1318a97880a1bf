package model

import (
	"fmt"
	"slices"
	"strings"
)

// NestedWidthsOf are the nested FFN widths hidden/2^(G-1) … hidden for G
// granularities; hidden 0 means 4·dim (what matedge train builds).
func NestedWidthsOf(hidden, dim, granularities int) []int {
	if hidden == 0 {
		hidden = 4 * dim
	}
	widths := make([]int, granularities)
	for g := range widths {
		widths[g] = hidden >> (granularities - 1 - g)
	}
	return widths
}

// MixPreset is a named Mix'n'Match model: Spec as ParseMix reads it.
type MixPreset struct{ Name, Spec string }

// MixnMatchPresets are two Mix'n'Match models the benchmarks time beside
// the uniform granularities: the smallest granularity in the first half of
// the layers and the largest in the rest ("S→XL"), and the middle two
// alternating ("M/L").
func (c Config) MixnMatchPresets() []MixPreset {
	g := c.Granularities()
	half, alternate := make([]string, c.Layers), make([]string, c.Layers)
	for l := range c.Layers {
		half[l] = c.GranularityName(g - 1)
		if l < c.Layers/2 {
			half[l] = c.GranularityName(0)
		}
		alternate[l] = c.GranularityName(min(g-1, g/2-1+l%2))
	}
	return []MixPreset{
		{c.GranularityName(0) + "→" + c.GranularityName(g-1), strings.Join(half, ",")},
		{c.GranularityName(min(g-1, g/2-1)) + "/" + c.GranularityName(min(g-1, g/2)), strings.Join(alternate, ",")},
	}
}

// SpecOfNames writes a mix given as one granularity name per layer (as the
// module reports it) the way ParseMix reads it: one name when every layer
// has it.
func SpecOfNames(names []string) string {
	if len(names) > 0 && len(slices.Compact(slices.Clone(names))) == 1 {
		return names[0]
	}
	return strings.Join(names, ",")
}

// DescribeWidths summarises a routed generation's widths: the mean FFN width
// over tokens and layers as a share of XL's, and each granularity's share.
func (c Config) DescribeWidths(widths [][]int) string {
	if len(widths) == 0 {
		return "routed: no tokens"
	}
	count := make([]int, c.Granularities())
	var width, n float64
	for _, tok := range widths {
		for _, g := range tok {
			count[g]++
			width += float64(c.FFNWidths[g])
			n++
		}
	}
	parts := make([]string, len(count))
	for g, k := range count {
		parts[g] = fmt.Sprintf("%s %.0f%%", c.GranularityName(g), 100*float64(k)/n)
	}
	return fmt.Sprintf("routed: mean FFN width %.0f%% of XL over %d tokens (%s)", 100*width/n/float64(c.Hidden()), len(widths), strings.Join(parts, ", "))
}
