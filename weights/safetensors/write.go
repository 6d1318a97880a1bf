package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// Tensor is one tensor to write: float32 values stored as DType (F32, F16 or
// BF16, rounded to nearest even).
type Tensor struct {
	Name  string
	DType DType
	Shape []int // row-major
	Data  []float32
}

// Write stores tensors in file order as given, the header padded with
// spaces so that the data buffer starts at a multiple of 8. It refuses a
// duplicate or empty name, a shape that does not match the data, a dtype it
// cannot convert to, and a finite value that F16 cannot hold.
func Write(out io.Writer, tensors []Tensor, metadata map[string]string) error {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	data := make([][]byte, len(tensors))
	for i, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: write: tensor name %q is reserved", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("safetensors: write: tensor %q twice", t.Name)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: write: tensor %q has negative shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("safetensors: write: tensor %q shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		b, err := Encode(t.DType, t.Data)
		if err != nil {
			return fmt.Errorf("safetensors: write: tensor %q: %w", t.Name, err)
		}
		data[i] = b
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = map[string]any{"dtype": t.DType, "shape": shape, "data_offsets": [2]int64{off, off + int64(len(b))}}
		off += int64(len(b))
	}
	head, err := json.Marshal(header) // map keys sorted: the same tensors give the same bytes
	if err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	if pad := (8 - len(head)%8) % 8; pad > 0 {
		head = append(head, bytes.Repeat([]byte(" "), pad)...)
	}
	var pre [8]byte
	binary.LittleEndian.PutUint64(pre[:], uint64(len(head)))
	if _, err := out.Write(append(pre[:], head...)); err != nil {
		return fmt.Errorf("safetensors: write header: %w", err)
	}
	for i, b := range data {
		if _, err := out.Write(b); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", tensors[i].Name, err)
		}
	}
	return nil
}

// Encode converts float32 values to little-endian elements of dtype d.
func Encode(d DType, x []float32) ([]byte, error) {
	switch d {
	case F32:
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	case F16:
		b := make([]byte, 2*len(x))
		for i, v := range x {
			h := FloatToHalf(v)
			if h&0x7fff == 0x7c00 && !math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("value %g at element %d is too large for F16 (at most 65504)", v, i)
			}
			binary.LittleEndian.PutUint16(b[2*i:], h)
		}
		return b, nil
	case BF16:
		b := make([]byte, 2*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint16(b[2*i:], FloatToBFloat(v))
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w %q: F32, F16 and BF16 are written", ErrDType, d)
}

// FloatToHalf rounds f to the nearest IEEE binary16 (ties to even); values
// beyond its range become ±Inf, NaN stays NaN.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // the binary16 biased exponent
	if e <= 0 {         // subnormal in binary16, or zero
		if e < -10 {
			return sign // below half the smallest subnormal: rounds to zero
		}
		m := mant | 0x800000 // the implicit one
		shift := uint(14 - e)
		h := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || (rem == half && h&1 == 1) {
			h++ // may carry into the smallest normal, which is right
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry out of the mantissa raises the exponent, as it should
	}
	if h >= 0x7c00 {
		return sign | 0x7c00
	}
	return sign | uint16(h)
}

// HalfToFloat converts IEEE binary16 to float32 exactly.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		v := float32(mant) * (1.0 / (1 << 24)) // subnormal (or zero): mant·2^-24
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// FloatToBFloat rounds f to bfloat16 (the top 16 bits of a float32, ties to
// even); NaN stays a quiet NaN.
func FloatToBFloat(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
