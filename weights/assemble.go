package weights

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sort"

	"github.com/matedge/matedge/model"
)

// Assembler builds a model.Weights from pieces of a weights file that arrive in
// any order and any size — HTTP Range responses, a stream, a cache. Each entry
// is checked against its checksum, and for non-finite values, once all its
// bytes are there; a failed entry is dropped so it can be fetched again.
//
// Memory follows the Mix: the weights hold each layer's FFN rows only up to
// the widest granularity reserved (Reserve) or fed for it, so a device that
// runs S never allocates XL's rows. Bytes go straight to the rows they encode
// (the f32 layout of the file is the bit pattern of the floats), so nothing is
// staged beside the weights: the weights are all the memory the data takes.
type Assembler struct {
	Header  *Header
	Weights *model.Weights // rows appear as their entries complete; replaced when it grows
	entries []pending      // parallel to Header.Entries
	tensor  []int          // parallel to Header.Entries: index of the entry's tensor in Weights.Tensors()
	views   []model.Tensor // Weights.Tensors() of viewsOf
	viewsOf *model.Weights
	scratch []byte // for checksumming rows already decoded
}

type pending struct {
	have  [][2]int64 // received byte intervals of the entry, sorted, disjoint; their bytes are in Weights
	ready bool       // verified
}

// NewAssembler prepares to assemble the model h describes. h must be valid
// (Validate; ParseHeader's headers are): in particular its entries are in
// file order and do not overlap. Weights stays nil until the first Reserve,
// or the first Feed of an entry's bytes, allocates them: for the smallest
// submodel, or the mix reserved, so that reserving XL first allocates XL's
// weights alone and not S's as well.
func NewAssembler(h *Header) *Assembler {
	// Index tensor names once: looking each entry's tensor up by name in
	// Tensors() costs O(tensors) per entry, hours for a 1024-layer model.
	index := map[string]int{}
	for i, t := range model.Layout(h.Config) {
		index[t.Name] = i
	}
	a := &Assembler{Header: h, entries: make([]pending, len(h.Entries)), tensor: make([]int, len(h.Entries))}
	for i, e := range h.Entries {
		if t, ok := index[e.Tensor]; ok {
			a.tensor[i] = t
		} else {
			a.tensor[i] = -1 // an unvalidated header; Feed refuses the entry
		}
	}
	return a
}

// Reserve makes room for every FFN row mix uses, in one allocation. Feed
// grows the weights by itself when an entry needs more rows; reserving first
// avoids growing them layer by layer.
func (a *Assembler) Reserve(mix model.Mix) {
	c := a.Header.Config
	var rows []int
	if a.Weights == nil {
		rows = make([]int, c.Layers)
		for l := range rows {
			rows[l] = c.FFNWidths[0]
		}
	} else {
		rows = append(rows, a.Weights.NestedRows...)
	}
	grow := a.Weights == nil
	for l, g := range mix {
		if w := c.FFNWidths[g]; w > rows[l] {
			rows[l], grow = w, true
		}
	}
	if !grow {
		return
	}
	bigger := model.NewNestedWeights(c, rows)
	if a.Weights == nil {
		a.Weights = bigger
		return
	}
	old := a.Weights.Tensors()
	for i, t := range bigger.Tensors() {
		copy(t.Data, old[i].Data) // nested tensors: the rows already there (and bytes of incomplete entries) are a prefix
	}
	a.Weights = bigger
}

// Held is, per layer, the widest granularity whose FFN rows the weights have
// room for: what Reserve and Feed have grown them to. nil before either has
// allocated the weights. It never shrinks: a narrower mix runs on the rows
// already held.
func (a *Assembler) Held() model.Mix {
	if a.Weights == nil {
		return nil
	}
	return a.heldMix()
}

// rows returns the floats entry i decodes to, growing the weights first if
// they do not hold its rows yet.
func (a *Assembler) rows(i int) ([]float32, error) {
	e := a.Header.Entries[i]
	if a.tensor[i] < 0 {
		return nil, fmt.Errorf("weights: entry %d: %w: unknown tensor %q", i, ErrCorrupt, e.Tensor)
	}
	if a.Weights == nil {
		a.Reserve(a.Header.Config.Uniform(0))
	}
	t := a.view(i)
	if t.Nested && e.RowEnd > t.Shape[0] {
		a.Reserve(a.widthFor(e))
		t = a.view(i)
	}
	n := e.rowSize()
	if e.RowStart < 0 || e.RowEnd > t.Shape[0] || int64(e.RowEnd-e.RowStart)*int64(n)*4 != e.Length {
		return nil, fmt.Errorf("weights: tensor %q rows [%d, %d): %w: %d bytes do not fit its shape %v", e.Tensor, e.RowStart, e.RowEnd, ErrCorrupt, e.Length, t.Shape)
	}
	return t.Data[e.RowStart*n : e.RowEnd*n], nil
}

