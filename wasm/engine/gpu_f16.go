package engine

import (
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
)

// The f16 GPU backend stores every matrix but the embedding as IEEE halves,
// two per u32 (column 2i in the low half), which the *_f16 kernels unpack
// with unpack2x16float: half the bytes to upload and to stream per token.
// Norm gains and the embedding stay f32. Arithmetic stays f32, so the
// backend computes exactly what the f32 network computes on weights rounded
// to half — RoundHalf makes those weights for a CPU reference.

// RoundHalf returns a copy of w whose tensors the f16 backend stores as
// halves are rounded to half precision (to nearest, ties to even).
func RoundHalf(w *model.Weights) *model.Weights {
	out := model.NewNestedWeights(w.Config, w.NestedRows)
	copy(out.Data, w.Data)
	for _, t := range out.Tensors() {
		if halfTensor(t) {
			for i, x := range t.Data {
				t.Data[i] = shaders.FromHalf(shaders.ToHalf(x))
			}
		}
	}
	return out
}
