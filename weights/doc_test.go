package weights_test

// Tests that doc.go, the format's specification, says what the code does:
// the key tables against decoded headers, the tensor table against
// model.Layout, the CRC-32C check values, the tokenizer's chunking example,
// a reader written from the doc alone against Load, and the eval windows
// against train.Evaluate.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/train"
	"github.com/vmihailenco/msgpack/v5"
)

// docText is doc.go's comment with the comment markers removed.
func docText(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(src), "\n") {
		if l == "//" {
			lines = append(lines, "")
		} else if s, ok := strings.CutPrefix(l, "// "); ok {
			lines = append(lines, s)
		} else if s, ok := strings.CutPrefix(l, "//"); ok {
			lines = append(lines, s) // keeps the tab of a code block
		}
	}
	return lines
}

// docTables returns doc.go's tables (code blocks whose header row starts
// with firstColumn), keyed by the first line of the paragraph before them:
// each is a list of rows, each row its columns.
func docTables(t *testing.T, firstColumn string) map[string][][]string {
	t.Helper()
	lines := docText(t)
	tables := map[string][][]string{}
	var prose string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "\t") {
			if strings.TrimSpace(l) != "" && (i == 0 || strings.TrimSpace(lines[i-1]) == "" || strings.HasPrefix(lines[i-1], "\t")) {
				prose = strings.TrimSpace(l)
			}
			continue
		}
		head := strings.Fields(l)
		if len(head) < 2 || head[0] != firstColumn {
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "\t") {
				i++
			}
			continue
		}
		var rows [][]string
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "\t") {
			i++
			rows = append(rows, regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(lines[i]), -1))
		}
		tables[prose] = rows
	}
	return tables
}

// column returns the first column of the table whose prose line starts with prefix.
func column(t *testing.T, tables map[string][][]string, prefix string) []string {
	t.Helper()
	for prose, rows := range tables {
		if strings.HasPrefix(prose, prefix) {
			var keys []string
			for _, r := range rows {
				keys = append(keys, r[0])
			}
			slices.Sort(keys)
			return keys
		}
	}
	t.Fatalf("doc.go has no table after a line starting %q", prefix)
	return nil
}

func sortedKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// rawHeader decodes a file's header the way a third party would, by
// doc.go's preamble table: a generic msgpack map, the header checksum
// checked with the doc's CRC in version 2.
func rawHeader(t *testing.T, file []byte) (map[string]any, int64) {
	t.Helper()
	version := binary.LittleEndian.Uint32(file[4:])
	if string(file[:4]) != "MATW" || version < 1 || version > 2 {
		t.Fatalf("preamble %q", file[:8])
	}
	n := int64(binary.LittleEndian.Uint32(file[8:]))
	var h map[string]any
	dec := msgpack.NewDecoder(bytes.NewReader(file[12 : 12+n]))
	if err := dec.Decode(&h); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.DecodeInterface(); err != io.EOF {
		t.Fatalf("bytes after the header's msgpack document (%v)", err)
	}
	end := 12 + n // bytes before the padding
	if version == 2 {
		if got, want := crc32cFromDoc(file[:12+n]), binary.LittleEndian.Uint32(file[12+n:]); got != want {
			t.Fatalf("header CRC-32C %08x, the file says %08x", got, want)
		}
		end += 4
	}
	return h, (end + 255) / 256 * 256
}

var docFiles = []string{"testdata/tiny.matw", "defaultmodel/default.matw"}

