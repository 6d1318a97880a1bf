package engine

import (
	"encoding/binary"
	"math"

	"github.com/matedge/matedge/model"
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
	out := model.NewWeights(w.Config)
	copy(out.Data, w.Data)
	for _, t := range out.Tensors() {
		if halfTensor(t) {
			for i, x := range t.Data {
				t.Data[i] = fromHalf(toHalf(x))
			}
		}
	}
	return out
}

// halfBytes packs v (an even count) as halves, two per little-endian u32.
func halfBytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], toHalf(x))
	}
	return b
}

// toHalf rounds x to the nearest IEEE binary16 (ties to even) and returns
// its bits; values beyond the half range become ±Inf.
func toHalf(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN stays NaN
		return sign | 0x7e00
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0: // subnormal half, or zero
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint(14 - exp)
		half := uint32(1) << (shift - 1)
		v := mant >> shift
		if rem := mant & (1<<shift - 1); rem > half || rem == half && v&1 == 1 {
			v++
		}
		return sign | uint16(v)
	}
	v := uint32(exp)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || rem == 0x1000 && v&1 == 1 {
		v++ // may carry into the exponent, which is the right rounding
	}
	return sign | uint16(v)
}

// fromHalf widens half bits to float32 exactly.
func fromHalf(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h >> 10 & 0x1f)
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0:
		v := float32(mant) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
