package train

import (
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// MeasureQuality evaluates w running each mix on ids, the tokens of a text of
// textBytes bytes, in windows of seqLen (batch at a time): the quality table a
// trained file records in its header.
func MeasureQuality(w *model.Weights, mixes []model.Mix, ids []int, textBytes, seqLen, batch int) []weights.Quality {
	var q []weights.Quality
	for _, m := range mixes {
		loss, n := Evaluate(w, m, ids, seqLen, batch)
		q = append(q, weights.Quality{Mix: w.Config.MixSpec(m), NonEmbeddingParams: w.Config.NonEmbeddingParams(m),
			LossNatsPerToken: loss, BitsPerByte: BitsPerByte(loss, n, textBytes), Tokens: n})
	}
	return q
}
