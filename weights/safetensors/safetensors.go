// Package safetensors reads and writes the safetensors format, written from
// its specification rather than from an implementation:
//
//	offset  size  field
//	0       8     N, u64 little-endian: bytes of the JSON header
//	8       N     JSON object, UTF-8, may be padded with trailing spaces:
//	                "NAME": {"dtype": "F32", "shape": [d0, d1, …], "data_offsets": [begin, end]}
//	                "__metadata__": {"key": "value", …}   (optional, strings only)
//	8+N     …     the data buffer; begin and end are relative to its start
//
// Tensors are row-major and little-endian. The reader checks every bound
// before it trusts it: the header length against MaxHeaderLen and the file,
// every field's type, that each tensor's byte length is its element count
// times its dtype's size (without overflow), and that the tensors tile the
// data buffer exactly — no gap, no overlap, nothing past the end — as the
// reference implementation requires.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderLen bounds the JSON header (the reference implementation's limit).
const MaxHeaderLen = 100 << 20

// MaxRank bounds a tensor's number of dimensions.
const MaxRank = 16

// DType names an element type as the format spells it.
type DType string

// The element types this package converts to and from float32. Others are
// recognised (their size is known, so a file holding them still validates)
// but Float32 refuses them.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
)

var dtypeSizes = map[DType]int64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, F16: 2, BF16: 2,
	"I32": 4, "U32": 4, F32: 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// Size is the bytes of one element, 0 for an unknown dtype.
func (d DType) Size() int64 { return dtypeSizes[d] }

// Errors callers can act on; each is wrapped with the detail.
var (
	ErrTruncated = errors.New("safetensors: file is truncated")
	ErrHeader    = errors.New("safetensors: invalid header")
	ErrDType     = errors.New("safetensors: unsupported dtype")
)

// Info describes one stored tensor.
type Info struct {
	Name       string
	DType      DType
	Shape      []int64
	Begin, End int64 // byte offsets in the data buffer
}

// Elements is the number of elements (the product of Shape; 1 for a scalar).
func (t Info) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d // checked not to overflow when the header was parsed
	}
	return n
}

// File is an opened safetensors file.
type File struct {
	Tensors   []Info            // sorted by Begin
	Metadata  map[string]string // the "__metadata__" object, nil if absent
	DataStart int64             // 8 + header length
	r         io.ReaderAt
	byName    map[string]int
}

// Open parses and validates the header of a safetensors file of size bytes.
func Open(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("%w: %d bytes, the header length alone is 8", ErrTruncated, size)
	}
	var pre [8]byte
	if _, err := r.ReadAt(pre[:], 0); err != nil {
		return nil, fmt.Errorf("%w: reading the header length: %v", ErrTruncated, err)
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > MaxHeaderLen {
		return nil, fmt.Errorf("%w: header length %d exceeds the limit %d", ErrHeader, n, MaxHeaderLen)
	}
	if int64(n) > size-8 {
		return nil, fmt.Errorf("%w: header length %d, but only %d bytes follow", ErrTruncated, n, size-8)
	}
	head := make([]byte, n)
	if _, err := r.ReadAt(head, 8); err != nil {
		return nil, fmt.Errorf("%w: reading the header: %v", ErrTruncated, err)
	}
	f, err := parseHeader(head, size-8-int64(n))
	if err != nil {
		return nil, err
	}
	f.DataStart, f.r = 8+int64(n), r
	return f, nil
}

// rawInfo is one tensor's JSON object; pointers tell a missing field from a zero.
type rawInfo struct {
	DType   *string        `json:"dtype"`
	Shape   *[]json.Number `json:"shape"`
	Offsets *[]json.Number `json:"data_offsets"`
}

