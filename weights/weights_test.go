package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
)

var update = flag.Bool("update", false, "rewrite testdata/tiny.matw")

func tinyFile(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, Random(TinyConfig(), 7), model.Tokenizer{}, map[string]string{"kind": "random", "seed": "7"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	file := tinyFile(t)
	w, h, err := Load(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := Random(TinyConfig(), 7)
	if !slices.Equal(w.Data, want.Data) {
		t.Fatal("Load(Write(w)) != w")
	}
	if h.DataStart%Align != 0 || h.DataStart+h.DataSize != int64(len(file)) {
		t.Fatalf("DataStart %d, DataSize %d, file %d bytes", h.DataStart, h.DataSize, len(file))
	}
}

// TestTinyFixture keeps testdata/tiny.matw (the fuzz seed and the file the
// host tests use) equal to what the writer produces. Regenerate with
// go test ./weights -run TestTinyFixture -update.
func TestTinyFixture(t *testing.T) {
	path := filepath.Join("testdata", "tiny.matw")
	file := tinyFile(t)
	if *update {
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, file) {
		t.Fatal("testdata/tiny.matw differs from Write's output; rerun with -update")
	}
}

// TestNestedPrefix checks the layout's promise: uniform granularity g is one
// byte range starting at DataStart, each larger one a longer prefix, and the
// largest is the whole data section.
func TestNestedPrefix(t *testing.T) {
	file := tinyFile(t)
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	c := h.Config
	var prev int64
	for g := range c.Granularities() {
		r := h.Ranges(c.Uniform(g))
		if len(r) != 1 || r[0].Offset != h.DataStart || r[0].Length <= prev {
			t.Fatalf("Ranges(uniform %s) = %v; want one range from %d longer than %d", c.GranularityName(g), r, h.DataStart, prev)
		}
		prev = r[0].Length
	}
	if prev != h.DataSize {
		t.Fatalf("XL needs %d bytes, data is %d", prev, h.DataSize)
	}
	// A mix needs section 0 plus one run per layer and extra granularity.
	mix := model.Mix{0, 3, 1}
	r := h.Ranges(mix)
	want := h.Ranges(c.Uniform(0))[0].Length
	for _, g := range mix {
		want += int64(3 * (c.FFNWidths[g] - c.FFNWidths[0]) * c.Dim * 4) // gate, up, down rows, f32
	}
	if got := Bytes(r); got != want {
		t.Fatalf("Bytes(Ranges(%v)) = %d; want %d", mix, got, want)
	}
}

func TestAssemblerOutOfOrder(t *testing.T) {
	file := tinyFile(t)
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	a := NewAssembler(h)
	// Feed the data backwards in odd-sized, overlapping chunks.
	for end := int64(len(file)); end > h.DataStart; end -= 997 {
		start := max(h.DataStart-5, end-1500)
		if err := a.Feed(start, file[start:end]); err != nil {
			t.Fatal(err)
		}
	}
	if m := a.Missing(h.Config.Uniform(3)); len(m) != 0 {
		t.Fatalf("Missing after feeding everything = %v", m)
	}
	if !slices.Equal(a.Weights.Data, Random(TinyConfig(), 7).Data) {
		t.Fatal("assembled weights differ from the written ones")
	}
}

func TestAssemblerChecksum(t *testing.T) {
	file := tinyFile(t)
	h, _ := ParseHeader(file, int64(len(file)))
	bad := slices.Clone(file)
	e := h.Entries[1]
	bad[h.DataStart+e.Offset+3] ^= 0x40
	a := NewAssembler(h)
	err := a.Feed(0, bad)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Feed(corrupt) = %v; want ErrChecksum", err)
	}
	if missing := a.Missing(h.Config.Uniform(0)); len(missing) != 1 || missing[0].Offset != h.DataStart+e.Offset {
		t.Fatalf("after a checksum error Missing = %v; want the bad entry %q again", missing, e.Tensor)
	}
	if err := a.Feed(h.DataStart+e.Offset, file[h.DataStart+e.Offset:h.DataStart+e.Offset+e.Length]); err != nil {
		t.Fatalf("refeeding the good bytes = %v", err)
	}
}

// rewriteHeader returns file with its header replaced by edit(header).
func rewriteHeader(t *testing.T, file []byte, edit func(*Header)) []byte {
	t.Helper()
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	edit(h)
	head, err := encodeHeader(h, h.FormatVersion)
	if err != nil {
		t.Fatal(err)
	}
	return append(head, file[h.DataStart:]...)
}

func TestBadFiles(t *testing.T) {
	file := tinyFile(t)
	version := slices.Clone(file)
	binary.LittleEndian.PutUint32(version[4:], Version+1)
	hugeHeader := slices.Clone(file)
	binary.LittleEndian.PutUint32(hugeHeader[8:], MaxHeaderLen+1)
	checksum := slices.Clone(file)
	checksum[len(checksum)-1] ^= 1
	tests := []struct {
		name string
		file []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"truncated preamble", file[:7], ErrTruncated},
		{"truncated header", file[:100], ErrTruncated},
		{"truncated data", file[:len(file)-10], ErrTruncated},
		{"wrong magic", append([]byte("GGUF"), file[4:]...), ErrMagic},
		{"newer version", version, ErrVersion},
		{"huge header length", hugeHeader, ErrTooLarge},
		{"checksum", checksum, ErrChecksum},
		{"tensor past end", rewriteHeader(t, file, func(h *Header) { h.Entries[len(h.Entries)-1].Offset += 64 }), ErrCorrupt},
		{"data size lies", rewriteHeader(t, file, func(h *Header) { h.DataSize += 1 << 20 }), ErrTruncated},
		{"overlapping entries", rewriteHeader(t, file, func(h *Header) { h.Entries[2].Offset = h.Entries[1].Offset }), ErrCorrupt},
		{"missing tensor", rewriteHeader(t, file, func(h *Header) { h.Entries = h.Entries[:len(h.Entries)-1] }), ErrCorrupt},
		{"wrong shape", rewriteHeader(t, file, func(h *Header) { h.Entries[0].Shape = []int{1, 1} }), ErrCorrupt},
		{"bad config", rewriteHeader(t, file, func(h *Header) { h.Config.Heads = 5 }), ErrCorrupt},
		{"unknown dtype", rewriteHeader(t, file, func(h *Header) { h.Entries[0].DType = "q4" }), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load(bytes.NewReader(tt.file), int64(len(tt.file)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load = %v; want %v", err, tt.want)
			}
		})
	}
}

