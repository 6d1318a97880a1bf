package model

import (
	"math"
	"sort"
	"testing"
)

// sampleBySort is Sample as it was written first, with a stable comparison
// sort: the definition the radix ranking must reproduce token for token.
func sampleBySort(s *Sampler, logits []float32) int {
	if s.Temperature <= 0 {
		return Argmax(logits)
	}
	for i := range logits {
		logits[i] /= s.Temperature
	}
	Softmax(logits)
	ids := make([]int, len(logits))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return logits[ids[a]] > logits[ids[b]] })
	if s.MinP > 0 {
		floor := s.MinP * logits[ids[0]]
		for n, id := range ids {
			if logits[id] < floor {
				ids = ids[:n]
				break
			}
		}
	}
	if s.TopK > 0 && s.TopK < len(ids) {
		ids = ids[:s.TopK]
	}
	var total float32
	for n, id := range ids {
		total += logits[id]
		if s.TopP > 0 && s.TopP < 1 && total >= s.TopP {
			ids = ids[:n+1]
			break
		}
	}
	u := s.RNG.Float32() * total
	for _, id := range ids {
		u -= logits[id]
		if u < 0 {
			return id
		}
	}
	return ids[len(ids)-1]
}

// TestSampleMatchesSortedDefinition draws tokens with Sample and with the
// comparison-sort definition from the same seeds, over vocabularies with many
// exact ties (logits rounded to a coarse grid), for every filter.
func TestSampleMatchesSortedDefinition(t *testing.T) {
	rng := NewRNG(7)
	shapes := []Sampler{
		{Temperature: 0.8},
		{Temperature: 1.3, TopK: 40},
		{Temperature: 0.7, TopP: 0.9},
		{Temperature: 1, MinP: 0.05},
		{Temperature: 0.5, TopK: 7, TopP: 0.6, MinP: 0.01},
	}
	for _, n := range []int{1, 2, 3, 255, 256, 257, 2048} {
		for _, grid := range []float32{0, 0.25, 2} {
			for si, shape := range shapes {
				for draw := range 20 {
					logits := make([]float32, n)
					for i := range logits {
						v := (rng.Float32() - 0.5) * 12
						if grid > 0 {
							v = float32(math.Round(float64(v/grid))) * grid
						}
						logits[i] = v
					}
					seed := uint64(draw*100 + si)
					a, b := shape, shape
					a.RNG, b.RNG = NewRNG(seed), NewRNG(seed)
					want := sampleBySort(&b, append([]float32(nil), logits...))
					// The same sampler twice: the second call reuses the scratch.
					got := a.Sample(append([]float32(nil), logits...))
					if got != want {
						t.Fatalf("n %d grid %v sampler %d draw %d: Sample %d, sorted definition %d", n, grid, si, draw, got, want)
					}
					want = sampleBySort(&b, append([]float32(nil), logits...))
					if got = a.Sample(append([]float32(nil), logits...)); got != want {
						t.Fatalf("n %d grid %v sampler %d draw %d, second call: Sample %d, sorted definition %d", n, grid, si, draw, got, want)
					}
				}
			}
		}
	}
}

func TestRankOrder(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	p := []float32{0.5, 0, 2, negZero, -1, 2, float32(math.Inf(1)), -3, 0.5}
	var r rankOrder
	got := r.rank(p)
	want := []int{6, 2, 5, 0, 8, 1, 3, 4, 7} // descending, ties (and ±0) by id
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("rank = %v, want %v", got, want)
		}
	}
}

// BenchmarkSample ranks and samples a 2,048-token vocabulary, the default
// model's, at a temperature.
func BenchmarkSample(b *testing.B) {
	rng := NewRNG(1)
	logits := make([]float32, 2048)
	for i := range logits {
		logits[i] = (rng.Float32() - 0.5) * 12
	}
	s := Sampler{Temperature: 0.8, RNG: NewRNG(2)}
	work := make([]float32, len(logits))
	for b.Loop() {
		copy(work, logits)
		s.Sample(work)
	}
}
