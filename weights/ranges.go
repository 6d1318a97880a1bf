package weights

import "github.com/matedge/matedge/model"

// Range is a run of bytes of the file, from the start of the file.
type Range struct {
	Offset int64 `msgpack:"offset" json:"offset"`
	Length int64 `msgpack:"length" json:"length"`
}

// End is one past the last byte.
func (r Range) End() int64 { return r.Offset + r.Length }

// Ranges returns the byte ranges of the file that a model running mix needs,
// sorted and with adjacent ranges merged. The header itself (the first
// DataStart bytes) is not included. For a uniform mix it is one range.
func (h *Header) Ranges(mix model.Mix) []Range {
	var out []Range
	for _, e := range h.Entries {
		if e.NeededBy(mix) {
			out = appendRange(out, Range{h.DataStart + e.Offset, e.Length})
		}
	}
	return out
}

// Bytes is the total length of ranges.
func Bytes(ranges []Range) int64 {
	var n int64
	for _, r := range ranges {
		n += r.Length
	}
	return n
}

func appendRange(rs []Range, r Range) []Range {
	if n := len(rs); n > 0 && rs[n-1].End() == r.Offset {
		rs[n-1].Length += r.Length
		return rs
	}
	return append(rs, r)
}