func TestDocHeaderKeys(t *testing.T) {
	tables := docTables(t, "key")
	header := column(t, tables, "The header is a msgpack map")
	config := column(t, tables, "Config keys")
	tokenizer := column(t, tables, "Tokenizer keys")
	entry := column(t, tables, "Entry keys")
	meta := column(t, tables, "Meta keys")
	for _, path := range docFiles {
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := rawHeader(t, file)
		got := sortedKeys(h)
		for _, optional := range []string{"meta", "architecture", "eot"} {
			if _, ok := h[optional]; !ok {
				got = append(got, optional) // absent when empty
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, header) {
			t.Errorf("%s: header keys %v; doc.go lists %v", path, got, header)
		}
		gotConfig := sortedKeys(h["config"].(map[string]any))
		for _, optional := range []string{"router_budgets", "image"} { // absent without a router, in a language model
			if !slices.Contains(gotConfig, optional) {
				gotConfig = append(gotConfig, optional)
			}
		}
		slices.Sort(gotConfig)
		if got := gotConfig; !slices.Equal(got, config) {
			t.Errorf("%s: config keys %v; doc.go lists %v", path, got, config)
		}
		if got := sortedKeys(h["tokenizer"].(map[string]any)); !slices.Equal(got, tokenizer) {
			t.Errorf("%s: tokenizer keys %v; doc.go lists %v", path, got, tokenizer)
		}
		for i, e := range h["entries"].([]any) {
			if got := sortedKeys(e.(map[string]any)); !slices.Equal(got, entry) {
				t.Fatalf("%s: entry %d keys %v; doc.go lists %v", path, i, got, entry)
			}
		}
		if m, ok := h["meta"].(map[string]any); ok {
			for k := range m {
				if !slices.Contains(meta, k) {
					t.Errorf("%s: meta key %q is not in doc.go's meta table", path, k)
				}
			}
		}
	}
}

func TestDocDTypes(t *testing.T) {
	rows := docTables(t, "dtype")["Element types (DType):"]
	if len(rows) == 0 {
		t.Fatal("doc.go has no dtype table")
	}
	for _, r := range rows {
		if size, _ := strconv.Atoi(r[1]); weights.DType(r[0]).Size() != size {
			t.Errorf("dtype %q: doc.go says %s bytes, DType.Size says %d", r[0], r[1], weights.DType(r[0]).Size())
		}
	}
}

// TestDocTensors checks the tensor table's names and shapes against
// model.Layout.
func TestDocTensors(t *testing.T) {
	table := docTables(t, "tensor")["The tensors, with their shapes (d = dim, hidden = the last ffn_widths) and"]
	if len(table) == 0 {
		t.Fatal("doc.go has no tensor table after \"The tensors, with their shapes …\"")
	}
	c := weights.TinyConfig()
	c.RouterBudgets = 5 // the router's tensors too
	vision := weights.TinyConfig()
	vision.Vocab, vision.Context, vision.Image = 10, 16, &model.ImageConfig{Size: 8, Patch: 2, Channels: 3}
	names := map[string]bool{}
	for _, c := range []model.Config{c, vision} {
		size := map[string]int{"d": c.Dim, "vocab": c.Vocab, "hidden": c.Hidden(), "G-1": c.Granularities() - 1, "d+1": c.Dim + 1, "K": c.RouterBudgets, "2": 2}
		if im := c.Image; im != nil {
			size["P·P·C"], size["T"] = im.PatchLen(), im.Patches()
		}
		doc := map[string][]int{}
		for _, r := range table {
			var shape []int
			for _, m := range regexp.MustCompile(`\[([^\]]+)\]`).FindAllStringSubmatch(r[1], -1) {
				shape = append(shape, size[m[1]])
			}
			doc[r[0]] = shape
		}
		for _, tensor := range model.Layout(c) {
			name := regexp.MustCompile(`^layers\.\d+\.`).ReplaceAllString(tensor.Name, "layers.L.")
			names[name] = true
			if shape, ok := doc[name]; !ok || !slices.Equal(shape, tensor.Shape) {
				t.Errorf("tensor %s %v: doc.go says %v", tensor.Name, tensor.Shape, shape)
			}
		}
	}
	for _, r := range table {
		if !names[r[0]] {
			t.Errorf("doc.go lists tensor %s, which model.Layout does not have", r[0])
		}
	}
}

func TestDocCheckValues(t *testing.T) {
	text := strings.Join(docText(t), "\n")
	found := 0
	for _, m := range regexp.MustCompile(`CRC-32C\("([^"]*)"\)\s*=\s*0x([0-9a-f]{8})`).FindAllStringSubmatch(text, -1) {
		want, _ := strconv.ParseUint(m[2], 16, 32)
		if got := weights.Checksum([]byte(m[1])); got != uint32(want) || crc32cFromDoc([]byte(m[1])) != uint32(want) {
			t.Errorf("CRC-32C(%q) = %08x (bitwise, from doc.go's parameters: %08x); doc.go says %s", m[1], got, crc32cFromDoc([]byte(m[1])), m[2])
		}
		found++
	}
	for _, m := range regexp.MustCompile(`CRC-32C\((\d+) zero bytes\)\s*=\s*0x([0-9a-f]{8})`).FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[1])
		want, _ := strconv.ParseUint(m[2], 16, 32)
		if got := weights.Checksum(make([]byte, n)); got != uint32(want) {
			t.Errorf("CRC-32C(%d zero bytes) = %08x; doc.go says %s", n, got, m[2])
		}
		found++
	}
	if found < 2 {
		t.Fatalf("found %d check values in doc.go, want 2", found)
	}
	for _, s := range []string{"0x82F63B78", "0xFFFFFFFF"} {
		if !strings.Contains(text, s) {
			t.Errorf("doc.go no longer states the CRC parameter %s", s)
		}
	}
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if crc32cFromDoc(data) != weights.Checksum(data) {
		t.Error("a CRC built from doc.go's parameters differs from weights.Checksum")
	}
}

