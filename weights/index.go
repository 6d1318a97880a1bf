package weights

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/safetensors"
	"github.com/vmihailenco/msgpack/v5"
)

// A retrieval index (.mati) holds the embeddings of a set of images, made by
// one vision model, with their labels and, optionally, the images:
//
//	offset 0   magic "MATI"
//	       4   u32 version (1), little-endian
//	       8   u32 H, the msgpack header's length, little-endian
//	      12   msgpack IndexHeader (H bytes)
//	  12 + H   count·dim embeddings, unit length, dtype f32 or f16, little-endian
//	           then, if image is set, count·C·S·S u8 pixels ([count][C][S][S])
//
// and nothing after. model_id is ModelID of the weights that embedded the
// images: a query must be embedded by the same weights (any mix of them:
// the nested encoders share one metric space) for the cosine to mean
// anything, so readers refuse an index whose model_id is not the model's.
const (
	IndexMagic   = "MATI"
	IndexVersion = 1
	// MaxIndexCount bounds the entries, MaxIndexDim the embedding width and
	// MaxIndexHeaderLen the msgpack header, so that a lying file cannot make
	// a reader allocate more than the bytes it holds.
	MaxIndexCount     = 1 << 24
	MaxIndexDim       = 1 << 16
	MaxIndexHeaderLen = 256 << 20
	MaxIndexClasses   = 1 << 16
	indexPreamble     = 12
)

// ErrIndex means an index file is invalid: bad magic, version, bounds or
// length. It matches ErrCorrupt, so hosts that refuse a bad file on
// ErrCorrupt (the module's ERR_FORMAT) refuse this one too.
var ErrIndex error = indexError{}

type indexError struct{}

// ErrIndexModel means an index was built by other weights than the model's
// (or for another embedding width). It matches ErrIndex and ErrCorrupt.
var ErrIndexModel error = indexModelError{}

type indexModelError struct{}

func (indexModelError) Error() string        { return "index built by another model" }
func (indexModelError) Is(target error) bool { return target == ErrIndex || target == ErrCorrupt }

func (indexError) Error() string        { return "invalid retrieval index" }
func (indexError) Is(target error) bool { return target == ErrCorrupt }

// IndexHeader is the msgpack document of a .mati file.
type IndexHeader struct {
	ModelID string      `msgpack:"model_id" json:"model_id"` // ModelID of the weights that embedded the images
	Mix     []string    `msgpack:"mix" json:"mix"`           // the encoder: one granularity name per layer
	Dim     int         `msgpack:"dim" json:"dim"`           // embedding width
	Count   int         `msgpack:"count" json:"count"`       // entries
	Classes []string    `msgpack:"classes" json:"classes"`   // label names; labels index it
	Labels  []int       `msgpack:"labels" json:"labels"`     // [count] each entry's class
	Image   *IndexImage `msgpack:"image" json:"image"`       // the stored images' shape, nil when none are stored
	DType   string      `msgpack:"dtype" json:"dtype"`       // "f32" or "f16": how the embeddings are stored
}

// IndexImage is the shape of the images an index stores.
type IndexImage struct {
	Size     int `msgpack:"size" json:"size"`
	Channels int `msgpack:"channels" json:"channels"`
}

// Pixels is C·S·S, the bytes of one stored image.
func (im IndexImage) Pixels() int { return im.Channels * im.Size * im.Size }

// Index is a decoded .mati file.
type Index struct {
	IndexHeader
	Embeddings []float32 // [Count][Dim]; f16 files are widened to f32
	Pixels     []byte    // [Count][C][S][S] when Image is set, else nil
}

// Embedding returns entry i's embedding.
func (ix *Index) Embedding(i int) []float32 { return ix.Embeddings[i*ix.Dim : (i+1)*ix.Dim] }

// ImagePixels returns entry i's stored pixels, or nil when the index has none.
func (ix *Index) ImagePixels(i int) []byte {
	if ix.Image == nil {
		return nil
	}
	n := ix.Image.Pixels()
	return ix.Pixels[i*n : (i+1)*n]
}

