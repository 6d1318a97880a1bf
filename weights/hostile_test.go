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
	"runtime"
	"slices"
	"strconv"
	"strings"
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
	// With the file size unknown (a download), a data section that would end
	// past 2^63 is refused; one that ends at 2^63-1 is not (it is refused
	// later, by what it would cost).
	bad := rewriteHeader(t, file, func(h *Header) { h.DataSize = math.MaxInt64 })
	if _, err := ParseHeader(bad, -1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ParseHeader(data size 2^63-1, file size unknown) = %v; want ErrTooLarge", err)
	}
	bad = rewriteHeader(t, file, func(h *Header) { h.DataSize = math.MaxInt64 - h.DataStart })
	if _, err := ParseHeader(bad, -1); err != nil {
		t.Errorf("ParseHeader(data ending at 2^63-1, file size unknown) = %v; want nil", err)
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

// fuzzSeed is one input of FuzzParseHeader: header bytes and a file size.
type fuzzSeed struct {
	name string
	b    []byte
	size int64
}

// boundarySeeds are FuzzParseHeader inputs at the edges of every number in
// the header: offsets, lengths and sizes at 0, -1, 2^31, 2^32, 2^63-1, -2^63,
// the data's end and one past it, the exact values where a sum wraps; config
// fields at and past their limits; the tokenizer at and past its bounds; the
// preamble's header length at its limits. Mutating these finds in seconds
// what 120 s of mutating a valid file did not (issue 15, defect 1).
func boundarySeeds(t testing.TB) []fuzzSeed {
	// A one-layer, two-granularity model keeps the header, and the seed
	// files, small: 15 entries.
	c := model.Config{Vocab: 256, Dim: 4, Layers: 1, Heads: 2, FFNWidths: []int{4, 8},
		Context: 8, RopeTheta: 10000, NormEps: 1e-5}
	var buf bytes.Buffer
	if err := Write(&buf, Random(c, 1), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	h0, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(file))
	var seeds []fuzzSeed
	add := func(name string, edit func(*Header)) {
		h := *h0
		h.Entries = slices.Clone(h0.Entries)
		h.Config.FFNWidths = slices.Clone(h0.Config.FFNWidths)
		edit(&h)
		head, err := encodeHeader(&h, Version)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, fuzzSeed{name, head, size})
	}
	ints := map[string]int64{"0": 0, "-1": -1, "2^31": 1 << 31, "2^32": 1 << 32, "2^63-1": math.MaxInt64, "-2^63": math.MinInt64}
	last := len(h0.Entries) - 1
	for _, k := range []int{0, 1, last} {
		e := h0.Entries[k]
		for name, v := range ints {
			add(fmt.Sprintf("entry%d-offset-%s", k, name), func(h *Header) { h.Entries[k].Offset = v })
			add(fmt.Sprintf("entry%d-length-%s", k, name), func(h *Header) { h.Entries[k].Length = v })
		}
		add(fmt.Sprintf("entry%d-offset-data-end", k), func(h *Header) { h.Entries[k].Offset = h.DataSize })
		add(fmt.Sprintf("entry%d-offset-one-past", k), func(h *Header) { h.Entries[k].Offset = h.DataSize - e.Length + 1 })
		add(fmt.Sprintf("entry%d-offset-sum-max", k), func(h *Header) { h.Entries[k].Offset = math.MaxInt64 - e.Length })
		add(fmt.Sprintf("entry%d-offset-sum-wraps", k), func(h *Header) { h.Entries[k].Offset = math.MaxInt64 - e.Length + 1 })
		add(fmt.Sprintf("entry%d-rows-max", k), func(h *Header) { h.Entries[k].RowEnd = math.MaxInt })
		add(fmt.Sprintf("entry%d-rows-negative", k), func(h *Header) { h.Entries[k].RowStart = -1 })
	}
	add("wrapped-then-negative", func(h *Header) {
		h.Entries[0].Offset = math.MaxInt64 - h.Entries[0].Length + 1
		h.Entries[1].Offset = -h.Entries[1].Length
	})
	for name, v := range ints {
		add("data-size-"+name, func(h *Header) { h.DataSize = v })
		add("data-size-"+name+"-file-size-unknown", func(h *Header) { h.DataSize = v })
		seeds[len(seeds)-1].size = -1
	}
	add("data-size-wraps-start", func(h *Header) { h.DataSize = math.MaxInt64 - h.DataStart + 1 })
	add("data-size-exact-minus-one", func(h *Header) { h.DataSize-- })
	add("vocab-max", func(h *Header) { h.Config.Vocab = model.MaxVocab })
	add("vocab-past-max", func(h *Header) { h.Config.Vocab = model.MaxVocab + 1 })
	add("vocab-maxint", func(h *Header) { h.Config.Vocab = math.MaxInt })
	add("layers-past-max", func(h *Header) { h.Config.Layers = 1025 })
	add("context-past-max", func(h *Header) { h.Config.Context = 1<<16 + 1 })
	add("dim-maxint", func(h *Header) { h.Config.Dim = math.MaxInt })
	add("ffn-width-maxint", func(h *Header) { h.Config.FFNWidths[1] = math.MaxInt })
	add("norm-eps-inf", func(h *Header) { h.Config.NormEps = float32(math.Inf(1)) })
	add("norm-eps-nan", func(h *Header) { h.Config.NormEps = float32(math.NaN()) })
	add("rope-theta-inf", func(h *Header) { h.Config.RopeTheta = float32(math.Inf(1)) })
	add("rope-theta-denormal", func(h *Header) { h.Config.RopeTheta = math.Float32frombits(1) })
	add("merge-bomb", func(h *Header) {
		// Consistent but for the tokenizer: room in the vocabulary for the
		// merges, entries planned for it (file size unknown, set below).
		h.Config.Vocab = 512
		h.Entries = Plan(h.Config, F32)
		h.DataSize = h.Entries[len(h.Entries)-1].Offset + h.Entries[len(h.Entries)-1].Length
		h.Tokenizer.Merges = [][2]int{{'a', 'a'}}
		for i := 1; i < 48; i++ {
			h.Tokenizer.Merges = append(h.Tokenizer.Merges, [2]int{255 + i, 255 + i})
		}
	})
	seeds[len(seeds)-1].size = -1
	add("merge-undefined-id", func(h *Header) { h.Tokenizer.Merges = [][2]int{{'a', math.MaxInt}} })
	// The preamble's header length and the file size at their edges.
	head := file[:h0.DataStart]
	for _, n := range []uint32{0, 1, MaxHeaderLen, MaxHeaderLen + 1, math.MaxUint32} {
		b := slices.Clone(head)
		binary.LittleEndian.PutUint32(b[8:], n)
		seeds = append(seeds, fuzzSeed{fmt.Sprintf("header-length-%d", n), b, size})
	}
	// The format versions around those this package reads; the header's
	// checksum flipped; bytes after the msgpack document (issue 15, defect 13).
	for _, v := range []uint32{0, 1, 2, 3, math.MaxUint32} {
		b := slices.Clone(head)
		binary.LittleEndian.PutUint32(b[4:], v)
		seeds = append(seeds, fuzzSeed{fmt.Sprintf("version-%d", v), b, size})
	}
	doc := head[Preamble : Preamble+binary.LittleEndian.Uint32(head[8:])]
	seeds = append(seeds, fuzzSeed{"version-1-header", frameHeader(doc, 1), -1})
	crcFlipped := slices.Clone(head)
	crcFlipped[Preamble+len(doc)] ^= 1
	seeds = append(seeds, fuzzSeed{"header-crc-flipped", crcFlipped, size})
	for name, extra := range map[string][]byte{"nil": {0xc0}, "zero": {0}, "document": doc} {
		trailing := append(slices.Clone(doc), extra...)
		seeds = append(seeds, fuzzSeed{"trailing-" + name, frameHeader(trailing, 2), -1})
		seeds = append(seeds, fuzzSeed{"trailing-" + name + "-version-1", frameHeader(trailing, 1), -1})
	}
	for _, s := range []int64{-1, 0, Preamble, h0.DataStart - 1, h0.DataStart, size - 1, math.MaxInt64, math.MinInt64} {
		seeds = append(seeds, fuzzSeed{fmt.Sprintf("file-size-%d", s), head, s})
	}
	slices.SortFunc(seeds, func(a, b fuzzSeed) int { return strings.Compare(a.name, b.name) })
	return seeds
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzParseHeader/boundary-* equal to
// boundarySeeds. Regenerate with go test ./weights -run TestFuzzSeeds -update.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseHeader")
	seeds := boundarySeeds(t)
	if *update {
		old, _ := filepath.Glob(filepath.Join(dir, "boundary-*"))
		for _, p := range old {
			os.Remove(p)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range seeds {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nint64(%d)\n", strconv.Quote(string(s.b)), s.size)
		path := filepath.Join(dir, "boundary-"+s.name)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale; rerun with -update", path)
		}
	}
	old, _ := filepath.Glob(filepath.Join(dir, "boundary-*"))
	if len(old) != len(seeds) {
		t.Errorf("%d boundary seeds in %s, want %d; rerun with -update", len(old), dir, len(seeds))
	}
}

// FuzzLoad feeds whole files to the three loaders — Load, Verify and an
// Assembler fed in chunks of a fuzzed size — which must agree: all accept
// the file with the same weights, or all refuse it; none panics. Each input
// is also tried with its header checksum set right (withHeaderCRC).
func FuzzLoad(f *testing.F) {
	c := model.Config{Vocab: 258, Dim: 4, Layers: 1, Heads: 2, FFNWidths: []int{4, 8},
		Context: 8, RopeTheta: 10000, NormEps: 1e-5}
	var buf bytes.Buffer
	if err := Write(&buf, Random(c, 1), model.Tokenizer{Merges: [][2]int{{'a', 'b'}}}, nil); err != nil {
		f.Fatal(err)
	}
	file := buf.Bytes()
	f.Add(file, uint16(1000))
	f.Add(file[:len(file)-1], uint16(3))
	for _, s := range boundarySeeds(f) {
		if s.size >= 0 {
			h0, _ := ParseHeader(file, int64(len(file)))
			f.Add(append(append(slices.Clone(s.b), make([]byte, max(0, h0.DataStart-int64(len(s.b))))...), file[h0.DataStart:]...), uint16(4096))
		}
	}
	f.Fuzz(func(t *testing.T, file []byte, chunk uint16) {
		checkLoaders(t, file, chunk)
		checkLoaders(t, withHeaderCRC(file), chunk) // past the header checksum, as in FuzzParseHeader
	})
}

// checkLoaders checks that Load, Verify and an Assembler fed in chunks agree on file.
func checkLoaders(t *testing.T, file []byte, chunk uint16) {
	t.Helper()
	w, h, errLoad := Load(bytes.NewReader(file), int64(len(file)))
	_, errVerify := Verify(bytes.NewReader(file), int64(len(file)))
	if (errLoad == nil) != (errVerify == nil) {
		t.Fatalf("Load = %v, Verify = %v", errLoad, errVerify)
	}
	if errLoad != nil {
		return
	}
	if i := firstNonFinite(w.Data); i >= 0 {
		t.Fatalf("Load accepted a non-finite weight at %d", i)
	}
	a := NewAssembler(h)
	step := max(int(chunk), 1)
	var errs []error
	for off := 0; off < len(file); off += step {
		errs = append(errs, a.Feed(int64(off), file[off:min(off+step, len(file))]))
	}
	full := h.Config.Uniform(h.Config.Granularities() - 1)
	if err := errors.Join(errs...); err != nil || len(a.Missing(full)) != 0 {
		t.Fatalf("Load accepted the file; the assembler in %d-byte chunks: %v, missing %v", step, err, a.Missing(full))
	}
	if !bytesEqualF32(a.Weights.Data, w.Data) {
		t.Fatal("the assembler's weights differ from Load's")
	}
}

// TestWriteRefusesUnreadable: Write refuses what no reader would accept.
func TestWriteRefusesUnreadable(t *testing.T) {
	w := Random(TinyConfig(), 1)
	bomb := model.Tokenizer{Merges: [][2]int{{'a', 'a'}}}
	for i := 1; i < 9; i++ {
		bomb.Merges = append(bomb.Merges, [2]int{255 + i, 255 + i})
	}
	for name, tok := range map[string]model.Tokenizer{
		"piece too long":      bomb,
		"more ids than vocab": {Merges: [][2]int{{'a', 'b'}}},
	} {
		if err := Write(&bytes.Buffer{}, w, tok, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Write = %v; want ErrCorrupt", name, err)
		}
	}
}

// TestReserveAllocatesOnce: reserving the largest mix first allocates its
// weights and nothing for a smaller one that would be copied and dropped.
func TestReserveAllocatesOnce(t *testing.T) {
	c := TinyConfig()
	c.Dim = 128 // weights large beside the fixed cost of naming tensors
	var buf bytes.Buffer
	if err := Write(&buf, Random(c, 1), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	xl := h.Config.Uniform(h.Config.Granularities() - 1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a := NewAssembler(h)
	a.Reserve(xl)
	runtime.ReadMemStats(&after)
	weightBytes := uint64(4 * len(a.Weights.Data))
	if got := after.TotalAlloc - before.TotalAlloc; got > weightBytes+weightBytes/10 {
		t.Errorf("NewAssembler + Reserve(XL) allocated %d bytes; XL's weights are %d", got, weightBytes)
	}
}

// TestArchitecture: a file that names another network is refused with
// ErrArchitecture (which is also ErrCorrupt); the default name is accepted.
func TestArchitecture(t *testing.T) {
	file := tinyFile(t)
	for _, tt := range []struct {
		name string
		want error
	}{
		// A language model's config under the vision name is inconsistent.
		{"", nil}, {MatFormerLM, nil}, {MatViT, ErrCorrupt}, {"MATFORMER-LM", ErrArchitecture}, {"vit-9000", ErrArchitecture},
	} {
		f := rewriteHeader(t, file, func(h *Header) { h.Architecture = tt.name })
		_, err := ParseHeader(f, int64(len(f)))
		if tt.want == nil && err != nil || tt.want != nil && (!errors.Is(err, tt.want) || !errors.Is(err, ErrCorrupt)) {
			t.Errorf("architecture %q: ParseHeader = %v; want %v", tt.name, err, tt.want)
		}
	}
}

// TestVisionFile: a MatViT file round-trips through Write and Load; a text
// reader (the module's engine, via RequireLanguageModel) refuses it, a
// vision reader refuses a language model, and a vision header that lost its
// image config or gained a tokenizer is corrupt.
func TestVisionFile(t *testing.T) {
	c := model.Config{Vocab: 10, Dim: 8, Layers: 2, Heads: 2, FFNWidths: model.NestedWidths(32), Context: 16,
		RopeTheta: 10000, NormEps: 1e-5, Image: &model.ImageConfig{Size: 28, Patch: 7, Channels: 1}}
	w := model.NewWeights(c)
	w.InitRandom(5)
	var buf bytes.Buffer
	if err := Write(&buf, w, model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	got, h, err := Load(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if h.Architecture != MatViT || !slices.Equal(got.Data, w.Data) || !slices.Equal(got.PatchEmbed, w.PatchEmbed) {
		t.Fatalf("round trip: architecture %q, weights equal %v", h.Architecture, slices.Equal(got.Data, w.Data))
	}
	if err := h.RequireLanguageModel(); !errors.Is(err, ErrArchitecture) || !strings.Contains(err.Error(), "vision model") {
		t.Errorf("RequireLanguageModel on a vision file = %v", err)
	}
	if err := h.RequireVisionModel(); err != nil {
		t.Errorf("RequireVisionModel on a vision file = %v", err)
	}
	lm, err := ParseHeader(tinyFile(t), int64(len(tinyFile(t))))
	if err != nil {
		t.Fatal(err)
	}
	if err := lm.RequireVisionModel(); !errors.Is(err, ErrArchitecture) {
		t.Errorf("RequireVisionModel on a language model = %v", err)
	}
	for name, edit := range map[string]func(*Header){
		"no image config":        func(h *Header) { h.Config.Image = nil },
		"a tokenizer":            func(h *Header) { h.Tokenizer.Merges = [][2]int{{97, 98}} },
		"named a language model": func(h *Header) { h.Architecture = MatFormerLM },
	} {
		f := rewriteHeader(t, file, edit)
		if _, err := ParseHeader(f, int64(len(f))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: ParseHeader = %v; want ErrCorrupt", name, err)
		}
	}
}

// TestHeaderChecksum: every single-bit flip in a version-2 file's preamble,
// header and header checksum is refused. Version 1 had no header checksum,
// and a quarter of such flips were accepted, half of them changing the
// tokenizer silently (issue 15, defect 13).
func TestHeaderChecksum(t *testing.T) {
	file := tinyFile(t)
	need, err := HeaderLen(file)
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(file[4:]); v != Version || Version != 2 {
		t.Fatalf("Write wrote version %d; want 2", v)
	}
	var accepted []string
	for i := range need {
		for bit := range 8 {
			b := slices.Clone(file[:need])
			b[i] ^= 1 << bit
			if _, err := ParseHeader(b, int64(len(file))); err == nil {
				accepted = append(accepted, fmt.Sprintf("byte %d bit %d", i, bit))
			}
		}
	}
	if len(accepted) > 0 {
		t.Errorf("%d of %d single-bit flips accepted: %v", len(accepted), 8*need, accepted[:min(5, len(accepted))])
	}
	flipped := slices.Clone(file)
	flipped[Preamble+3] ^= 0x10
	_, err = ParseHeader(flipped, int64(len(flipped)))
	if !errors.Is(err, ErrHeaderChecksum) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("ParseHeader(flipped header byte) = %v; want ErrHeaderChecksum, which is also ErrCorrupt", err)
	}
}

// TestVersion1 reads a version-1 file (no header checksum), as files
// written before version 2 are, and Upgrade rewrites it as version 2 with
// the data section byte for byte.
func TestVersion1(t *testing.T) {
	file := tinyFile(t)
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	head, err := encodeHeader(h, 1)
	if err != nil {
		t.Fatal(err)
	}
	v1 := append(head, file[h.DataStart:]...)
	w, h1, err := Load(bytes.NewReader(v1), int64(len(v1)))
	if err != nil {
		t.Fatalf("Load(version 1) = %v", err)
	}
	if h1.FormatVersion != 1 || h.FormatVersion != 2 {
		t.Errorf("FormatVersion = %d (version-1 file), %d (Write's); want 1, 2", h1.FormatVersion, h.FormatVersion)
	}
	if want := Random(TinyConfig(), 7); !slices.Equal(w.Data, want.Data) {
		t.Error("version-1 weights differ from version 2's")
	}
	var out bytes.Buffer
	up, err := Upgrade(&out, bytes.NewReader(v1), int64(len(v1)))
	if err != nil {
		t.Fatalf("Upgrade = %v", err)
	}
	if !bytes.Equal(out.Bytes(), file) || up.FormatVersion != 2 || up.DataStart != h.DataStart {
		t.Errorf("Upgrade(version 1) is not the file Write gives (%d bytes, want %d; version %d, data at %d)", out.Len(), len(file), up.FormatVersion, up.DataStart)
	}
	damaged := slices.Clone(v1)
	damaged[len(damaged)-1] ^= 1
	if _, err := Upgrade(io.Discard, bytes.NewReader(damaged), int64(len(damaged))); !errors.Is(err, ErrChecksum) {
		t.Errorf("Upgrade(damaged data) = %v; want ErrChecksum", err)
	}
}

// TestTrailingBytes: the header length must end exactly at the end of the
// msgpack document, in every version; bytes after it were ignored before.
func TestTrailingBytes(t *testing.T) {
	file := tinyFile(t)
	h, err := ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	doc := file[Preamble : Preamble+binary.LittleEndian.Uint32(file[8:])]
	for _, version := range []int{1, 2} {
		for name, extra := range map[string][]byte{"nil": {0xc0}, "zero byte": {0}, "second document": doc} {
			head := frameHeader(append(slices.Clone(doc), extra...), version)
			b := append(head, file[h.DataStart:]...)
			if _, err := ParseHeader(b, int64(len(b))); !errors.Is(err, ErrCorrupt) {
				t.Errorf("version %d, %s after the document: ParseHeader = %v; want ErrCorrupt", version, name, err)
			}
		}
	}
}
