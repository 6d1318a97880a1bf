package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/vmihailenco/msgpack/v5"
)

// testIndex is a small valid index with images: 5 entries of 4 values.
func testIndex(dtype string) *Index {
	ix := &Index{IndexHeader: IndexHeader{ModelID: "abc", Mix: []string{"XL", "XL"}, Dim: 4, Count: 5,
		Classes: []string{"a", "b", "c"}, Labels: []int{0, 2, 1, 2, 0}, Image: &IndexImage{Size: 2, Channels: 1}, DType: dtype}}
	r := model.NewRNG(7)
	for range ix.Count * ix.Dim {
		ix.Embeddings = append(ix.Embeddings, 2*r.Float32()-1)
	}
	for i := range ix.Count {
		model.Normalize(ix.Embedding(i))
	}
	for i := range ix.Count * 4 {
		ix.Pixels = append(ix.Pixels, byte(i*13))
	}
	return ix
}

func encodeIndex(t *testing.T, ix *Index) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteIndex(&buf, ix); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIndexRoundTrip(t *testing.T) {
	for _, dtype := range []string{"f32", "f16"} {
		ix := testIndex(dtype)
		b := encodeIndex(t, ix)
		got, err := ReadIndex(b)
		if err != nil {
			t.Fatalf("%s: %v", dtype, err)
		}
		if !slices.Equal(got.Labels, ix.Labels) || !slices.Equal(got.Classes, ix.Classes) || !bytes.Equal(got.Pixels, ix.Pixels) ||
			got.ModelID != ix.ModelID || *got.Image != *ix.Image || !slices.Equal(got.Mix, ix.Mix) {
			t.Errorf("%s: read %+v, wrote %+v", dtype, got.IndexHeader, ix.IndexHeader)
		}
		tol := 0.0
		if dtype == "f16" {
			tol = 1e-3 // half precision: 11 significant bits
		}
		for i, x := range got.Embeddings {
			if d := math.Abs(float64(x - ix.Embeddings[i])); d > tol {
				t.Fatalf("%s: embedding value %d is %g, wrote %g", dtype, i, x, ix.Embeddings[i])
			}
		}
	}
	// Without images the file is the header and the embeddings only.
	ix := testIndex("f32")
	ix.Image, ix.Pixels = nil, nil
	got, err := ReadIndex(encodeIndex(t, ix))
	if err != nil || got.Pixels != nil || got.ImagePixels(0) != nil {
		t.Fatalf("no images: %v, pixels %v", err, got.Pixels)
	}
}

// TestIndexNearest: highest cosine first, lowest index on ties, at most k.
func TestIndexNearest(t *testing.T) {
	ix := &Index{IndexHeader: IndexHeader{Dim: 2, Count: 5, Labels: []int{0, 1, 2, 1, 0}},
		Embeddings: []float32{1, 0, 0, 1, 0.6, 0.8, 0, 1, -1, 0}}
	got := ix.Nearest([]float32{0, 1}, 3)
	want := []Neighbor{{1, 1, 1}, {3, 1, 1}, {2, 2, 0.8}}
	if !slices.Equal(got, want) {
		t.Errorf("Nearest = %v, want %v", got, want)
	}
	if got := ix.Nearest([]float32{0, 1}, 0); len(got) != 0 {
		t.Errorf("k 0 = %v", got)
	}
	if got := ix.Nearest([]float32{1, 0}, 10); len(got) != 5 || got[0].Index != 0 || got[4].Index != 4 {
		t.Errorf("k past count = %v", got)
	}
}

// rewriteIndexHeader re-encodes b's header after edit, keeping the data.
func rewriteIndexHeader(t *testing.T, b []byte, edit func(*IndexHeader)) []byte {
	t.Helper()
	n := binary.LittleEndian.Uint32(b[8:])
	var h IndexHeader
	if err := msgpack.Unmarshal(b[12:12+n], &h); err != nil {
		t.Fatal(err)
	}
	edit(&h)
	doc, err := msgpack.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), b[:8]...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(doc)))
	out = append(out, doc...)
	return append(out, b[12+n:]...)
}

