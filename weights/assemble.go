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
//
// Memory follows the Mix: the weights hold each layer's FFN rows only up to
// the widest granularity reserved (Reserve) or fed for it, so a device that
// runs S never allocates XL's rows.
type Assembler struct {
	Header  *Header
	Weights *model.Weights // rows appear as their entries complete; replaced when it grows
	entries []pending      // parallel to Header.Entries
}

type pending struct {
	buf   []byte     // the entry's bytes while it is incomplete
	have  [][2]int64 // received byte intervals of buf, sorted, disjoint
	ready bool       // verified and decoded into Weights
}

// NewAssembler prepares zeroed weights for the smallest submodel of the
// model h describes.
func NewAssembler(h *Header) *Assembler {
	rows := make([]int, h.Config.Layers)
	for l := range rows {
		rows[l] = h.Config.FFNWidths[0]
	}
	return &Assembler{Header: h, Weights: model.NewNestedWeights(h.Config, rows), entries: make([]pending, len(h.Entries))}
}

// Reserve makes room for every FFN row mix uses, in one allocation. Feed
// grows the weights by itself when an entry needs more rows; reserving first
// avoids growing them layer by layer.
func (a *Assembler) Reserve(mix model.Mix) {
	rows := append([]int(nil), a.Weights.NestedRows...)
	grow := false
	for l, g := range mix {
		if w := a.Header.Config.FFNWidths[g]; w > rows[l] {
			rows[l], grow = w, true
		}
	}
	if !grow {
		return
	}
	bigger := model.NewNestedWeights(a.Header.Config, rows)
	old := a.Weights.Tensors()
	for i, t := range bigger.Tensors() {
		copy(t.Data, old[i].Data) // nested tensors: the rows already there are a prefix
	}
	a.Weights = bigger
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
		if e.Layer >= 0 && e.RowEnd > a.Weights.NestedRows[e.Layer] {
			a.Reserve(a.widthFor(e))
		}
		t, _ := a.Weights.Tensor(e.Tensor)
		DecodeF32(t.Data[e.RowStart*e.rowSize():e.RowEnd*e.rowSize()], p.buf)
		*p = pending{ready: true}
	}
	return errors.Join(errs...)
}

// widthFor is the mix that keeps every layer's reserved rows and gives e's
// layer the granularity of e.
func (a *Assembler) widthFor(e Entry) model.Mix {
	mix := make(model.Mix, a.Header.Config.Layers)
	for l, rows := range a.Weights.NestedRows {
		for g, w := range a.Header.Config.FFNWidths {
			if w <= rows {
				mix[l] = g
			}
		}
	}
	mix[e.Layer] = max(mix[e.Layer], e.Granularity)
	return mix
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
	a.Reserve(h.Config.Uniform(h.Config.Granularities() - 1))
	data := make([]byte, h.DataSize)
	if _, err := r.ReadAt(data, h.DataStart); err != nil {
		return nil, nil, fmt.Errorf("weights: %w: reading data: %v", ErrTruncated, err)
	}
	if err := a.Feed(h.DataStart, data); err != nil {
		return nil, nil, err
	}
	return a.Weights, h, nil
}
