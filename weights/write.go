package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/matedge/matedge/model"
	"github.com/vmihailenco/msgpack/v5"
)

// Plan lays out the entries of a config in nested order: section 0 holds every
// shared tensor and the granularity-0 rows of every FFN matrix; section g holds
// the rows granularity g adds, layer by layer. The model using granularity g
// everywhere is therefore a prefix of the data, and a layer's extra rows for
// one granularity are one contiguous run. Offsets are from DataStart.
func Plan(c model.Config, dtype DType) []Entry {
	var entries []Entry
	var off int64
	add := func(t model.Tensor, g, rowStart, rowEnd int) {
		rowSize := 1
		for _, s := range t.Shape[1:] {
			rowSize *= s
		}
		n := int64(rowEnd-rowStart) * int64(rowSize) * int64(dtype.Size())
		entries = append(entries, Entry{
			Tensor: t.Name, DType: dtype, Shape: t.Shape, RowStart: rowStart, RowEnd: rowEnd,
			Layer: t.Layer, Granularity: g, Offset: off, Length: n,
		})
		off += n
	}
	tensors := model.Layout(c)
	for _, t := range tensors {
		if t.Nested {
			add(t, 0, 0, c.FFNWidths[0])
		} else {
			add(t, 0, 0, t.Shape[0])
		}
	}
	for g := 1; g < len(c.FFNWidths); g++ {
		for _, t := range tensors {
			if t.Nested {
				add(t, g, c.FFNWidths[g-1], c.FFNWidths[g])
			}
		}
	}
	return entries
}

// Write stores w and its tokenizer as a weights file of the current Version. It refuses,
// with the error a reader would give, weights or a tokenizer that no reader
// would accept: non-finite values (ErrNonFinite), an invalid config or
// tokenizer (ErrCorrupt).
func Write(out io.Writer, w *model.Weights, tok model.Tokenizer, meta map[string]string) error {
	return writeFile(out, w, tok, meta, true)
}

// writeFile is Write; tests call it with check false to craft files that
// readers must refuse.
func writeFile(out io.Writer, w *model.Weights, tok model.Tokenizer, meta map[string]string, check bool) error {
	h := Header{Config: w.Config, Tokenizer: model.Tokenizer{Merges: tok.Merges}, Meta: meta}
	if w.Config.IsVision() {
		h.Architecture = MatViT // a language model's stays absent, as in files written before the field existed
	}
	if check {
		if err := w.Config.Validate(); err != nil {
			return fmt.Errorf("weights: write: %w: %v", ErrCorrupt, err)
		}
	}
	h.Entries = Plan(w.Config, F32)
	if last := h.Entries[len(h.Entries)-1]; check {
		h.DataSize = last.Offset + last.Length
		if err := h.Validate(); err != nil { // the tokenizer, and that it fits the vocabulary
			return fmt.Errorf("weights: write: %w", err)
		}
	}
	// Index the tensors once: w.Tensor(name) lists every tensor on each call.
	tensors := w.Tensors()
	byName := make(map[string]model.Tensor, len(tensors))
	for _, t := range tensors {
		byName[t.Name] = t
	}
	data := make([][]byte, len(h.Entries))
	for i := range h.Entries {
		e := &h.Entries[i]
		t, ok := byName[e.Tensor]
		if !ok || len(t.Data) < e.RowEnd*e.rowSize() {
			return fmt.Errorf("weights: write tensor %q rows [%d, %d): the weights do not hold them", e.Tensor, e.RowStart, e.RowEnd)
		}
		rows := t.Data[e.RowStart*e.rowSize() : e.RowEnd*e.rowSize()]
		if j := firstNonFinite(rows); check && j >= 0 {
			return fmt.Errorf("weights: write: %w", nonFiniteAt(*e, j, rows[j]))
		}
		data[i] = EncodeF32(rows)
		e.CRC32C = Checksum(data[i])
		h.DataSize = e.Offset + e.Length
	}
	head, err := encodeHeader(&h, Version)
	if err != nil {
		return err
	}
	if _, err := out.Write(head); err != nil {
		return fmt.Errorf("weights: write header: %w", err)
	}
	for i, d := range data {
		if _, err := out.Write(d); err != nil {
			return fmt.Errorf("weights: write tensor %q: %w", h.Entries[i].Tensor, err)
		}
	}
	return nil
}

// EncodeHeader returns the bytes of a file before its data section, in the
// current Version: preamble, msgpack header, header checksum and padding.
// Write uses it; tests use it to craft headers that Write would refuse.
func EncodeHeader(h *Header) ([]byte, error) { return encodeHeader(h, Version) }

// encodeHeader returns the bytes of a file before its data section for
// format version 1 or 2 (frameHeader). Map keys are sorted, so the same
// header always gives the same bytes.
func encodeHeader(h *Header, version int) ([]byte, error) {
	var doc bytes.Buffer
	enc := msgpack.NewEncoder(&doc)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(h); err != nil {
		return nil, fmt.Errorf("weights: encode header: %w", err)
	}
	return frameHeader(doc.Bytes(), version), nil
}

// frameHeader returns the preamble, the msgpack document doc, (version 2)
// the CRC-32C of every byte before it, and zero padding up to DataStart.
func frameHeader(doc []byte, version int) []byte {
	b := make([]byte, Preamble, Preamble+len(doc)+HeaderCRCLen+Align)
	copy(b, Magic)
	binary.LittleEndian.PutUint32(b[4:], uint32(version))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(doc)))
	b = append(b, doc...)
	if version >= 2 {
		b = binary.LittleEndian.AppendUint32(b, Checksum(b))
	}
	return append(b, make([]byte, dataStart(int64(len(b)))-int64(len(b)))...)
}

// dataStart is where data begins after n bytes of preamble, header and
// header checksum: the next multiple of Align.
func dataStart(n int64) int64 {
	return (n + Align - 1) / Align * Align
}

// EncodeF32 returns x as little-endian IEEE binary32 bytes, the f32 layout of
// the weights file (and of checkpoints and GPU buffers).
func EncodeF32(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// DecodeF32 sets dst from little-endian float32 bytes (len(src) == 4·len(dst)).
func DecodeF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// WriteFileAtomic writes data to path through a temporary file in the same
// folder renamed into place, so a crash mid-write leaves the previous file
// (checkpoints, stored benchmarks) whole.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