// ModelID names the exact weights a header describes: the hex SHA-256 of
// the msgpack of its config and entries, which carry every tensor's CRC-32C.
// Two files with the same ID hold the same network and the same numbers.
func ModelID(h *Header) string {
	b, err := msgpack.Marshal(&struct {
		Config  model.Config `msgpack:"config"`
		Entries []Entry      `msgpack:"entries"`
	}{h.Config, h.Entries})
	if err != nil {
		panic(err) // a Config and Entries hold only numbers and strings
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// check validates a header's fields against each other and the bounds.
func (h *IndexHeader) check() error {
	switch {
	case h.Count < 0 || h.Count > MaxIndexCount:
		return fmt.Errorf("%d entries (want 0 to %d)", h.Count, MaxIndexCount)
	case h.Dim < 1 || h.Dim > MaxIndexDim:
		return fmt.Errorf("embedding width %d (want 1 to %d)", h.Dim, MaxIndexDim)
	case h.DType != "f32" && h.DType != "f16":
		return fmt.Errorf("dtype %q (want f32 or f16)", h.DType)
	case len(h.Classes) < 1 || len(h.Classes) > MaxIndexClasses:
		return fmt.Errorf("%d classes (want 1 to %d)", len(h.Classes), MaxIndexClasses)
	case len(h.Labels) != h.Count:
		return fmt.Errorf("%d labels for %d entries", len(h.Labels), h.Count)
	case h.ModelID == "":
		return errors.New("no model_id")
	}
	for i, l := range h.Labels {
		if l < 0 || l >= len(h.Classes) {
			return fmt.Errorf("entry %d has label %d, but there are %d classes", i, l, len(h.Classes))
		}
	}
	if im := h.Image; im != nil && (im.Size < 1 || im.Size > 4096 || (im.Channels != 1 && im.Channels != 3)) {
		return fmt.Errorf("stored images %d×%d with %d channels (want 1 to 4096 pixels, 1 or 3 channels)", im.Size, im.Size, im.Channels)
	}
	return nil
}

// dataBytes is the size of what follows the header; the bounds in check
// keep it below 2^62.
func (h *IndexHeader) dataBytes() int64 {
	size := int64(4)
	if h.DType == "f16" {
		size = 2
	}
	n := int64(h.Count) * int64(h.Dim) * size
	if h.Image != nil {
		n += int64(h.Count) * int64(h.Image.Pixels())
	}
	return n
}

// WriteIndex writes ix as a .mati file, its embeddings stored as ix.DType
// (f16 rounds them to nearest, ties to even).
func WriteIndex(w io.Writer, ix *Index) error {
	h := ix.IndexHeader
	if err := h.check(); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if len(ix.Embeddings) != h.Count*h.Dim {
		return fmt.Errorf("index: %d embedding values for %d entries of %d", len(ix.Embeddings), h.Count, h.Dim)
	}
	if h.Image != nil && len(ix.Pixels) != h.Count*h.Image.Pixels() {
		return fmt.Errorf("index: %d pixel bytes for %d images of %d", len(ix.Pixels), h.Count, h.Image.Pixels())
	}
	doc, err := msgpack.Marshal(&h)
	if err != nil {
		return fmt.Errorf("index: encode header: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(IndexMagic)
	binary.Write(&buf, binary.LittleEndian, uint32(IndexVersion))
	binary.Write(&buf, binary.LittleEndian, uint32(len(doc)))
	buf.Write(doc)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	var b []byte
	if h.DType == "f16" {
		b = make([]byte, 2*len(ix.Embeddings))
		for i, x := range ix.Embeddings {
			binary.LittleEndian.PutUint16(b[2*i:], safetensors.FloatToHalf(x))
		}
	} else {
		b = make([]byte, 4*len(ix.Embeddings))
		for i, x := range ix.Embeddings {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	if h.Image != nil {
		if _, err := w.Write(ix.Pixels); err != nil {
			return err
		}
	}
	return nil
}

// ReadIndex decodes a whole .mati file, checking every bound before it
// allocates: the magic and version, the header's length and fields (counts,
// labels below the class count, the image shape) and that the file is
// exactly as long as the header says. Embeddings must be finite.
func ReadIndex(b []byte) (*Index, error) {
	if len(b) < indexPreamble {
		return nil, fmt.Errorf("index: %w: %d bytes, the preamble alone is %d", ErrIndex, len(b), indexPreamble)
	}
	if string(b[:4]) != IndexMagic {
		return nil, fmt.Errorf("index: %w: starts with %q, want %q (not a matedge retrieval index)", ErrIndex, b[:4], IndexMagic)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != IndexVersion {
		return nil, fmt.Errorf("index: %w: format version %d (this build reads %d)", ErrIndex, v, IndexVersion)
	}
	n := uint64(binary.LittleEndian.Uint32(b[8:]))
	if n > MaxIndexHeaderLen || n > uint64(len(b)-indexPreamble) {
		return nil, fmt.Errorf("index: %w: header of %d bytes, but the file has %d after the preamble (limit %d)", ErrIndex, n, len(b)-indexPreamble, MaxIndexHeaderLen)
	}
	doc := b[indexPreamble : indexPreamble+n]
	if err := checkMsgpack(doc); err != nil {
		return nil, fmt.Errorf("index: %w: header: %v", ErrIndex, err)
	}
	var ix Index
	if err := msgpack.Unmarshal(doc, &ix.IndexHeader); err != nil {
		return nil, fmt.Errorf("index: %w: decode header: %v", ErrIndex, err)
	}
	h := &ix.IndexHeader
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("index: %w: %v", ErrIndex, err)
	}
	data := b[indexPreamble+n:]
	if want := h.dataBytes(); int64(len(data)) != want {
		return nil, fmt.Errorf("index: %w: %d bytes after the header, want %d for %d entries of %d %s values%s",
			ErrIndex, len(data), want, h.Count, h.Dim, h.DType, imagesNote(h.Image))
	}
	values := h.Count * h.Dim
	ix.Embeddings = make([]float32, values)
	if h.DType == "f16" {
		for i := range ix.Embeddings {
			ix.Embeddings[i] = safetensors.HalfToFloat(binary.LittleEndian.Uint16(data[2*i:]))
		}
		data = data[2*values:]
	} else {
		for i := range ix.Embeddings {
			ix.Embeddings[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		data = data[4*values:]
	}
	for i, x := range ix.Embeddings {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("index: %w: entry %d's embedding holds %g", ErrIndex, i/h.Dim, x)
		}
	}
	if h.Image != nil {
		ix.Pixels = append([]byte(nil), data...)
	}
	return &ix, nil
}

func imagesNote(im *IndexImage) string {
	if im == nil {
		return ""
	}
	return fmt.Sprintf(" and as many %d×%d×%d images", im.Channels, im.Size, im.Size)
}

// CheckModel refuses an index built by other weights than h's, or whose
// embedding width or classes are not the model's.
func (ix *Index) CheckModel(h *Header) error {
	if id := ModelID(h); ix.ModelID != id {
		return fmt.Errorf("%w (its model_id is %.12s…, this model's %.12s…); build it again with this model (matedge index)", ErrIndexModel, ix.ModelID, id)
	}
	if ix.Dim != h.Config.Dim {
		return fmt.Errorf("%w: its embeddings have %d values, the model's %d", ErrIndexModel, ix.Dim, h.Config.Dim)
	}
	return nil
}

// Nearest returns the k entries whose embeddings have the highest dot
// product with q (a unit vector: the cosine), highest first, lowest index on
// ties. It returns fewer when the index has fewer.
func (ix *Index) Nearest(q []float32, k int) []Neighbor {
	k = min(k, ix.Count)
	if k <= 0 {
		return nil
	}
	out := make([]Neighbor, 0, k+1)
	for i := range ix.Count {
		e := ix.Embedding(i)
		var s float32
		for j, x := range q {
			s += x * e[j]
		}
		if len(out) == k && s <= out[k-1].Score {
			continue // not above the worst kept: an equal score at a higher index loses the tie
		}
		// Insert after every kept entry that scores at least s.
		at := len(out)
		for at > 0 && out[at-1].Score < s {
			at--
		}
		out = append(out, Neighbor{})
		copy(out[at+1:], out[at:])
		out[at] = Neighbor{Index: i, Label: ix.Labels[i], Score: s}
		if len(out) > k {
			out = out[:k]
		}
	}
	return out
}

// Neighbor is one entry of an index near a query.
type Neighbor struct {
	Index int     `msgpack:"index" json:"index"`
	Label int     `msgpack:"label" json:"label"`
	Score float32 `msgpack:"score" json:"score"` // cosine similarity
}
