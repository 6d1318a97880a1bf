package shaders

import (
	"encoding/binary"
	"math"
)

// The *_f16 kernels read weights stored as IEEE binary16, two per u32 with
// element 2i in the low half, and unpack them with unpack2x16float (WGSL's
// f16 type is not available on every adapter). PackHalves writes that layout.

// PackHalves rounds v (an even count) to halves and packs them two per
// little-endian u32: the buffer layout of the *_f16 kernels' weights.
func PackHalves(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], ToHalf(x))
	}
	return b
}

// ToHalf rounds x to the nearest IEEE binary16 (ties to even) and returns
// its bits; values beyond the half range become ±Inf.
func ToHalf(x float32) uint16 {
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

// FromHalf widens half bits to float32 exactly.
func FromHalf(h uint16) float32 {
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