// FuzzParseHeader feeds arbitrary bytes to the header parser: it must return
// a header or an error, never panic or allocate without bound. The corpus is
// seeded from testdata/tiny.matw and its mutations, and with the boundary
// values of testdata/fuzz/FuzzParseHeader (boundarySeeds, TestFuzzSeeds).
// Almost every mutation of a version-2 header fails its checksum, so each
// input is also parsed with its checksum set right (withHeaderCRC): the
// fuzzer then reaches the decoder and the checks behind the checksum.
func FuzzParseHeader(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "tiny.matw"))
	if err != nil {
		f.Fatal(err)
	}
	h, err := ParseHeader(seed, int64(len(seed)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed[:h.DataStart], int64(len(seed)))
	f.Add(seed[:Preamble], int64(-1))
	f.Add(seed[:h.DataStart/2], int64(len(seed)))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		checkParsedHeader(t, b, size)
		checkParsedHeader(t, withHeaderCRC(b), size)
	})
}

// withHeaderCRC returns b with its version-2 header checksum recomputed, or
// b itself when b is not that long or not version 2.
func withHeaderCRC(b []byte) []byte {
	if len(b) < Preamble || binary.LittleEndian.Uint32(b[4:]) != 2 {
		return b
	}
	end := Preamble + uint64(binary.LittleEndian.Uint32(b[8:]))
	if uint64(len(b)) < end+HeaderCRCLen {
		return b
	}
	out := slices.Clone(b)
	binary.LittleEndian.PutUint32(out[end:], Checksum(out[:end]))
	return out
}

