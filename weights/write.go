package weights

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
// tokenizer (ErrCorrupt). It streams: besides w it holds the header and one
// chunk of the file's bytes, not the file (Writer).
func Write(out io.Writer, w *model.Weights, tok model.Tokenizer, meta map[string]string) error {
	return writeFile(out, w, tok, meta, true)
}

// WriteFile writes w as a weights file at path, atomically and streaming
// (WriteAtomic of Write), readable by all (0644) like the files a
// download gives. It returns the file's size.
func WriteFile(path string, w *model.Weights, tok model.Tokenizer, meta map[string]string) (int64, error) {
	var size int64
	err := WriteAtomic(path, 0o644, func(out io.Writer) error {
		c := &countingWriter{w: out}
		err := Write(c, w, tok, meta)
		size = c.n
		return err
	})
	return size, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
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
	rows := make([][]float32, len(h.Entries))
	buf := make([]byte, min(chunkSize, maxLength(&h)))
	// The header holds every entry's checksum: a first pass over the
	// weights computes them, the Writer's pass writes the bytes.
	for i := range h.Entries {
		e := &h.Entries[i]
		t, ok := byName[e.Tensor]
		if !ok || len(t.Data) < e.RowEnd*e.rowSize() {
			return fmt.Errorf("weights: write tensor %q rows [%d, %d): the weights do not hold them", e.Tensor, e.RowStart, e.RowEnd)
		}
		rows[i] = t.Data[e.RowStart*e.rowSize() : e.RowEnd*e.rowSize()]
		if j := firstNonFinite(rows[i]); check && j >= 0 {
			return fmt.Errorf("weights: write: %w", nonFiniteAt(*e, j, rows[i][j]))
		}
		e.CRC32C = checksumF32(rows[i], buf)
		h.DataSize = e.Offset + e.Length
	}
	wr, err := newWriter(out, &h, buf)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := wr.WriteEntry(r); err != nil {
			return err
		}
	}
	return wr.Close()
}

// EntryChecksum is the CRC-32C of rows stored as f32, the checksum an f32
// entry holding them has in the header; it encodes them a chunk at a time.
func EntryChecksum(rows []float32) uint32 {
	return checksumF32(rows, make([]byte, min(chunkSize, 4*max(len(rows), 1))))
}

// checksumF32 is EntryChecksum with buf (a multiple of 4 bytes) for the chunks.
func checksumF32(rows []float32, buf []byte) uint32 {
	crc := uint32(0)
	forChunks(rows, buf, func(b []byte) error {
		crc = crc32.Update(crc, castagnoli, b)
		return nil
	})
	return crc
}

// forChunks encodes rows as little-endian f32 into buf, one chunk (up to
// len(buf)/4 floats) at a time, and calls f with each chunk.
func forChunks(rows []float32, buf []byte, f func([]byte) error) error {
	n := len(buf) / 4
	for i := 0; i < len(rows); i += n {
		part := rows[i:min(i+n, len(rows))]
		b := buf[:4*len(part)]
		for j, v := range part {
			binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(v))
		}
		if err := f(b); err != nil {
			return err
		}
	}
	return nil
}

// A Writer streams a weights file to an io.Writer: the header, then each
// entry's rows in the header's order, encoded a chunk at a time, so that it
// holds one chunk of the file's bytes rather than the file. The header holds
// every entry's CRC-32C, so they must be known before the first byte
// (EntryChecksum; Write computes them in a first pass over the weights); the
// Writer checks each entry's bytes against its checksum as it writes them.
// The file is byte for byte the one Write gives for the same header and rows.
type Writer struct {
	out     io.Writer
	h       *Header
	next    int   // the entry WriteEntry writes next
	written int64 // bytes of the data section written
	buf     []byte
	err     error // the first error; every later call returns it
}

// NewWriter writes h's header to out, in the current Version. h must be
// complete: f32 entries in file order with their checksums, and DataSize.
func NewWriter(out io.Writer, h *Header) (*Writer, error) {
	return newWriter(out, h, make([]byte, min(chunkSize, maxLength(h))))
}

