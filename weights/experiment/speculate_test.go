package experiment

import (
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/weights"
)

func TestSpecPrompts(t *testing.T) {
	ids := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	got, err := SpecPrompts(ids, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]int{{0, 1}, {3, 4}, {6, 7}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("SpecPrompts = %v; want %v", got, want)
	}
	if _, err := SpecPrompts(ids, 4, 3); err == nil || !strings.Contains(err.Error(), "too few") {
		t.Errorf("SpecPrompts of 4×3 from 10 tokens: err %v; want too few", err)
	}
}

// TestSpecCells: the table's and the Markdown's columns, with dashes where a
// value does not apply.
func TestSpecCells(t *testing.T) {
	yes := true
	alone := SpecRow{Where: "native", Models: "MatFormer", Draft: "none", AcceptanceRate: -1, TokensPerRound: 1, TokensPerSec: 812.4, Speedup: 1, CacheBytes: 3 << 20}
	row := SpecRow{Where: "wazero", Models: "MatFormer", Draft: "S", K: 0, Shared: true, Temperature: 0.8, AcceptanceRate: 0.755, TokensPerRound: -1,
		TokensPerSec: 1000, Speedup: 1.234, SameAsVerifier: &yes, CacheBytes: 512}
	for _, tt := range []struct {
		row  SpecRow
		want string
	}{
		{alone, "native|MatFormer|none|–|–|0|–|1.00|812|1.00×|–|3 MiB"},
		{row, "wazero|MatFormer|S|auto|shared|0.8|75.5%|–|1000|1.23×|yes|512 B"},
	} {
		if got := strings.Join(tt.row.Cells(), "|"); got != tt.want {
			t.Errorf("Cells = %s; want %s", got, tt.want)
		}
	}
	md := SpecReport{Alone: []SpecRow{alone}, Rows: []SpecRow{row}}.Markdown()
	if !strings.Contains(md, "| wazero | MatFormer | S | auto | shared | 0.8 |") {
		t.Errorf("Markdown lacks the module's sampled row:\n%s", md)
	}
}

func TestCheckBaselinePair(t *testing.T) {
	h := &weights.Header{Config: weights.TinyConfig()}
	same := *h
	if err := CheckBaselinePair(h, &same, &same); err != nil {
		t.Errorf("the model as its own baseline pair: %v", err)
	}
	short := *h
	short.Config.Context--
	if err := CheckBaselinePair(h, &same, &short); err == nil || !strings.Contains(err.Error(), "context") {
		t.Errorf("a verifier of a shorter context: err %v", err)
	}
}
