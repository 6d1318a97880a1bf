package weights

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/matedge/matedge/model"
)

// Assembler builds a model.Weights from pieces of a weights file that arrive in
// any order and any size — HTTP Range responses, a stream, a cache. Each entry
// is checked against its checksum once all its bytes are there, then decoded
// into the weights; a failed entry is dropped so it can be fetched again.
type Assembler struct {
	Header  *Header
	Weights *model.Weights // rows appear as their entries complete
	entries []pending      // parallel to Header.Entries
}

type pending struct {
	buf   []byte     // the entry's bytes while it is incomplete
	have  [][2]int64 // received byte intervals of buf, sorted, disjoint
	ready bool       // verified and decoded into Weights
}

// NewAssembler prepares zeroed weights for the model h describes.
func NewAssembler(h *Header) *Assembler {
	return &Assembler{Header: h, Weights: model.NewWeights(h.Config), entries: make([]pending, len(h.Entries))}
}

// Feed delivers bytes that start at offset in the file. Bytes of the header
// or of entries already complete are ignored. It returns an error wrapping
// ErrChecksum, naming the tensor, when a completed entry does not match.
func (a *Assembler) Feed(offset int64, data []byte) error {
	var errs []error
	for i, e := range a.Header.Entries {
		p := &a.entries[i]
		start := a.Header.DataStart + e.Offset
		lo, hi := max(offset, start), min(offset+int64(len(data)), start+e.Length)
		if p.ready || lo >= hi {
			continue
		}
		if p.buf == nil {
			p.buf = make([]byte, e.Length)
		}
		copy(p.buf[lo-start:hi-start], data[lo-offset:hi-offset])
		p.have = addInterval(p.have, [2]int64{lo - start, hi - start})
		if len(p.have) != 1 || p.have[0] != [2]int64{0, e.Length} {
			continue
		}
		if got := Checksum(p.buf); got != e.CRC32C {
			*p = pending{}
			errs = append(errs, fmt.Errorf("weights: tensor %q rows [%d, %d): %w (crc32c %08x, header says %08x)",
				e.Tensor, e.RowStart, e.RowEnd, ErrChecksum, got, e.CRC32C))
			continue
		}
		t, _ := a.Weights.Tensor(e.Tensor)
		decodeF32(t.Data[e.RowStart*e.rowSize():e.RowEnd*e.rowSize()], p.buf)
		*p = pending{ready: true}
	}
	return errors.Join(errs...)
}

// Missing returns the byte ranges a model running mix still needs.
func (a *Assembler) Missing(mix model.Mix) []Range {
	var out []Range
	for i, e := range a.Header.Entries {
		if e.NeededBy(mix) && !a.entries[i].ready {
			out = appendRange(out, Range{a.Header.DataStart + e.Offset, e.Length})
		}
	}
	return out
}

func addInterval(have [][2]int64, iv [2]int64) [][2]int64 {
	have = append(have, iv)
	slices.SortFunc(have, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	out := have[:1]
	for _, x := range have[1:] {
		last := &out[len(out)-1]
		if x[0] <= last[1] {
			last[1] = max(last[1], x[1])
		} else {
			out = append(out, x)
		}
	}
	return out
}

// Load reads a whole weights file of the given size: header, every entry,
// every checksum.
func Load(r io.ReaderAt, size int64) (*model.Weights, *Header, error) {
	h, err := ReadHeader(r, size)
	if err != nil {
		return nil, nil, err
	}
	a := NewAssembler(h)
	data := make([]byte, h.DataSize)
	if _, err := r.ReadAt(data, h.DataStart); err != nil {
		return nil, nil, fmt.Errorf("weights: %w: reading data: %v", ErrTruncated, err)
	}
	if err := a.Feed(h.DataStart, data); err != nil {
		return nil, nil, err
	}
	return a.Weights, h, nil
}
