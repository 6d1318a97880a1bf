package weights

import (
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/matedge/matedge/model"
)

// The fixed part of every weights file.
const (
	Magic    = "MATW" // first four bytes
	Version  = 2      // the format version this package writes, and the newest it reads
	Align    = 256    // the data section starts at a multiple of Align
	Preamble = 12     // magic + u32 version + u32 header length

	// OldestVersion is the oldest format version this package still reads.
	// Version 1 has no header checksum (doc.go).
	OldestVersion = 1

	// HeaderCRCLen is the size of the header checksum that follows the
	// msgpack header from version 2 on: a u32 CRC-32C of every byte before it.
	HeaderCRCLen = 4

	// MaxHeaderLen bounds the msgpack header so that a lying length cannot make a
	// reader allocate gigabytes before it has seen a byte of it.
	MaxHeaderLen = 64 << 20
)

// Errors a caller can act on. They are wrapped with what was being read.
var (
	ErrMagic     = errors.New("not a matedge weights file (bad magic)")
	ErrVersion   = errors.New("unsupported weights format version")
	ErrTruncated = errors.New("weights file is truncated")
	ErrCorrupt   = errors.New("weights header is inconsistent")
	ErrChecksum  = errors.New("checksum mismatch")
	// ErrHeaderChecksum: the header's own CRC-32C (format version 2) does
	// not match its bytes. It matches ErrCorrupt too, so hosts that refuse a
	// bad header on ErrCorrupt refuse this one; fetching the header again
	// may help (bytes damaged in transit or in a cache).
	ErrHeaderChecksum error = headerChecksumError{}
	ErrTooLarge             = errors.New("weights header too large") // or the data it describes: past 2^63 bytes, or past what the reader can hold
	// ErrArchitecture: the file holds a network this build does not run (a
	// vision model given to text generation, say). It matches ErrCorrupt for
	// hosts that only tell good files from bad.
	ErrArchitecture error = architectureError{}

	// ErrNonFinite: a tensor holds NaN or ±Inf under a correct checksum. It
	// also matches ErrCorrupt (errors.Is), so hosts that refuse a bad file on
	// ErrCorrupt refuse this one too; fetching the bytes again cannot help.
	ErrNonFinite error = nonFiniteError{}
)

type headerChecksumError struct{}

func (headerChecksumError) Error() string        { return "weights header checksum mismatch" }
func (headerChecksumError) Is(target error) bool { return target == ErrCorrupt }

type architectureError struct{}

func (architectureError) Error() string        { return "unsupported model architecture" }
func (architectureError) Is(target error) bool { return target == ErrCorrupt }

// Architectures a header may name. The empty name, which files written
// before the field existed carry, is MatFormerLM.
const (
	MatFormerLM = "matformer-lm" // the decoder-only language model of package model
	MatViT      = "matvit"       // the image encoder and classifier of package model (vision.go)
)

// ArchitectureOf is the architecture a header for c names.
func ArchitectureOf(c model.Config) string {
	if c.IsVision() {
		return MatViT
	}
	return MatFormerLM
}

// IsVision reports whether the file holds a MatViT image model.
func (h *Header) IsVision() bool { return h.Architecture == MatViT }

// RequireLanguageModel refuses a header whose network is not a language
// model, for the commands and exports that generate text.
func (h *Header) RequireLanguageModel() error {
	if h.IsVision() {
		return fmt.Errorf("%w: this file holds a vision model (%s, %d classes of %d×%d images); text generation needs a language model (matedge classify runs this one)",
			ErrArchitecture, MatViT, h.Config.Vocab, h.Config.Image.Size, h.Config.Image.Size)
	}
	return nil
}

// RequireVisionModel refuses a header whose network is not a vision model,
// for classification, embedding and retrieval.
func (h *Header) RequireVisionModel() error {
	if !h.IsVision() {
		return fmt.Errorf("%w: this file holds a language model (%s); classification and retrieval need a vision model (%s)", ErrArchitecture, MatFormerLM, MatViT)
	}
	return nil
}

type nonFiniteError struct{}

func (nonFiniteError) Error() string        { return "weights hold a non-finite value (NaN or ±Inf)" }
func (nonFiniteError) Is(target error) bool { return target == ErrCorrupt }

