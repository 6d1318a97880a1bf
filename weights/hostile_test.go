package weights

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"testing"

	"github.com/matedge/matedge/model"
)

// Regression tests for issue 15: files crafted to get past the checks.

// TestEntryOffsetOverflow: an entry whose offset + length wraps past 2^63
// must be refused, and no loader may report success without verifying it.
func TestEntryOffsetOverflow(t *testing.T) {
	file := tinyFile(t)
	tests := []struct {
		name string
		edit func(*Header)
	}{
		{"offset wraps to negative", func(h *Header) {
			e := &h.Entries[0]
			e.Offset = math.MaxInt64 - e.Length + 2
		}},
		{"offset max int64", func(h *Header) { h.Entries[0].Offset = math.MaxInt64 }},
		{"offset min int64", func(h *Header) { h.Entries[0].Offset = math.MinInt64 }},
		{"offset -1", func(h *Header) { h.Entries[0].Offset = -1 }},
		{"negative after a wrapped entry", func(h *Header) {
			// The wrapped end of entry 0 is negative, so a later entry may start
			// anywhere at or after it: overlapping, or before the data.
			e := &h.Entries[0]
			e.Offset = math.MaxInt64 - e.Length + 1
			h.Entries[1].Offset = -h.Entries[1].Length
		}},
		{"last entry offset at data end", func(h *Header) { h.Entries[len(h.Entries)-1].Offset = h.DataSize }},
		{"last entry one byte past data end", func(h *Header) {
			e := &h.Entries[len(h.Entries)-1]
			e.Offset = h.DataSize - e.Length + 1
		}},
		{"offset 2^63 - data size", func(h *Header) { h.Entries[0].Offset = math.MaxInt64 - h.DataSize + 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := rewriteHeader(t, file, tt.edit)
			if _, err := ParseHeader(bad, int64(len(bad))); !errors.Is(err, ErrCorrupt) {
				t.Errorf("ParseHeader = %v; want ErrCorrupt", err)
			}
			if _, _, err := Load(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Load = %v; want ErrCorrupt", err)
			}
			if _, err := Verify(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify = %v; want ErrCorrupt", err)
			}
		})
	}
}

// TestLoadNeedsEveryEntry: whatever the header validation lets through, the
// loaders fail unless every entry ended verified. A zero-length entry (which
// Validate refuses) is never completed by any bytes.
func TestLoadNeedsEveryEntry(t *testing.T) {
	file := tinyFile(t)
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	h.Entries[0].Length = 0
	r := bytes.NewReader(file)
	if _, err := loadEntries(r, h); !errors.Is(err, ErrCorrupt) {
		t.Errorf("loadEntries(entry never verified) = %v; want ErrCorrupt", err)
	}
	if err := verifyEntries(r, h); !errors.Is(err, ErrCorrupt) {
		t.Errorf("verifyEntries(entry never verified) = %v; want ErrCorrupt", err)
	}
}

// TestDataSizeOverflow: data sizes near 2^63 must not wrap the file-size
// check; loading refuses them with an error, never a panic.
func TestDataSizeOverflow(t *testing.T) {
	file := tinyFile(t)
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{math.MaxInt64, math.MaxInt64 - h.DataStart + 1, math.MaxInt64 - h.DataStart, 1 << 62, 1 << 32} {
		bad := rewriteHeader(t, file, func(h *Header) { h.DataSize = size })
		if _, err := ParseHeader(bad, int64(len(bad))); !errors.Is(err, ErrTruncated) {
			t.Errorf("data size %d: ParseHeader = %v; want ErrTruncated", size, err)
		}
		if _, _, err := Load(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrTruncated) {
			t.Errorf("data size %d: Load = %v; want ErrTruncated", size, err)
		}
		if _, err := Verify(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrTruncated) {
			t.Errorf("data size %d: Verify = %v; want ErrTruncated", size, err)
		}
	}
	// A file size smaller than the data start.
	if _, err := ParseHeader(file, h.DataStart-1); !errors.Is(err, ErrTruncated) {
		t.Errorf("ParseHeader(file size %d < data start %d) = %v; want ErrTruncated", h.DataStart-1, h.DataStart, err)
	}
}

// TestTokenizerBombHeader: a header whose merges double a piece 48 times is
// refused by the header parser, before any piece is built.
func TestTokenizerBombHeader(t *testing.T) {
	file := tinyFile(t)
	bad := rewriteHeader(t, file, func(h *Header) {
		h.Config.Vocab = 512
		h.Entries = Plan(h.Config, F32)
		h.DataSize = h.Entries[len(h.Entries)-1].Offset + h.Entries[len(h.Entries)-1].Length
		h.Tokenizer.Merges = [][2]int{{'a', 'a'}}
		for i := 1; i < 48; i++ {
			h.Tokenizer.Merges = append(h.Tokenizer.Merges, [2]int{255 + i, 255 + i})
		}
	})
	if _, err := ParseHeader(bad, -1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ParseHeader(merge bomb) = %v; want ErrCorrupt", err)
	}
}

