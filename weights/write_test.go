package weights

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/matedge/matedge/model"
)

// writeInMemory is the writer before it streamed: every entry encoded in
// memory, then the header and the data. The streaming writer must give the
// same bytes.
func writeInMemory(w *model.Weights, tok model.Tokenizer, meta map[string]string) []byte {
	h := Header{Config: w.Config, Tokenizer: model.Tokenizer{Merges: tok.Merges}, Meta: meta}
	if w.Config.IsVision() {
		h.Architecture = MatViT
	}
	h.Entries = Plan(w.Config, F32)
	byName := map[string]model.Tensor{}
	for _, t := range w.Tensors() {
		byName[t.Name] = t
	}
	data := make([][]byte, len(h.Entries))
	for i := range h.Entries {
		e := &h.Entries[i]
		t := byName[e.Tensor]
		data[i] = EncodeF32(t.Data[e.RowStart*e.rowSize() : e.RowEnd*e.rowSize()])
		e.CRC32C = Checksum(data[i])
		h.DataSize = e.Offset + e.Length
	}
	head, err := encodeHeader(&h, Version)
	if err != nil {
		panic(err)
	}
	return bytes.Join(append([][]byte{head}, data...), nil)
}

// TestStreamingWriterSameBytes: Write, which streams, gives the bytes of the
// in-memory writer it replaced, for a language model with a tokenizer and
// meta, a model with routers, a vision model and (unchecked) one with a NaN;
// WriteFile puts the same bytes in a file.
func TestStreamingWriterSameBytes(t *testing.T) {
	tok := model.Tokenizer{Merges: [][2]int{{'a', 'b'}, {256, 'c'}}}
	vocab := TinyConfig()
	vocab.Vocab = 260 // room for tok's two merges
	nan := Random(TinyConfig(), 4)
	nan.Layers[1].Up[5] = float32(math.NaN())
	cases := []struct {
		name  string
		w     *model.Weights
		tok   model.Tokenizer
		meta  map[string]string
		check bool
	}{
		{"language", Random(vocab, 7), tok, map[string]string{"kind": "random", "seed": "7"}, true},
		{"routed", RandomRouted(Random(TinyConfig(), 7), 3), model.Tokenizer{}, nil, true},
		{"vision", Random(TinyVisionConfig(), 2), model.Tokenizer{}, map[string]string{"classes": "a,b"}, true},
		{"NaN, unchecked", nan, model.Tokenizer{}, nil, false},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		if err := writeFile(&buf, c.w, c.tok, c.meta, c.check); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if want := writeInMemory(c.w, c.tok, c.meta); !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: the streaming writer's %d bytes differ from the in-memory writer's %d", c.name, buf.Len(), len(want))
		}
		if !c.check {
			continue
		}
		path := filepath.Join(t.TempDir(), "m.matw")
		size, err := WriteFile(path, c.w, c.tok, c.meta)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, buf.Bytes()) || size != int64(len(got)) {
			t.Errorf("%s: WriteFile wrote %d bytes (said %d); want Write's %d", c.name, len(got), size, buf.Len())
		}
	}
}

// TestWriteStreams: writing a model allocates a small fraction of the
// file's size (the header, one chunk and bookkeeping), not a copy of it.
func TestWriteStreams(t *testing.T) {
	c := TinyConfig()
	c.Dim, c.FFNWidths, c.Vocab = 128, model.NestedWidths(1024), 1024 // about 5 MiB of weights
	w := Random(c, 1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := &countingWriter{w: discard{}}
	if err := Write(n, w, model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte file: %d bytes allocated", n.n, alloc)
	if alloc > uint64(n.n)/4 {
		t.Errorf("writing a %d-byte file allocated %d bytes; want under a quarter of it", n.n, alloc)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// TestWriterRefuses: the Writer refuses rows that do not match the header
// (size, checksum), entries past the header's, and a Close before the last
// entry; after an error it stays failed.
func TestWriterRefuses(t *testing.T) {
	w := Random(TinyConfig(), 1)
	h := Header{Config: w.Config, Entries: Plan(w.Config, F32)}
	rows := make([][]float32, len(h.Entries))
	for i := range h.Entries {
		e := &h.Entries[i]
		t, _ := w.Tensor(e.Tensor)
		rows[i] = t.Data[e.RowStart*e.rowSize() : e.RowEnd*e.rowSize()]
		e.CRC32C = EntryChecksum(rows[i])
		h.DataSize = e.Offset + e.Length
	}
	start := func() *Writer {
		wr, err := NewWriter(&bytes.Buffer{}, &h)
		if err != nil {
			t.Fatal(err)
		}
		return wr
	}

	wr := start()
	if err := wr.WriteEntry(rows[0][1:]); err == nil {
		t.Error("rows one float short were written")
	}
	if err := wr.WriteEntry(rows[0]); err == nil {
		t.Error("a writer that failed took the next entry")
	}

	wr = start()
	changed := append([]float32(nil), rows[0]...)
	changed[0]++
	if err := wr.WriteEntry(changed); err == nil {
		t.Error("rows that do not match the header's checksum were written")
	}

	wr = start()
	for _, r := range rows[:len(rows)-1] {
		if err := wr.WriteEntry(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(); err == nil {
		t.Error("Close before the last entry succeeded")
	}
	if err := wr.WriteEntry(rows[len(rows)-1]); err != nil {
		t.Fatal(err)
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wr.WriteEntry(rows[0]); err == nil {
		t.Error("an entry past the header's last was written")
	}
}

// TestWriteAtomicFailure: a write that fails leaves the file before it as
// it was and no temporary file behind.
func TestWriteAtomicFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.matw")
	if err := WriteFileAtomic(path, []byte("before")); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk full")
	err := WriteAtomic(path, 0o644, func(out io.Writer) error {
		out.Write(make([]byte, 1<<20)) // past the buffer: the temporary file has bytes
		return broken
	})
	if !errors.Is(err, broken) {
		t.Fatalf("WriteAtomic = %v; want the write's error", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "before" {
		t.Errorf("after a failed write the file holds %q; want it as it was", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d files after a failed write; want 1", len(entries))
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("WriteFileAtomic's file mode = %v, %v; want 0600", info.Mode(), err)
	}
}

// BenchmarkWrite: the streaming writer, which encodes and checksums each
// entry twice (a first pass for the header's checksums), against the
// in-memory writer it replaced, on a 26 MB model.
func BenchmarkWrite(b *testing.B) {
	c := TinyConfig()
	c.Dim, c.Layers, c.FFNWidths, c.Vocab = 256, 4, model.NestedWidths(1024), 4096
	w := Random(c, 1)
	b.Run("streaming", func(b *testing.B) {
		for b.Loop() {
			n := &countingWriter{w: discard{}}
			if err := Write(n, w, model.Tokenizer{}, nil); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(n.n)
		}
	})
	b.Run("in-memory", func(b *testing.B) {
		for b.Loop() {
			b.SetBytes(int64(len(writeInMemory(w, model.Tokenizer{}, nil))))
		}
	})
}