// crc32cFromDoc is the CRC doc.go describes, bit by bit.
func crc32cFromDoc(b []byte) uint32 {
	crc := uint32(0xFFFFFFFF)
	for _, x := range b {
		crc ^= uint32(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82F63B78
			} else {
				crc >>= 1
			}
		}
	}
	return crc ^ 0xFFFFFFFF
}

func TestDocChunks(t *testing.T) {
	lines := docText(t)
	var example, want []string
	quoted := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	for i, l := range lines {
		if strings.HasSuffix(l, "For example") && i+2 < len(lines) {
			example = quoted.FindAllString(lines[i+2], -1)
		}
		if l == "splits into" && i+2 < len(lines) {
			want = quoted.FindAllString(lines[i+2], -1)
		}
	}
	if len(example) != 1 || len(want) == 0 {
		t.Fatalf("doc.go's chunking example not found (%v, %v)", example, want)
	}
	text, err := strconv.Unquote(example[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range model.Chunks([]byte(text)) {
		got = append(got, strconv.Quote(string(c)))
	}
	// strconv.Quote writes \v and \f as doc.go does, and ñ as itself.
	if !slices.Equal(got, want) {
		t.Errorf("model.Chunks(%s) = %v; doc.go says %v", example[0], got, want)
	}
}

// TestDocReader reads the committed files by doc.go's rules alone and
// compares every tensor with Load.
func TestDocReader(t *testing.T) {
	for _, path := range docFiles {
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h, dataStart := rawHeader(t, file)
		dataSize := toInt(h["data_size"])
		if int64(len(file)) < dataStart+int64(dataSize) {
			t.Fatalf("%s: %d bytes, DataStart %d + data_size %d", path, len(file), dataStart, dataSize)
		}
		tensors := map[string][]float32{}
		end, lastGranularity := 0, 0
		for i, raw := range h["entries"].([]any) {
			e := raw.(map[string]any)
			name, shape := e["tensor"].(string), toInts(e["shape"])
			rowElems := 1
			for _, s := range shape[1:] {
				rowElems *= s
			}
			start, stop := toInt(e["row_start"]), toInt(e["row_end"])
			offset, length := toInt(e["offset"]), toInt(e["length"])
			g := toInt(e["granularity"])
			switch {
			case e["dtype"] != "f32":
				t.Fatalf("%s entry %d: dtype %v", path, i, e["dtype"])
			case length != (stop-start)*rowElems*4:
				t.Fatalf("%s %s: length %d, rows [%d, %d) of %d elements", path, name, length, start, stop, rowElems)
			case offset != end:
				t.Fatalf("%s %s: offset %d, the entry before ended at %d (back to back)", path, name, offset, end)
			case g < lastGranularity:
				t.Fatalf("%s %s: granularity %d after %d (sections in order)", path, name, g, lastGranularity)
			}
			b := file[dataStart+int64(offset) : dataStart+int64(offset+length)]
			if got := crc32cFromDoc(b); got != uint32(toInt(e["crc32c"])) {
				t.Fatalf("%s %s: crc32c %08x, header says %08x", path, name, got, toInt(e["crc32c"]))
			}
			if tensors[name] == nil {
				n := 1
				for _, s := range shape {
					n *= s
				}
				tensors[name] = make([]float32, n)
			}
			for j := range length / 4 {
				tensors[name][start*rowElems+j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
			}
			end, lastGranularity = offset+length, g
		}
		if end != dataSize {
			t.Errorf("%s: entries end at %d, data_size %d", path, end, dataSize)
		}
		w, _, err := weights.Load(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tensor := range w.Tensors() {
			if !slices.Equal(tensors[tensor.Name], tensor.Data) {
				t.Errorf("%s: tensor %s read from the doc differs from Load", path, tensor.Name)
			}
		}
	}
}

func toInt(v any) int {
	i, err := strconv.Atoi(fmt.Sprint(v))
	if err != nil {
		panic(fmt.Sprintf("%v (%T) is not an integer", v, v))
	}
	return i
}

func toInts(v any) []int {
	var out []int
	for _, x := range v.([]any) {
		out = append(out, toInt(x))
	}
	return out
}

// TestDocEvalWindows computes a loss by doc.go's window rules with
// model.Forward and compares it with train.Evaluate, which matedge eval and
// the quality table use.
func TestDocEvalWindows(t *testing.T) {
	c := weights.TinyConfig()
	w := weights.Random(c, 3)
	rng := model.NewRNG(5)
	ids := make([]int, 23) // 22 predictions: windows of 5 give 4 full windows and a rest of 2
	for i := range ids {
		ids[i] = int(rng.Uint32() % uint32(c.Vocab))
	}
	const S = 5
	for _, mix := range []model.Mix{c.Uniform(0), {0, 3, 1}} {
		n := len(ids)
		var sum float64
		window := func(from, length int) {
			s := model.NewState(c)
			for j := range length {
				logits := model.Forward(w, s, mix, ids[from+j], j)
				sum += crossEntropy(logits, ids[from+j+1])
			}
		}
		full := 0
		for ; (full+1)*S <= n-1; full++ {
			window(full*S, S)
		}
		if rest := n - 1 - full*S; rest > 0 {
			window(full*S, rest)
		}
		want := sum / float64(n-1)
		got, tokens := train.Evaluate(w, mix, ids, S, 2)
		if tokens != n-1 || math.Abs(got-want) > 1e-4*want {
			t.Errorf("mix %v: Evaluate = %.6f over %d tokens; doc.go's windows give %.6f over %d", mix, got, tokens, want, n-1)
		}
		if bpb, want := train.BitsPerByte(got, tokens, 40), got*float64(tokens)/(40*math.Ln2); math.Abs(bpb-want) > 1e-12 {
			t.Errorf("BitsPerByte = %g; doc.go's formula gives %g", bpb, want)
		}
	}
}

func crossEntropy(logits []float32, target int) float64 {
	maxv := math.Inf(-1)
	for _, v := range logits {
		maxv = math.Max(maxv, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - maxv)
	}
	return math.Log(sum) + maxv - float64(logits[target])
}

// TestDocQualityMixes checks doc.go's list of the mixes a quality table
// holds against model.Config.PresetMixes.
func TestDocQualityMixes(t *testing.T) {
	for _, layers := range []int{1, 3, 4, 6} {
		c := weights.TinyConfig()
		c.Layers = layers
		G := c.Granularities()
		var want []model.Mix
		for g := range G {
			want = append(want, c.Uniform(g))
		}
		if layers > 1 && G > 1 {
			grow := make(model.Mix, layers)
			for l := range grow {
				grow[l] = l * G / layers // ⌊l·G/layers⌋
			}
			shrink := slices.Clone(grow)
			slices.Reverse(shrink)
			want = append(want, grow, shrink)
		}
		got := c.PresetMixes()
		if len(got) != len(want) {
			t.Fatalf("%d layers: PresetMixes = %v; doc.go says %v", layers, got, want)
		}
		for i := range got {
			if !slices.Equal(got[i], want[i]) {
				t.Errorf("%d layers: PresetMixes = %v; doc.go says %v", layers, got, want)
				break
			}
		}
	}
}