// DType is the element type of a stored tensor.
type DType string

// Element types.
const (
	F32 DType = "f32" // little-endian IEEE 754 binary32
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	}
	return 0
}

// Header is the msgpack document after the preamble.
type Header struct {
	Config    model.Config      `msgpack:"config" json:"config"`
	Tokenizer model.Tokenizer   `msgpack:"tokenizer" json:"tokenizer"`
	Entries   []Entry           `msgpack:"entries" json:"entries"`     // in file order
	DataSize  int64             `msgpack:"data_size" json:"data_size"` // bytes from DataStart to the end of the file
	Meta      map[string]string `msgpack:"meta,omitempty" json:"meta,omitempty"`
	// Architecture names the network and so the tensor layout; "" (absent)
	// is MatFormerLM. A reader refuses one it does not run (ErrArchitecture).
	Architecture string `msgpack:"architecture,omitempty" json:"architecture,omitempty"`
	// EOT, when set, is the end-of-text token id of a language model:
	// generation stops before emitting it. nil (absent): the model has none.
	EOT *int `msgpack:"eot,omitempty" json:"eot,omitempty"`

	// DataStart is where the data section begins, from the start of the file. It
	// is not stored; the reader computes it from the header length.
	DataStart int64 `msgpack:"-" json:"data_start"`
	// FormatVersion is the preamble's format version (1 or 2), set by the
	// reader; Write always writes Version.
	FormatVersion int `msgpack:"-" json:"format_version"`
}

