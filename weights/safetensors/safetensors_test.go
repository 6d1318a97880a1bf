package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
)

func open(b []byte) (*File, error) { return Open(bytes.NewReader(b), int64(len(b))) }

func sample() []Tensor {
	rng := model.NewRNG(7)
	vals := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = (2*rng.Float32() - 1) * 3
		}
		return x
	}
	return []Tensor{
		{Name: "b.weight", DType: F32, Shape: []int{3, 5}, Data: vals(15)},
		{Name: "a.half", DType: F16, Shape: []int{7}, Data: vals(7)},
		{Name: "c.brain", DType: BF16, Shape: []int{2, 2, 3}, Data: vals(12)},
		{Name: "scalar", DType: F32, Shape: []int{}, Data: []float32{42}},
		{Name: "empty", DType: F32, Shape: []int{0, 4}, Data: nil},
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	ts := sample()
	if err := Write(&buf, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := open(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.DataStart%8 != 0 {
		t.Errorf("data starts at %d, not a multiple of 8", f.DataStart)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	for _, want := range ts {
		got, err := f.Float32(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := f.Info(want.Name)
		if info.DType != want.DType || len(info.Shape) != len(want.Shape) || len(got) != len(want.Data) {
			t.Fatalf("%s: info %+v, %d values; want %v %v", want.Name, info, len(got), want.DType, want.Shape)
		}
		for i, v := range want.Data {
			var r float32
			switch want.DType {
			case F32:
				r = v
			case F16:
				r = HalfToFloat(FloatToHalf(v))
			case BF16:
				r = math.Float32frombits(uint32(FloatToBFloat(v)) << 16)
			}
			if got[i] != r {
				t.Errorf("%s[%d] = %g; want %g", want.Name, i, got[i], r)
			}
		}
	}
}

func TestHalfExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := HalfToFloat(uint16(h))
		if f != f {
			if back := FloatToHalf(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back := FloatToHalf(f); back != uint16(h) {
			t.Fatalf("FloatToHalf(HalfToFloat(%#04x) = %g) = %#04x", h, f, back)
		}
	}
}

// TestHalfRounding checks FloatToHalf against the definition: no binary16
// value is nearer, and a tie goes to the even one.
func TestHalfRounding(t *testing.T) {
	rng := model.NewRNG(3)
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(rng.Uint32())
		if f != f || math.Abs(float64(f)) >= 65520 {
			continue
		}
		h := FloatToHalf(f)
		got := float64(HalfToFloat(h))
		d := math.Abs(float64(f) - got)
		for _, n := range []uint16{h - 1, h + 1} {
			if n&0x7c00 == 0x7c00 || (n^h)&0x8000 != 0 {
				continue
			}
			dn := math.Abs(float64(f) - float64(HalfToFloat(n)))
			if dn < d || (dn == d && h&1 == 1) {
				t.Fatalf("FloatToHalf(%g) = %#04x (%g); %#04x (%g) is nearer or the even tie", f, h, got, n, HalfToFloat(n))
			}
		}
	}
	if _, err := Encode(F16, []float32{70000}); err == nil {
		t.Error("Encode(F16, 70000) did not refuse an overflow")
	}
}

// file builds a safetensors file from a raw header.
func file(header string, data int) []byte {
	b := make([]byte, 8, 8+len(header)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestHostile(t *testing.T) {
	lenOnly := func(n uint64) []byte {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, n)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty file", nil, "truncated"},
		{"header length 2^64-1", lenOnly(math.MaxUint64), "exceeds the limit"},
		{"header length 2^63", lenOnly(1 << 63), "exceeds the limit"},
		{"header past the end", lenOnly(100), "only 8 bytes follow"},
		{"not an object", file(`[1]`, 0), "start with '{'"},
		{"not UTF-8", file("{\"\xff\":1}", 0), "not UTF-8"},
		{"trailing garbage", file(`{}x`, 0), "not spaces"},
		{"duplicate name", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), "twice"},
		{"bad dtype", file(`{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}`, 4), "unknown dtype"},
		{"negative offset", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, 4), "not an integer"},
		{"float offset", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}`, 4), "not an integer"},
		{"offset 2^64", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}}`, 4), "not an integer"},
		{"offsets past end", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "ends at byte 8"},
		{"end before begin", file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, 4), "end before"},
		{"wrong length", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), "needs 2×4"},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "overlaps"},
		{"gap", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "gap"},
		{"unclaimed tail", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8), "cover 4 bytes"},
		{"shape overflow", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4), "2^63 elements"},
		{"bytes overflow", file(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}}`, 4), "needs"},
		{"missing field", file(`{"a":{"dtype":"F32","shape":[1]}}`, 4), "needs dtype"},
		{"unknown field", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4), "unknown field"},
		{"metadata not strings", file(`{"__metadata__":{"a":1}}`, 0), "object of strings"},
		{"three offsets", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}`, 4), "want 2"},
		{"empty name", file(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), "empty name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := open(c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open = %v; want an error containing %q", err, c.want)
			}
			if !errors.Is(err, ErrHeader) && !errors.Is(err, ErrTruncated) {
				t.Errorf("error %v is neither ErrHeader nor ErrTruncated", err)
			}
		})
	}
	// A valid file with a dtype Float32 does not convert.
	f, err := open(file(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}   `, 8))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Float32("a"); !errors.Is(err, ErrDType) {
		t.Errorf("Float32 of an I64 tensor = %v; want ErrDType", err)
	}
}

// FuzzOpen: no input makes Open panic or hang, and whatever it accepts can
// be read whole within the file.
func FuzzOpen(f *testing.F) {
	var buf bytes.Buffer
	if err := Write(&buf, sample(), map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8))
	f.Add(file(`{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}`, 2))
	f.Add(file(`{"a":{"dtype":"F16","shape":[9223372036854775807],"data_offsets":[0,2]}}`, 2))
	f.Add(file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}}`, 4))
	f.Add(file(`{"a":{"dtype":"X","shape":[],"data_offsets":[0,0]}}`, 0))
	f.Add(file(`{"__metadata__":{"a":"b"}}`, 0))
	f.Add(file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[-1,3]}}`, 4))
	f.Add(file(`{"a":{"dtype":"U64","shape":[1],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`, 8))
	tooLong := make([]byte, 8)
	binary.LittleEndian.PutUint64(tooLong, math.MaxUint64-7)
	f.Add(tooLong)
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := open(b)
		if err != nil {
			return
		}
		var covered int64
		for _, info := range file.Tensors {
			if info.Begin < 0 || info.End < info.Begin || file.DataStart+info.End > int64(len(b)) {
				t.Fatalf("accepted tensor %+v outside a %d-byte file", info, len(b))
			}
			covered += info.End - info.Begin
			if info.DType == F32 || info.DType == F16 || info.DType == BF16 {
				x, err := file.Float32(info.Name)
				if err != nil || int64(len(x)) != info.Elements() {
					t.Fatalf("Float32(%q) = %d values, %v; want %d", info.Name, len(x), err, info.Elements())
				}
			}
		}
		if file.DataStart+covered != int64(len(b)) {
			t.Fatalf("accepted tensors cover %d of %d data bytes", covered, int64(len(b))-file.DataStart)
		}
	})
}

// TestNumPyReads checks the writer with a reader this package did not write:
// Debian's python3-numpy parsing the header with json and the data with
// numpy.frombuffer.
func TestNumPyReads(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		t.Skip("needs python3-numpy (Debian): ", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	var buf bytes.Buffer
	ts := sample()
	if err := Write(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got := ReadWithNumPy(t, path)
	for _, want := range ts {
		g, ok := got[want.Name]
		if !ok {
			t.Fatalf("numpy did not see %q", want.Name)
		}
		if len(g.Shape) != len(want.Shape) || string(g.DType) != string(want.DType) {
			t.Fatalf("%s: numpy saw %s %v; want %s %v", want.Name, g.DType, g.Shape, want.DType, want.Shape)
		}
		ref, _ := Encode(want.DType, want.Data)
		for i, v := range Decode(want.DType, ref) {
			if g.Values[i] != v {
				t.Fatalf("%s[%d]: numpy %g, want %g", want.Name, i, g.Values[i], v)
			}
		}
	}
}

// NumPyTensor is what the numpy reader saw of one tensor.
type NumPyTensor struct {
	DType  string    `json:"dtype"`
	Shape  []int     `json:"shape"`
	Values []float32 `json:"values"`
}

// numpyReader reads a safetensors file with json + numpy only and prints
// every tensor's dtype, shape and values (as float32) as JSON.
const numpyReader = `
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out = {}
for name, t in header.items():
    if name == '__metadata__':
        continue
    b, e = t['data_offsets']
    chunk = data[b:e]
    if t['dtype'] == 'F32':
        a = np.frombuffer(chunk, dtype='<f4')
    elif t['dtype'] == 'F16':
        a = np.frombuffer(chunk, dtype='<f2').astype(np.float32)
    elif t['dtype'] == 'BF16':
        a = (np.frombuffer(chunk, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
    else:
        raise SystemExit('unexpected dtype ' + t['dtype'])
    a = a.reshape(t['shape'])
    out[name] = {'dtype': t['dtype'], 'shape': list(a.shape), 'values': [float(v) for v in a.reshape(-1)]}
json.dump(out, sys.stdout)
`

// ReadWithNumPy runs the numpy reader on path.
func ReadWithNumPy(t testing.TB, path string) map[string]NumPyTensor {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", numpyReader, path).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("numpy reader: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("numpy reader: %v", err)
	}
	var got map[string]NumPyTensor
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return got
}
