package convert

import (
	"math"
	"slices"

	"github.com/matedge/matedge/model"
)

// Importance scores every FFN neuron of w on calibration text (ids, in
// windows of seqLen tokens, batch windows at a time, at most maxTokens
// tokens; 0 means all): the mean over positions of |silu(gate_j·n)·(up_j·n)|
// times ‖down_j‖, the size of the neuron's contribution to the residual
// stream. The full width (the last granularity) runs. [layers][hidden].
func Importance(w *model.Weights, ids []int, seqLen, batch, maxTokens int) [][]float64 {
	c := w.Config
	if maxTokens > 0 && len(ids) > maxTokens {
		ids = ids[:maxTokens]
	}
	seqLen = min(seqLen, len(ids), c.Context)
	scores := make([][]float64, c.Layers)
	for l := range scores {
		scores[l] = make([]float64, c.Hidden())
	}
	if seqLen <= 0 || batch <= 0 {
		return scores // no calibration text: every neuron scores 0 and Reorder keeps the order
	}
	windows := len(ids) / seqLen
	b := model.NewBatch(c, batch, seqLen)
	mix := c.Uniform(c.Granularities() - 1)
	tokens := make([]int, batch*seqLen)
	positions := 0
	for first := 0; first < windows; first += batch {
		n := min(batch, windows-first)
		for i := range batch {
			src := min(first+i, windows-1) // pad a short last batch with a window already counted, and skip it below
			copy(tokens[i*seqLen:(i+1)*seqLen], ids[src*seqLen:(src+1)*seqLen])
		}
		b.Forward(w, mix, tokens, nil)
		for l := range c.Layers {
			act, width := b.FFNActivations(l)
			for r := range n * seqLen {
				row := act[r*width : (r+1)*width]
				for j, a := range row {
					scores[l][j] += math.Abs(float64(a))
				}
			}
		}
		positions += n * seqLen
	}
	for l, layer := range w.Layers {
		for j := range scores[l] {
			var norm float64
			for _, v := range layer.Down[j*c.Dim : (j+1)*c.Dim] {
				norm += float64(v) * float64(v)
			}
			scores[l][j] = scores[l][j] / float64(positions) * math.Sqrt(norm)
		}
	}
	return scores
}

// Reorder permutes each layer's FFN neurons — gate and up rows with the
// matching down row — so that scores descend (ties keep the lower index
// first). The full-width network computes the same function (up to the order
// of a float sum); each prefix, and so each granularity, now holds the
// highest-scoring neurons. It returns order[l][k], the old index of the
// neuron now at k.
func Reorder(w *model.Weights, scores [][]float64) [][]int {
	c := w.Config
	order := make([][]int, c.Layers)
	for l := range w.Layers {
		idx := make([]int, c.Hidden())
		for j := range idx {
			idx[j] = j
		}
		s := scores[l]
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case s[a] > s[b]:
				return -1
			case s[a] < s[b]:
				return 1
			}
			return 0
		})
		layer := &w.Layers[l]
		for _, m := range []*[]float32{&layer.Gate, &layer.Up, &layer.Down} {
			src := slices.Clone(*m)
			for k, j := range idx {
				copy((*m)[k*c.Dim:(k+1)*c.Dim], src[j*c.Dim:(j+1)*c.Dim])
			}
		}
		order[l] = idx
	}
	return order
}