// checkParsedHeader checks what ParseHeader promises about a header it accepts.
func checkParsedHeader(t *testing.T, b []byte, size int64) {
	t.Helper()
	h, err := ParseHeader(b, size)
	if err != nil {
		return
	}
	// A header that validates describes a data section inside the file
	// (when its size is known), every entry inside the data section, and
	// every range of every submodel inside the entries, with no sum wrapping.
	if h.DataStart < Preamble || h.DataSize < 0 || h.DataSize > math.MaxInt64-h.DataStart {
		t.Fatalf("data [%d, +%d) wraps", h.DataStart, h.DataSize)
	}
	dataEnd := h.DataStart + h.DataSize
	if size >= 0 && dataEnd > size {
		t.Fatalf("data [%d, %d) past the file's %d bytes", h.DataStart, dataEnd, size)
	}
	for _, e := range h.Entries {
		if e.Offset < 0 || e.Length <= 0 || e.Offset > h.DataSize-e.Length {
			t.Fatalf("entry %q at %d, length %d, outside data of %d bytes", e.Tensor, e.Offset, e.Length, h.DataSize)
		}
	}
	for g := range h.Config.Granularities() {
		for _, r := range h.Ranges(h.Config.Uniform(g)) {
			if r.Offset < h.DataStart || r.Length < 0 || r.End() < r.Offset || r.End() > dataEnd {
				t.Fatalf("range %v outside data [%d, %d)", r, h.DataStart, dataEnd)
			}
		}
	}
	// The tokenizer's pieces are bounded, so building them is cheap.
	if n := len(h.Tokenizer.Piece(h.Tokenizer.Size() - 1)); n > model.MaxPieceLen {
		t.Fatalf("last piece is %d bytes", n)
	}
}

func TestHeaderClaimsHugeArray(t *testing.T) {
	// A header whose entries array claims 2^32-1 elements in a few bytes must be
	// refused before anything is allocated for it.
	head := []byte{0x81, 0xa7, 'e', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80}
	file := append([]byte(Magic), 1, 0, 0, 0, byte(len(head)), 0, 0, 0)
	file = append(file, head...)
	if _, err := ParseHeader(file, -1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ParseHeader(huge array) = %v; want ErrCorrupt", err)
	}
}

// TestAssemblerMemory: the assembled weights hold only the FFN rows of the
// mix reserved or fed, so memory follows the plan.
func TestAssemblerMemory(t *testing.T) {
	file := tinyFile(t)
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	c := h.Config
	floats := func(mix model.Mix) int { return c.NonEmbeddingParams(mix) + 2*c.Vocab*c.Dim }
	a := NewAssembler(h)
	s := c.Uniform(0)
	for _, r := range h.Ranges(s) {
		if err := a.Feed(r.Offset, file[r.Offset:r.End()]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := len(a.Weights.Data), floats(s); got != want {
		t.Fatalf("after feeding S: %d floats allocated; want %d", got, want)
	}
	mix := model.Mix{0, 3, 1}
	a.Reserve(mix)
	if got, want := len(a.Weights.Data), floats(mix); got != want {
		t.Fatalf("after Reserve(%v): %d floats; want %d", mix, got, want)
	}
	for _, r := range a.Missing(mix) {
		if err := a.Feed(r.Offset, file[r.Offset:r.End()]); err != nil {
			t.Fatal(err)
		}
	}
	// The rows fed before growing survived it: the mix computes what the full weights compute.
	full, _, err := Load(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int{1, 2, 3}
	got, want := model.NewState(c), model.NewState(c)
	for pos, tok := range tokens {
		model.Forward(a.Weights, got, mix, tok, pos)
		model.Forward(full, want, mix, tok, pos)
	}
	if !slices.Equal(got.Logits, want.Logits) {
		t.Fatal("logits from the grown weights differ from the fully loaded ones")
	}
}
