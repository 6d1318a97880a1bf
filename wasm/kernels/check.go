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

// Check runs the products of decoding, Softmax, SwiGLU and the glue of a
// decode step and of ForwardMany (RMSNorm and Rope over one row and over
// many, Add, Scale, Argmax, Attention) of set and of the reference,
// model.GoKernels, on seeded random inputs of every shape in
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
		// RMSNorm and Rope as ForwardMany calls them, over rows rows of cols:
		// norms (into another slice and in place) and rotary embedding
		// (heads of 2·tokens when that divides cols, else one head of the
		// even part), each row with its own angles. checkGlue has the
		// single row of a decode step, and Add.
		x, gain := random(rows*cols), random(cols)
		for i := range x {
			x[i] *= 3
		}
		got, want = random(rows*cols), random(rows*cols)
		set.RMSNorm(got, x, gain, 1e-5)
		model.GoKernels.RMSNorm(want, x, gain, 1e-5)
		if err := same("RMSNorm rows", sh, cols, got, want); err != nil {
			return err
		}
		got, want = append([]float32(nil), x...), append([]float32(nil), x...)
		set.RMSNorm(got, got, gain, 1e-5)
		model.GoKernels.RMSNorm(want, want, gain, 1e-5)
		if err := same("RMSNorm rows in place", sh, cols, got, want); err != nil {
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
			set.Rope(got, cos, sin, headDim)
			model.GoKernels.Rope(want, cos, sin, headDim)
			if err := same("Rope rows", sh, headDim, got, want); err != nil {
				return err
			}
		}
		if err := checkGlue(set, rng, random, sh); err != nil {
			return err
		}
	}
	return nil
}

// checkGlue checks RMSNorm (into another slice and in place), Add, Scale,
// Rope (heads of 2·cols values, so half a head is odd or even), Argmax
// (values with many ties, ±0, −∞ and NaNs) and Attention on one shape.
func checkGlue(set model.Kernels, rng *model.RNG, random func(int) []float32, sh [3]int) error {
	rows, cols := sh[1], sh[2]
	n := rows * cols
	x, gain := random(cols), random(cols)
	for i := range x {
		x[i] *= float32(1 + 40*rng.Float32())
	}
	got, want := random(cols), random(cols)
	set.RMSNorm(got, x, gain, 1e-5)
	model.GoKernels.RMSNorm(want, x, gain, 1e-5)
	if err := same("RMSNorm", sh, cols, got, want); err != nil {
		return err
	}
	got, want = append([]float32(nil), x...), append([]float32(nil), x...)
	set.RMSNorm(got, got, gain, 1e-6)
	model.GoKernels.RMSNorm(want, want, gain, 1e-6)
	if err := same("RMSNorm in place", sh, cols, got, want); err != nil {
		return err
	}

	v, y := random(n), random(n)
	got, want = append([]float32(nil), v...), append([]float32(nil), v...)
	set.Add(got, y)
	model.GoKernels.Add(want, y)
	if err := same("Add", sh, cols, got, want); err != nil {
		return err
	}
	s := 0.1 + 3*rng.Float32()
	got, want = append([]float32(nil), v...), append([]float32(nil), v...)
	set.Scale(got, s)
	model.GoKernels.Scale(want, s)
	if err := same("Scale", sh, cols, got, want); err != nil {
		return err
	}

	headDim := 2 * cols
	v, cos, sin := random(rows*headDim), random(cols), random(cols)
	got, want = append([]float32(nil), v...), append([]float32(nil), v...)
	set.Rope(got, cos, sin, headDim)
	model.GoKernels.Rope(want, cos, sin, headDim)
	if err := same("Rope", sh, headDim, got, want); err != nil {
		return err
	}

	// Values on a coarse grid tie often; the extremes and NaNs go at random
	// places, and one case each starts with a NaN and holds only −∞.
	v = random(n)
	for i := range v {
		v[i] = float32(int(v[i]*4)) / 4
		switch r := rng.Uint32() % 16; {
		case r == 0:
			v[i] = float32(math.NaN())
		case r == 1:
			v[i] = float32(math.Inf(-1))
		case r == 2:
			v[i] = float32(math.Copysign(0, -1))
		}
	}
	cases := [][]float32{v, append([]float32{float32(math.NaN())}, v...), append([]float32{float32(math.Copysign(0, -1))}, v[min(1, n):]...)}
	inf := make([]float32, n)
	for i := range inf {
		inf[i] = float32(math.Inf(-1))
	}
	cases = append(cases, inf)
	for k, c := range cases {
		if got, want := set.Argmax(c), model.GoKernels.Argmax(c); got != want {
			return fmt.Errorf("Argmax %d×%d×%d (case %d of %d values): %d; the reference gives %d", sh[0], sh[1], sh[2], k, len(c), got, want)
		}
	}

	// Attention: tokens heads of cols values over rows positions, the cache
	// rows 3 wider than the heads, the scores' rows 5 wider than rows.
	heads, hd, positions := sh[0], cols, rows
	stride, attStride := heads*hd+3, rows+5
	q := random(heads * hd)
	keys, values := random((positions-1)*stride+heads*hd), random((positions-1)*stride+heads*hd)
	for i := range keys {
		keys[i] *= 3
	}
	gotAtt, wantAtt := random(heads*attStride), random(heads*attStride)
	got, want = random(heads*hd), random(heads*hd)
	set.Attention(got, gotAtt, q, keys, values, heads, positions, attStride, stride)
	model.GoKernels.Attention(want, wantAtt, q, keys, values, heads, positions, attStride, stride)
	if err := same("Attention", sh, stride, got, want); err != nil {
		return err
	}
	for h := range heads {
		if err := same("Attention's scores", sh, stride, gotAtt[h*attStride:h*attStride+positions], wantAtt[h*attStride:h*attStride+positions]); err != nil {
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