// TestNonFiniteWeights: NaN or ±Inf stored with a correct checksum is refused
// when the entry is verified, by every loader, with ErrNonFinite (which is
// also ErrCorrupt, so hosts report it as a bad file).
func TestNonFiniteWeights(t *testing.T) {
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		w := Random(TinyConfig(), 7)
		w.Layers[1].Up[5] = v // a nested tensor, granularity-0 rows
		var buf bytes.Buffer
		if err := writeUnchecked(&buf, w); err != nil {
			t.Fatal(err)
		}
		file := buf.Bytes()
		if _, _, err := Load(bytes.NewReader(file), int64(len(file))); !errors.Is(err, ErrNonFinite) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v: Load = %v; want ErrNonFinite and ErrCorrupt", v, err)
		}
		if _, err := Verify(bytes.NewReader(file), int64(len(file))); !errors.Is(err, ErrNonFinite) {
			t.Errorf("%v: Verify = %v; want ErrNonFinite", v, err)
		}
		h, err := ParseHeader(file, int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int{len(file), 3} { // whole entries, and bytes split across floats
			a := NewAssembler(h)
			var errs []error
			for off := 0; off < len(file); off += chunk {
				if err := a.Feed(int64(off), file[off:min(off+chunk, len(file))]); err != nil {
					errs = append(errs, err)
				}
			}
			if err := errors.Join(errs...); !errors.Is(err, ErrNonFinite) {
				t.Errorf("%v: Feed in %d-byte chunks = %v; want ErrNonFinite", v, chunk, err)
			}
			if len(a.Missing(h.Config.Uniform(0))) == 0 {
				t.Errorf("%v: the non-finite entry counts as verified", v)
			}
		}
		// The writer refuses to produce such a file in the first place.
		if err := Write(&bytes.Buffer{}, w, model.Tokenizer{}, nil); !errors.Is(err, ErrNonFinite) {
			t.Errorf("%v: Write = %v; want ErrNonFinite", v, err)
		}
	}
}

// writeUnchecked writes w the way Write does but without its refusal of
// non-finite values, so tests can craft files with them.
func writeUnchecked(buf *bytes.Buffer, w *model.Weights) error {
	return writeFile(buf, w, model.Tokenizer{}, nil, false)
}

// TestManyLayersLinear: loading and writing cost time linear in the number of
// tensors. Allocations stand in for time (they are deterministic): a file
// with 8× the layers may allocate at most about 8× as much, not 64×.
func TestManyLayersLinear(t *testing.T) {
	cfg := func(layers int) model.Config {
		c := TinyConfig()
		c.Dim, c.Heads, c.Vocab, c.FFNWidths, c.Layers = 8, 2, 256, model.NestedWidths(32), layers
		return c
	}
	measure := func(layers int) (write, load float64) {
		w := Random(cfg(layers), 1)
		var buf bytes.Buffer
		write = testing.AllocsPerRun(1, func() {
			buf.Reset()
			if err := Write(&buf, w, model.Tokenizer{}, nil); err != nil {
				t.Fatal(err)
			}
		})
		file := buf.Bytes()
		load = testing.AllocsPerRun(1, func() {
			if _, _, err := Load(bytes.NewReader(file), int64(len(file))); err != nil {
				t.Fatal(err)
			}
		})
		return write, load
	}
	w16, l16 := measure(16)
	w128, l128 := measure(128)
	if r := w128 / w16; r > 16 {
		t.Errorf("Write: 128 layers allocate %.0f times, 16 layers %.0f: %.1f× for 8× the layers", w128, w16, r)
	}
	if r := l128 / l16; r > 16 {
		t.Errorf("Load: 128 layers allocate %.0f times, 16 layers %.0f: %.1f× for 8× the layers", l128, l16, r)
	}
}

// TestAssemblerStagesNothing: bytes fed in pieces go straight into the
// weights; the assembler allocates no per-entry staging buffer (issue 15,
// defect 5: a model that fits the module's budget died staging its entries).
func TestAssemblerStagesNothing(t *testing.T) {
	c := TinyConfig()
	c.Vocab, c.Dim = 4096, 64 // embed and head: 1 MiB entries each
	w := Random(c, 3)
	var buf bytes.Buffer
	if err := Write(&buf, w, model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	a := NewAssembler(h)
	a.Reserve(c.Uniform(c.Granularities() - 1))
	const chunk = 4093 // odd, so pieces split floats
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// Feed backwards, so no entry arrives in order.
	for end := len(file); end > 0; end -= chunk {
		start := max(0, end-chunk)
		if err := a.Feed(int64(start), file[start:end]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(h.DataSize/8); got > limit {
		t.Errorf("feeding %d bytes of data allocated %d bytes; want at most %d", h.DataSize, got, limit)
	}
	if m := a.Missing(c.Uniform(c.Granularities() - 1)); len(m) != 0 {
		t.Fatalf("Missing after feeding everything = %v", m)
	}
	if !bytesEqualF32(a.Weights.Data, w.Data) {
		t.Fatal("assembled weights differ from the written ones")
	}
}

func bytesEqualF32(a, b []float32) bool { return bytes.Equal(EncodeF32(a), EncodeF32(b)) }

// TestVerifyMemory: Verify checks every checksum of a file without holding
// its data or its weights in memory.
func TestVerifyMemory(t *testing.T) {
	c := TinyConfig()
	c.Vocab, c.Dim = 8192, 128 // 4 MiB embed and head
	var buf bytes.Buffer
	if err := Write(&buf, Random(c, 3), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h, err := Verify(bytes.NewReader(file), int64(len(file)))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(h.DataSize/4); got > limit {
		t.Errorf("Verify of %d bytes of data allocated %d bytes; want at most %d", h.DataSize, got, limit)
	}
	bad := bytes.Clone(file)
	bad[len(bad)-5] ^= 0x10
	if _, err := Verify(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrChecksum) {
		t.Errorf("Verify(flipped byte) = %v; want ErrChecksum", err)
	}
}
