package kernels

import (
	"fmt"
	"math"

	"github.com/matedge/matedge/model"
)

// Shapes are the (tokens, rows, cols) the kernels are checked on: the default
// model's, and awkward ones that are not multiples of the vector width, the
// 4-row, 32-column or 16-output blocks, or the token pairs and triples.
var Shapes = [][3]int{
	{1, 1, 1}, {1, 3, 5}, {2, 8, 16}, {3, 7, 17}, {1, 9, 31}, {5, 17, 33}, {2, 16, 4},
	{4, 128, 128}, {7, 96, 128}, {1, 2048, 128}, {3, 15, 63}, {6, 33, 9}, {1, 130, 257},
	{2, 768, 128}, {8, 40, 160}, {9, 12, 47}, {3, 64, 100}, {16, 5, 128},
}

// Check runs the products of decoding, Softmax, SwiGLU and the steps of
// ForwardMany (RMSNormRows, RopeRows, AddRows) of set and of the reference, model.GoKernels, on seeded random inputs of every shape in
// Shapes (the products also with a row stride wider than the row, as
// attention uses), and returns an error naming the first output that differs
// in any bit.
func Check(set model.Kernels, seed uint64) error {
	rng := model.NewRNG(seed)
	random := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = 2*rng.Float32() - 1
		}
		return s
	}
	for _, sh := range Shapes {
		tokens, rows, cols := sh[0], sh[1], sh[2]
		for _, pad := range []int{0, 3} {
			stride := cols + pad
			w, x := random(rows*stride), random(cols)
			got, want := random(rows), make([]float32, rows)
			set.MatVec(got, w, x, stride)
			model.GoKernels.MatVec(want, w, x, stride)
			if err := same("MatVec", sh, stride, got, want); err != nil {
				return err
			}
			// Wᵀ·y with W [rows][stride]: out [cols], y [rows].
			y := random(rows)
			got, want = random(cols), make([]float32, cols)
			set.MatTVec(got, w, y, stride)
			model.GoKernels.MatTVec(want, w, y, stride)
			if err := same("MatTVec", sh, stride, got, want); err != nil {
				return err
			}
		}
		w, x := random(rows*cols), random(tokens*cols)
		got, want := random(tokens*rows), make([]float32, tokens*rows)
		set.MatVecBatch(got, w, x, tokens)
		model.GoKernels.MatVecBatch(want, w, x, tokens)
		if err := same("MatVecBatch", sh, cols, got, want); err != nil {
			return err
		}
		y := random(tokens * rows)
		got, want = random(tokens*cols), make([]float32, tokens*cols)
		set.MatTVecBatch(got, w, y, tokens)
		model.GoKernels.MatTVecBatch(want, w, y, tokens)
		if err := same("MatTVecBatch", sh, cols, got, want); err != nil {
			return err
		}
		// Softmax and SwiGLU over rows·cols values, with large, tiny and
		// infinite ones among them (e^x clamps and underflows).
		v := random(rows * cols)
		for i := range v {
			v[i] *= 12
		}
		v[len(v)/2] = 95
		if len(v) > 2 {
			v[1], v[len(v)-1] = -200, float32(math.Inf(-1))
		}
		got, want = append([]float32(nil), v...), append([]float32(nil), v...)
		set.Softmax(got)
		model.GoKernels.Softmax(want)
		if err := same("Softmax", sh, cols, got, want); err != nil {
			return err
		}
		up := random(rows * cols)
		v[len(v)-1] = -95
		got, want = random(rows*cols), random(rows*cols)
		set.SwiGLU(got, v, up)
		model.GoKernels.SwiGLU(want, v, up)
		if err := same("SwiGLU", sh, cols, got, want); err != nil {
			return err
		}
		// The steps of ForwardMany on rows rows of cols: norms (into
		// another slice and in place), rotary embedding (heads of 2·tokens
		// when that divides cols, else one head of the even part) and the
		// residual add.
		x, gain := random(rows*cols), random(cols)
		for i := range x {
			x[i] *= 3
		}
		got, want = random(rows*cols), random(rows*cols)
		set.RMSNormRows(got, x, gain, 1e-5)
		model.GoKernels.RMSNormRows(want, x, gain, 1e-5)
		if err := same("RMSNormRows", sh, cols, got, want); err != nil {
			return err
		}
		got, want = append([]float32(nil), x...), append([]float32(nil), x...)
		set.RMSNormRows(got, got, gain, 1e-5)
		model.GoKernels.RMSNormRows(want, want, gain, 1e-5)
		if err := same("RMSNormRows in place", sh, cols, got, want); err != nil {
			return err
		}
		headDim, d := 2*tokens, cols
		if d%headDim != 0 {
			headDim, d = cols&^1, cols&^1
		}
		if headDim > 0 {
			xr := random(rows * d)
			cos, sin := random(rows*headDim/2), random(rows*headDim/2)
			got, want = append([]float32(nil), xr...), append([]float32(nil), xr...)
			set.RopeRows(got, cos, sin, headDim)
			model.GoKernels.RopeRows(want, cos, sin, headDim)
			if err := same("RopeRows", sh, headDim, got, want); err != nil {
				return err
			}
		}
		got, want = append([]float32(nil), x...), append([]float32(nil), x...)
		set.AddRows(got, up)
		model.GoKernels.AddRows(want, up)
		if err := same("AddRows", sh, cols, got, want); err != nil {
			return err
		}
	}
	return nil
}

func same(what string, shape [3]int, stride int, got, want []float32) error {
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return fmt.Errorf("%s %d×%d×%d (stride %d): element %d = %v; the reference gives %v", what, shape[0], shape[1], shape[2], stride, i, got[i], want[i])
		}
	}
	return nil
}