// view is the tensor of entry i in the current weights.
func (a *Assembler) view(i int) model.Tensor {
	if a.viewsOf != a.Weights {
		a.views, a.viewsOf = a.Weights.Tensors(), a.Weights
	}
	return a.views[a.tensor[i]]
}

// Feed delivers bytes that start at offset in the file. Bytes of the header,
// of gaps or of entries already complete are ignored. It returns an error
// wrapping ErrChecksum or ErrNonFinite, naming the tensor, when a completed
// entry does not verify; the entry is then missing again.
func (a *Assembler) Feed(offset int64, data []byte) error {
	end := offset + int64(len(data))
	if end < offset { // past 2^63: no entry lies there
		end = math.MaxInt64
	}
	ds := a.Header.DataStart
	es := a.Header.Entries
	// Entries are in file order and disjoint: skip those that end before offset.
	first := sort.Search(len(es), func(i int) bool { return ds+es[i].Offset+es[i].Length > offset })
	var errs []error
	for i := first; i < len(es) && ds+es[i].Offset < end; i++ {
		e, p := es[i], &a.entries[i]
		start := ds + e.Offset
		lo, hi := max(offset, start), min(end, start+e.Length)
		if p.ready || lo >= hi {
			continue
		}
		src := data[lo-offset : hi-offset]
		dst, err := a.rows(i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(p.have) == 0 && lo == start && hi == start+e.Length {
			// The whole entry in one piece: verify the bytes before decoding them.
			if err := verifyBytes(e, src); err != nil {
				errs = append(errs, err)
				continue
			}
			DecodeF32(dst, src)
			*p = pending{ready: true}
			continue
		}
		putBytes(dst, lo-start, src)
		p.have = addInterval(p.have, [2]int64{lo - start, hi - start})
		if len(p.have) != 1 || p.have[0] != [2]int64{0, e.Length} {
			continue
		}
		if err := a.verifyRows(e, dst); err != nil {
			*p = pending{} // the bytes in dst are garbage now, but unused until fed again
			errs = append(errs, err)
			continue
		}
		*p = pending{ready: true}
	}
	return errors.Join(errs...)
}

// verifyBytes checks an entry's bytes: checksum, then every value finite.
func verifyBytes(e Entry, b []byte) error {
	if got := Checksum(b); got != e.CRC32C {
		return checksumError(e, got)
	}
	for i := 0; i+4 <= len(b); i += 4 {
		if bits := binary.LittleEndian.Uint32(b[i:]); bits&0x7f800000 == 0x7f800000 {
			return nonFiniteAt(e, i/4, math.Float32frombits(bits))
		}
	}
	return nil
}

// verifyRows checks an entry whose bytes were decoded into x as they came.
func (a *Assembler) verifyRows(e Entry, x []float32) error {
	if a.scratch == nil {
		a.scratch = make([]byte, 64<<10)
	}
	crc := uint32(0)
	for i := 0; i < len(x); {
		n := min(len(x)-i, len(a.scratch)/4)
		b := a.scratch[:4*n]
		for j, v := range x[i : i+n] {
			binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(v))
		}
		crc = crc32.Update(crc, castagnoli, b)
		i += n
	}
	if crc != e.CRC32C {
		return checksumError(e, crc)
	}
	if i := firstNonFinite(x); i >= 0 {
		return nonFiniteAt(e, i, x[i])
	}
	return nil
}

func checksumError(e Entry, got uint32) error {
	return fmt.Errorf("weights: tensor %q rows [%d, %d): %w (crc32c %08x, header says %08x)",
		e.Tensor, e.RowStart, e.RowEnd, ErrChecksum, got, e.CRC32C)
}

func nonFiniteAt(e Entry, i int, v float32) error {
	n := max(e.rowSize(), 1)
	return fmt.Errorf("weights: tensor %q row %d, column %d: %w: %v", e.Tensor, e.RowStart+i/n, i%n, ErrNonFinite, v)
}

// firstNonFinite is the index of the first NaN or ±Inf in x, or -1.
func firstNonFinite(x []float32) int {
	for i, v := range x {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return i
		}
	}
	return -1
}

// putBytes writes src into x as if x were its little-endian f32 bytes,
// starting at byte off. Floats that src covers only in part keep their
// other bytes.
func putBytes(x []float32, off int64, src []byte) {
	for len(src) > 0 && off%4 != 0 {
		putByte(x, off, src[0])
		off, src = off+1, src[1:]
	}
	whole := len(src) / 4 * 4
	DecodeF32(x[off/4:off/4+int64(whole/4)], src[:whole])
	off, src = off+int64(whole), src[whole:]
	for len(src) > 0 {
		putByte(x, off, src[0])
		off, src = off+1, src[1:]
	}
}

func putByte(x []float32, off int64, b byte) {
	shift := 8 * uint(off%4)
	bits := math.Float32bits(x[off/4])&^(0xff<<shift) | uint32(b)<<shift
	x[off/4] = math.Float32frombits(bits)
}