// Entry is one stored run of a tensor's rows. Shared tensors are one entry.
// A nested FFN tensor is one entry per granularity: granularity g's entry holds
// rows [FFNWidths[g-1], FFNWidths[g]), the neurons g adds to g-1.
type Entry struct {
	Tensor      string `msgpack:"tensor" json:"tensor"`           // model tensor name, e.g. "layers.3.ffn_up"
	DType       DType  `msgpack:"dtype" json:"dtype"`             // element type
	Shape       []int  `msgpack:"shape" json:"shape"`             // shape of the whole tensor
	RowStart    int    `msgpack:"row_start" json:"row_start"`     // first row of the tensor stored here
	RowEnd      int    `msgpack:"row_end" json:"row_end"`         // one past the last row
	Layer       int    `msgpack:"layer" json:"layer"`             // block index; -1 for embedding, final norm and head
	Granularity int    `msgpack:"granularity" json:"granularity"` // smallest granularity that needs these rows
	Offset      int64  `msgpack:"offset" json:"offset"`           // from DataStart
	Length      int64  `msgpack:"length" json:"length"`           // bytes
	CRC32C      uint32 `msgpack:"crc32c" json:"crc32c"`           // Castagnoli CRC of the bytes
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the checksum stored in Entry.CRC32C.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// NeededBy reports whether a model running mix needs this entry.
func (e Entry) NeededBy(mix model.Mix) bool {
	return e.Layer < 0 || e.Granularity <= mix[e.Layer]
}

// rowSize is the number of elements in one row of the tensor.
func (e Entry) rowSize() int {
	n := 1
	for _, s := range e.Shape[1:] {
		n *= s
	}
	return n
}

// Validate checks the header against itself: the config is runnable, every
// tensor of the model is covered exactly once by entries of the right size,
// entries lie inside the data section and do not overlap. No check adds two
// numbers from the header, so none can wrap around.
func (h *Header) Validate() error {
	switch h.Architecture {
	case "", MatFormerLM:
		if h.Config.Image != nil {
			return fmt.Errorf("%w: a language model's header (architecture %q) with an image config", ErrCorrupt, h.Architecture)
		}
	case MatViT:
		if h.Config.Image == nil {
			return fmt.Errorf("%w: a %s header without an image config", ErrCorrupt, MatViT)
		}
		if len(h.Tokenizer.Merges) > 0 {
			return fmt.Errorf("%w: a %s header with a tokenizer", ErrCorrupt, MatViT)
		}
	default:
		return fmt.Errorf("%w: %q (this build runs %q and %q)", ErrArchitecture, h.Architecture, MatFormerLM, MatViT)
	}
	if err := h.Config.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := h.Tokenizer.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !h.IsVision() && h.Tokenizer.Size() > h.Config.Vocab {
		return fmt.Errorf("%w: tokenizer has %d ids, vocab is %d", ErrCorrupt, h.Tokenizer.Size(), h.Config.Vocab)
	}
	if h.EOT != nil && (h.IsVision() || *h.EOT < 0 || *h.EOT >= h.Config.Vocab) {
		return fmt.Errorf("%w: end-of-text token %d (want a language model's token id below vocab %d)", ErrCorrupt, *h.EOT, h.Config.Vocab)
	}
	if h.DataSize < 0 {
		return fmt.Errorf("%w: negative data size %d", ErrCorrupt, h.DataSize)
	}
	tensors := tensorShapes(h.Config)
	want := make(map[string]model.Tensor, len(tensors))
	for _, t := range tensors {
		want[t.Name] = t
	}
	covered := make(map[string]int, len(tensors)) // tensor → rows covered so far (entries must come in row order)
	var end int64                                 // end of the entry before, at most DataSize
	for i, e := range h.Entries {
		t, ok := want[e.Tensor]
		switch {
		case !ok:
			return fmt.Errorf("%w: entry %d names unknown tensor %q", ErrCorrupt, i, e.Tensor)
		case e.DType.Size() == 0:
			return fmt.Errorf("%w: tensor %q has unknown dtype %q", ErrCorrupt, e.Tensor, e.DType)
		case !slices.Equal(e.Shape, t.Shape):
			return fmt.Errorf("%w: tensor %q has shape %v, config says %v", ErrCorrupt, e.Tensor, e.Shape, t.Shape)
		case e.RowStart != covered[e.Tensor] || e.RowEnd <= e.RowStart || e.RowEnd > t.Shape[0]:
			return fmt.Errorf("%w: tensor %q rows [%d, %d) do not continue at row %d", ErrCorrupt, e.Tensor, e.RowStart, e.RowEnd, covered[e.Tensor])
		case e.Layer != t.Layer:
			return fmt.Errorf("%w: tensor %q says layer %d", ErrCorrupt, e.Tensor, e.Layer)
		case e.Granularity != granularityOf(h.Config, t, e.RowEnd):
			return fmt.Errorf("%w: tensor %q rows [%d, %d) marked granularity %d", ErrCorrupt, e.Tensor, e.RowStart, e.RowEnd, e.Granularity)
		// The config bounds shapes, so this product cannot overflow.
		case e.Length != int64(e.RowEnd-e.RowStart)*int64(e.rowSize())*int64(e.DType.Size()):
			return fmt.Errorf("%w: tensor %q length %d does not match its rows", ErrCorrupt, e.Tensor, e.Length)
		case e.Offset < 0:
			return fmt.Errorf("%w: tensor %q at negative offset %d", ErrCorrupt, e.Tensor, e.Offset)
		case e.Offset < end:
			return fmt.Errorf("%w: tensor %q at offset %d overlaps the entry before it (ends at %d)", ErrCorrupt, e.Tensor, e.Offset, end)
		case e.Offset > h.DataSize || e.Length > h.DataSize-e.Offset: // Offset+Length > DataSize, without the sum
			return fmt.Errorf("%w: tensor %q at offset %d, length %d, runs past the end of the data (%d bytes)", ErrCorrupt, e.Tensor, e.Offset, e.Length, h.DataSize)
		}
		covered[e.Tensor] = e.RowEnd
		end = e.Offset + e.Length // at most DataSize: checked above
	}
	for _, t := range tensors {
		if covered[t.Name] != t.Shape[0] {
			return fmt.Errorf("%w: tensor %q has %d of %d rows", ErrCorrupt, t.Name, covered[t.Name], t.Shape[0])
		}
	}
	return nil
}

// granularityOf is the smallest granularity that uses a tensor's rows up to rowEnd.
func granularityOf(c model.Config, t model.Tensor, rowEnd int) int {
	if !t.Nested {
		return 0
	}
	for g, w := range c.FFNWidths {
		if rowEnd <= w {
			return g
		}
	}
	return len(c.FFNWidths) - 1
}

// tensorShapes lists the tensors a config has, without allocating them.
func tensorShapes(c model.Config) []model.Tensor {
	return model.Layout(c)
}