// TestIndexHostile: damaged and lying files are refused with ErrIndex (and
// so ErrCorrupt) and a message naming the problem; none panics.
func TestIndexHostile(t *testing.T) {
	good := encodeIndex(t, testIndex("f32"))
	header := func(edit func(*IndexHeader)) []byte { return rewriteIndexHeader(t, good, edit) }
	tests := []struct {
		name, want string
		file       []byte
	}{
		{"empty", "preamble", nil},
		{"preamble only", "header of", good[:12]},
		{"bad magic", "not a matedge retrieval index", append([]byte("MATW"), good[4:]...)},
		{"version 2", "format version 2", append(append([]byte("MATI"), 2, 0, 0, 0), good[8:]...)},
		{"header length past the end", "header of", append(append([]byte(nil), good[:8]...), append([]byte{0xff, 0xff, 0xff, 0x0f}, good[12:]...)...)},
		{"truncated data", "bytes after the header", good[:len(good)-1]},
		{"trailing byte", "bytes after the header", append(append([]byte(nil), good...), 0)},
		{"count lies high", "bytes after the header", header(func(h *IndexHeader) {
			h.Count = 6
			h.Labels = append(h.Labels, 0)
		})},
		{"count over the limit", "entries", header(func(h *IndexHeader) { h.Count = MaxIndexCount + 1 })},
		{"negative count", "entries", header(func(h *IndexHeader) { h.Count = -1 })},
		{"labels fewer than count", "labels for", header(func(h *IndexHeader) { h.Labels = h.Labels[:4] })},
		{"label = classes", "label 3", header(func(h *IndexHeader) { h.Labels[1] = 3 })},
		{"negative label", "label -1", header(func(h *IndexHeader) { h.Labels[1] = -1 })},
		{"no classes", "0 classes", header(func(h *IndexHeader) { h.Classes = nil })},
		{"dim 0", "embedding width 0", header(func(h *IndexHeader) { h.Dim = 0 })},
		{"dim huge", "embedding width", header(func(h *IndexHeader) { h.Dim = 1 << 30 })},
		{"dtype", "dtype", header(func(h *IndexHeader) { h.DType = "bf16" })},
		{"f16 with f32 data", "bytes after the header", header(func(h *IndexHeader) { h.DType = "f16" })},
		{"no model id", "model_id", header(func(h *IndexHeader) { h.ModelID = "" })},
		{"image channels", "channels", header(func(h *IndexHeader) { h.Image.Channels = 2 })},
		{"image huge", "pixels", header(func(h *IndexHeader) { h.Image.Size = 1 << 20 })},
		{"images dropped", "bytes after the header", header(func(h *IndexHeader) { h.Image = nil })},
		{"header not msgpack", "header", func() []byte {
			b := append([]byte(nil), good...)
			b[12] = 0xc1 // never used
			return b
		}()},
		{"NaN embedding", "holds NaN", func() []byte {
			b := append([]byte(nil), good...)
			n := binary.LittleEndian.Uint32(b[8:])
			binary.LittleEndian.PutUint32(b[12+n+8:], math.Float32bits(float32(math.NaN())))
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadIndex(tt.file)
			if !errors.Is(err, ErrIndex) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadIndex = %v; want ErrIndex", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadIndex = %q; want it to say %q", err, tt.want)
			}
		})
	}
	// Every truncation is refused, never a panic.
	for n := range len(good) {
		if _, err := ReadIndex(good[:n]); err == nil {
			t.Fatalf("ReadIndex of the first %d of %d bytes succeeded", n, len(good))
		}
	}
}

// TestWriteIndexRefuses: WriteIndex checks what it is given.
func TestWriteIndexRefuses(t *testing.T) {
	for name, edit := range map[string]func(*Index){
		"label ≥ classes":  func(ix *Index) { ix.Labels[0] = 3 },
		"short embeddings": func(ix *Index) { ix.Embeddings = ix.Embeddings[1:] },
		"short pixels":     func(ix *Index) { ix.Pixels = ix.Pixels[1:] },
		"labels fewer":     func(ix *Index) { ix.Labels = ix.Labels[1:] },
		"unknown dtype":    func(ix *Index) { ix.DType = "" },
	} {
		ix := testIndex("f32")
		edit(ix)
		if err := WriteIndex(&bytes.Buffer{}, ix); err == nil {
			t.Errorf("%s: WriteIndex succeeded", name)
		}
	}
}

// TestModelID: the ID follows the weights' bytes (through the CRCs) and
// the config, and nothing else.
func TestModelID(t *testing.T) {
	c := TinyVisionConfig()
	h1 := headerOf(t, Random(c, 1), map[string]string{"a": "1"})
	h1b := headerOf(t, Random(c, 1), map[string]string{"a": "2"})
	h2 := headerOf(t, Random(c, 2), nil)
	id := ModelID(h1)
	if len(id) != 64 || id != ModelID(h1b) {
		t.Errorf("ModelID %q; same weights, other meta: %q", id, ModelID(h1b))
	}
	if id == ModelID(h2) {
		t.Error("two different weights share a ModelID")
	}
}

func headerOf(t *testing.T, w *model.Weights, meta map[string]string) *Header {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, w, model.Tokenizer{}, meta); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