// widthFor is the mix that keeps every layer's reserved rows and gives e's
// layer the granularity of e.
func (a *Assembler) widthFor(e Entry) model.Mix {
	mix := a.heldMix()
	mix[e.Layer] = max(mix[e.Layer], e.Granularity)
	return mix
}

// heldMix is Held for allocated weights: per layer, the widest granularity
// whose rows fit in the rows allocated.
func (a *Assembler) heldMix() model.Mix {
	c := a.Header.Config
	mix := make(model.Mix, c.Layers)
	for l := range mix {
		rows := c.Hidden()
		if a.Weights.NestedRows != nil {
			rows = a.Weights.NestedRows[l]
		}
		for g, w := range c.FFNWidths {
			if w <= rows {
				mix[l] = g
			}
		}
	}
	return mix
}

// Missing returns the byte ranges a model running mix still needs: empty
// once every entry it needs ended verified.
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
	slices.SortFunc(have, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
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

// chunkSize is how many bytes Load and Verify read at a time.
const chunkSize = 1 << 20

// Load reads a whole weights file of the given size: header, every entry,
// every checksum. Besides the weights it holds at most chunkSize bytes of
// the file at a time.
func Load(r io.ReaderAt, size int64) (*model.Weights, *Header, error) {
	h, err := ReadHeader(r, size)
	if err != nil {
		return nil, nil, err
	}
	w, err := loadEntries(r, h)
	if err != nil {
		return nil, nil, err
	}
	return w, h, nil
}

// loadEntries reads and verifies every entry of h and fails unless each one
// ended verified, whatever the header let through.
func loadEntries(r io.ReaderAt, h *Header) (*model.Weights, error) {
	a := NewAssembler(h)
	full := h.Config.Uniform(h.Config.Granularities() - 1)
	a.Reserve(full)
	buf := make([]byte, min(chunkSize, maxLength(h)))
	for _, e := range h.Entries {
		start := h.DataStart + e.Offset
		for off := int64(0); off < e.Length; {
			b := buf[:min(int64(len(buf)), e.Length-off)]
			if _, err := r.ReadAt(b, start+off); err != nil {
				return nil, fmt.Errorf("weights: %w: reading tensor %q at byte %d: %v", ErrTruncated, e.Tensor, start+off, err)
			}
			if err := a.Feed(start+off, b); err != nil {
				return nil, err
			}
			off += int64(len(b))
		}
	}
	if missing := a.Missing(full); len(missing) > 0 {
		return nil, fmt.Errorf("weights: %w: %d bytes in %d ranges were never verified, first at byte %d", ErrCorrupt, Bytes(missing), len(missing), missing[0].Offset)
	}
	return a.Weights, nil
}

// Verify reads a weights file's header and checks every entry's checksum
// and values, without holding the data or the weights in memory: it needs
// chunkSize bytes, whatever the size of the file.
func Verify(r io.ReaderAt, size int64) (*Header, error) {
	h, err := ReadHeader(r, size)
	if err != nil {
		return nil, err
	}
	if err := verifyEntries(r, h); err != nil {
		return nil, err
	}
	return h, nil
}

// verifyEntries streams every entry of h through its checksum and the
// non-finite scan, and fails unless each one ended verified.
func verifyEntries(r io.ReaderAt, h *Header) error {
	buf := make([]byte, min(chunkSize, maxLength(h)))
	verified := 0
	for _, e := range h.Entries {
		if e.Length <= 0 || e.Offset < 0 || e.Length%4 != 0 {
			continue // never verified: reported below
		}
		start := h.DataStart + e.Offset
		crc, index := uint32(0), 0
		for off := int64(0); off < e.Length; {
			b := buf[:min(int64(len(buf)), e.Length-off)] // a multiple of 4: floats stay whole
			if _, err := r.ReadAt(b, start+off); err != nil {
				return fmt.Errorf("weights: %w: reading tensor %q at byte %d: %v", ErrTruncated, e.Tensor, start+off, err)
			}
			crc = crc32.Update(crc, castagnoli, b)
			for i := 0; i+4 <= len(b); i += 4 {
				if bits := binary.LittleEndian.Uint32(b[i:]); bits&0x7f800000 == 0x7f800000 {
					return nonFiniteAt(e, index+i/4, math.Float32frombits(bits))
				}
			}
			off += int64(len(b))
			index += len(b) / 4
		}
		if crc != e.CRC32C {
			return checksumError(e, crc)
		}
		verified++
	}
	if verified != len(h.Entries) {
		return fmt.Errorf("weights: %w: %d of %d entries could not be verified", ErrCorrupt, len(h.Entries)-verified, len(h.Entries))
	}
	return nil
}

// maxLength is the length of the longest entry (at least 4).
func maxLength(h *Header) int64 {
	n := int64(4)
	for _, e := range h.Entries {
		n = max(n, e.Length)
	}
	return n
}