func newWriter(out io.Writer, h *Header, buf []byte) (*Writer, error) {
	head, err := encodeHeader(h, Version)
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(head); err != nil {
		return nil, fmt.Errorf("weights: write header: %w", err)
	}
	return &Writer{out: out, h: h, buf: buf[:len(buf)/4*4]}, nil
}

// WriteEntry writes the rows of the next entry of the header. It refuses
// rows whose size or checksum is not the entry's.
func (w *Writer) WriteEntry(rows []float32) error {
	if w.err != nil {
		return w.err
	}
	if w.next >= len(w.h.Entries) {
		w.err = fmt.Errorf("weights: write: %d entries written; the header has %d", w.next+1, len(w.h.Entries))
		return w.err
	}
	e := w.h.Entries[w.next]
	switch {
	case e.DType != F32:
		w.err = fmt.Errorf("weights: write tensor %q: dtype %q; the writer writes f32", e.Tensor, e.DType)
	case 4*int64(len(rows)) != e.Length:
		w.err = fmt.Errorf("weights: write tensor %q rows [%d, %d): %d floats; the entry holds %d bytes", e.Tensor, e.RowStart, e.RowEnd, len(rows), e.Length)
	case e.Offset < w.written:
		w.err = fmt.Errorf("weights: write tensor %q: offset %d is before the %d bytes already written (entries must be in file order)", e.Tensor, e.Offset, w.written)
	}
	if w.err != nil {
		return w.err
	}
	if gap := e.Offset - w.written; gap > 0 { // padding: zeros
		clear(w.buf)
		for gap > 0 {
			n := min(gap, int64(len(w.buf)))
			if _, err := w.out.Write(w.buf[:n]); err != nil {
				w.err = fmt.Errorf("weights: write padding before tensor %q: %w", e.Tensor, err)
				return w.err
			}
			gap -= n
		}
	}
	crc := uint32(0)
	err := forChunks(rows, w.buf, func(b []byte) error {
		crc = crc32.Update(crc, castagnoli, b)
		_, err := w.out.Write(b)
		return err
	})
	switch {
	case err != nil:
		w.err = fmt.Errorf("weights: write tensor %q: %w", e.Tensor, err)
	case crc != e.CRC32C:
		// The rows changed since their checksum was taken, or it is wrong:
		// the file would be refused by every reader.
		w.err = fmt.Errorf("weights: write tensor %q rows [%d, %d): crc32c %08x, the header says %08x", e.Tensor, e.RowStart, e.RowEnd, crc, e.CRC32C)
	}
	if w.err != nil {
		return w.err
	}
	w.next++
	w.written = e.Offset + e.Length
	return nil
}

// Close reports whether every entry of the header was written; it does not
// close the io.Writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.next != len(w.h.Entries) {
		return fmt.Errorf("weights: write: %d of %d entries written", w.next, len(w.h.Entries))
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

// WriteF32 writes x to out as EncodeF32 encodes it, a chunk at a time, so
// that a large array is not copied whole (checkpoints).
func WriteF32(out io.Writer, x []float32) error {
	return forChunks(x, make([]byte, min(chunkSize, 4*max(len(x), 1))), func(b []byte) error {
		_, err := out.Write(b)
		return err
	})
}

// DecodeF32 sets dst from little-endian float32 bytes (len(src) == 4·len(dst)).
func DecodeF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// WriteFileAtomic writes data to path through a temporary file in the same
// folder renamed into place, so a crash mid-write leaves the previous file
// (checkpoints, stored benchmarks) whole. The file is readable by its owner
// only (0600).
func WriteFileAtomic(path string, data []byte) error {
	return WriteAtomic(path, 0o600, func(out io.Writer) error {
		_, err := out.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for a file written as a stream: write gets
// a buffered writer on a temporary file in path's folder, which is renamed
// into place with permissions perm once write and the close have succeeded.
// On any failure the temporary file is removed and path is left as it was.
func WriteAtomic(path string, perm os.FileMode, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	buf := bufio.NewWriterSize(tmp, 64<<10)
	werr := write(buf)
	if werr == nil {
		werr = buf.Flush()
	}
	if werr == nil {
		werr = tmp.Chmod(perm)
	}
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