// parseHeader validates the JSON header against a data buffer of dataLen bytes.
func parseHeader(head []byte, dataLen int64) (*File, error) {
	if !utf8.Valid(head) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrHeader)
	}
	if len(head) == 0 || head[0] != '{' {
		return nil, fmt.Errorf("%w: does not start with '{'", ErrHeader)
	}
	fields, err := objectFields(head)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHeader, err)
	}
	f := &File{byName: map[string]int{}}
	for _, fd := range fields {
		if fd.name == "__metadata__" {
			if err := strictDecode(fd.value, &f.Metadata); err != nil || f.Metadata == nil {
				return nil, fmt.Errorf("%w: __metadata__ must be an object of strings", ErrHeader)
			}
			continue
		}
		t, err := parseInfo(fd.name, fd.value)
		if err != nil {
			return nil, err
		}
		f.byName[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	slices.SortStableFunc(f.Tensors, func(a, b Info) int {
		if a.Begin != b.Begin {
			return cmpInt(a.Begin, b.Begin)
		}
		return cmpInt(a.End, b.End)
	})
	for i, t := range f.Tensors {
		f.byName[t.Name] = i
	}
	var end int64
	for _, t := range f.Tensors {
		switch {
		case t.Begin > end:
			return nil, fmt.Errorf("%w: tensor %q starts at %d, leaving a gap after byte %d", ErrHeader, t.Name, t.Begin, end)
		case t.Begin < end:
			return nil, fmt.Errorf("%w: tensor %q at [%d, %d) overlaps the tensor before it (ends at %d)", ErrHeader, t.Name, t.Begin, t.End, end)
		case t.End > dataLen:
			return nil, fmt.Errorf("%w: tensor %q ends at byte %d of a %d-byte data buffer", ErrTruncated, t.Name, t.End, dataLen)
		}
		end = t.End
	}
	if end != dataLen {
		return nil, fmt.Errorf("%w: the tensors cover %d bytes, the data buffer has %d", ErrHeader, end, dataLen)
	}
	return f, nil
}

func parseInfo(name string, value json.RawMessage) (Info, error) {
	if name == "" {
		return Info{}, fmt.Errorf("%w: a tensor has an empty name", ErrHeader)
	}
	var raw rawInfo
	if err := strictDecode(value, &raw); err != nil {
		return Info{}, fmt.Errorf("%w: tensor %q: %v", ErrHeader, name, err)
	}
	if raw.DType == nil || raw.Shape == nil || raw.Offsets == nil {
		return Info{}, fmt.Errorf("%w: tensor %q needs dtype, shape and data_offsets", ErrHeader, name)
	}
	t := Info{Name: name, DType: DType(*raw.DType)}
	size := t.DType.Size()
	if size == 0 {
		return Info{}, fmt.Errorf("%w: tensor %q: unknown dtype %q", ErrHeader, name, *raw.DType)
	}
	if len(*raw.Shape) > MaxRank {
		return Info{}, fmt.Errorf("%w: tensor %q has %d dimensions, at most %d", ErrHeader, name, len(*raw.Shape), MaxRank)
	}
	elements := uint64(1)
	for _, d := range *raw.Shape {
		v, err := nonNegative(d)
		if err != nil {
			return Info{}, fmt.Errorf("%w: tensor %q shape: %v", ErrHeader, name, err)
		}
		hi, lo := bits.Mul64(elements, uint64(v))
		if hi != 0 || lo > math.MaxInt64 {
			return Info{}, fmt.Errorf("%w: tensor %q shape %v has more than 2^63 elements", ErrHeader, name, *raw.Shape)
		}
		elements = lo
		t.Shape = append(t.Shape, v)
	}
	if len(*raw.Offsets) != 2 {
		return Info{}, fmt.Errorf("%w: tensor %q: data_offsets has %d numbers, want 2", ErrHeader, name, len(*raw.Offsets))
	}
	var err error
	if t.Begin, err = nonNegative((*raw.Offsets)[0]); err != nil {
		return Info{}, fmt.Errorf("%w: tensor %q data_offsets: %v", ErrHeader, name, err)
	}
	if t.End, err = nonNegative((*raw.Offsets)[1]); err != nil {
		return Info{}, fmt.Errorf("%w: tensor %q data_offsets: %v", ErrHeader, name, err)
	}
	if t.End < t.Begin {
		return Info{}, fmt.Errorf("%w: tensor %q data_offsets [%d, %d] end before they begin", ErrHeader, name, t.Begin, t.End)
	}
	hi, lo := bits.Mul64(elements, uint64(size))
	if hi != 0 || lo != uint64(t.End-t.Begin) {
		return Info{}, fmt.Errorf("%w: tensor %q: %d bytes at data_offsets [%d, %d], but shape %v of %s needs %d×%d", ErrHeader, name, t.End-t.Begin, t.Begin, t.End, t.Shape, t.DType, elements, size)
	}
	return t, nil
}

// nonNegative parses a JSON number that must be an integer in [0, 2^63).
func nonNegative(n json.Number) (int64, error) {
	v, err := strconv.ParseUint(string(n), 10, 63)
	if err != nil {
		return 0, fmt.Errorf("%s is not an integer in [0, 2^63)", n)
	}
	return int64(v), nil
}

type field struct {
	name  string
	value json.RawMessage
}

// objectFields splits a JSON object into its fields in order, refusing
// duplicate names (encoding/json would keep the last silently) and anything
// after the object but spaces.
func objectFields(b []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var out []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object key is not a string")
		}
		if seen[name] {
			return nil, fmt.Errorf("%q appears twice", name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%q: %v", name, err)
		}
		out = append(out, field{name, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	rest := b[dec.InputOffset():]
	if len(bytes.Trim(rest, " ")) != 0 {
		return nil, fmt.Errorf("%d bytes after the JSON object are not spaces", len(rest))
	}
	return out, nil
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// duplicate keys inside objects.
func strictDecode(b []byte, v any) error {
	if bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) {
		if _, err := objectFields(b); err != nil { // duplicates
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Info returns the tensor named name.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Info{}, false
	}
	return f.Tensors[i], true
}

// Bytes reads a tensor's raw bytes.
func (f *File) Bytes(t Info) ([]byte, error) {
	b := make([]byte, t.End-t.Begin)
	if _, err := f.r.ReadAt(b, f.DataStart+t.Begin); err != nil && !(err == io.EOF && len(b) == 0) {
		return nil, fmt.Errorf("%w: tensor %q: %v", ErrTruncated, t.Name, err)
	}
	return b, nil
}

// Float32 reads a tensor of dtype F32, F16 or BF16 as float32 values.
func (f *File) Float32(name string) ([]float32, error) {
	t, ok := f.Info(name)
	if !ok {
		return nil, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if t.DType != F32 && t.DType != F16 && t.DType != BF16 {
		return nil, fmt.Errorf("%w: tensor %q is %s; F32, F16 and BF16 are read", ErrDType, name, t.DType)
	}
	b, err := f.Bytes(t)
	if err != nil {
		return nil, err
	}
	return Decode(t.DType, b), nil
}

// Decode converts little-endian elements of dtype F32, F16 or BF16 to float32
// (exactly: every F16 and BF16 value is a float32). It panics on another dtype.
func Decode(d DType, b []byte) []float32 {
	n := int64(len(b)) / d.Size()
	out := make([]float32, n)
	for i := range out {
		switch d {
		case F32:
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		case F16:
			out[i] = HalfToFloat(binary.LittleEndian.Uint16(b[2*i:]))
		case BF16:
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		default:
			panic("safetensors: Decode: dtype " + string(d))
		}
	}
	return out
}
