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

// TestSpecResultsSection: the seed's three rows, at the fixed k where the
// shared cache ran fastest natively, with k auto beside each, and the
// module's row when it was measured.
func TestSpecResultsSection(t *testing.T) {
	row := func(where, models, draft string, k int, shared bool, accepted, speedup float64) SpecRow {
		perRound := 1 + accepted
		if accepted < 0 { // not observable in the module
			perRound = -1
		}
		return SpecRow{Where: where, Models: models, Draft: draft, K: k, Shared: shared, AcceptanceRate: accepted, TokensPerRound: perRound, Speedup: speedup}
	}
	r := SpecReport{Verifier: "XL", Model: "m.matw", Command: "matedge speculate …", CostsNative: "draft S step 1 ms",
		Rows: []SpecRow{
			row("native", "MatFormer", "S", 1, true, 0.7, 0.9),
			row("native", "MatFormer", "S", 1, false, 0.6, 0.7),
			row("native", "MatFormer", "S", 2, true, 0.65, 1.2), // the fastest fixed k with the shared cache
			row("native", "MatFormer", "S", 2, false, 0.55, 0.8),
			row("native", "MatFormer", "S", 0, true, -1, 1.01),
			row("native", "MatFormer", "M", 2, true, 0.9, 1.5), // another draft: not in the table
			row("native", "Baseline", "Baseline-g0", 2, false, 0.5, 0.6),
			row("wazero", "MatFormer", "S", 2, true, -1, 0.8),
			{Where: "native", Models: "MatFormer", Draft: "S", K: 2, Shared: true, Temperature: 0.8, Speedup: 9}, // sampled: not in the table
		}}
	got := r.ResultsSection("SPECULATIVE.md")
	for _, want := range []string{
		"speed-up, k = 2 |",
		"| (a) | native | Baseline-S → Baseline-XL | separate | 50.0 % | 1.50 | 0.60× | not measured |",
		"| (b) | native | S → XL | separate | 55.0 % | 1.55 | 0.80× | not measured |",
		"| (c) | native | S → XL | shared | 65.0 % | 1.65 | 1.20× | 1.01× |",
		"| (c) | wazero | S → XL | shared | – | – | 0.80× | not measured |",
		"draft S step 1 ms",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ResultsSection lacks %q:\n%s", want, got)
		}
	}
}
