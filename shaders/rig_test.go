package shaders_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
)

// rig runs kernels on a device for tests and benchmarks; any error fails the test.
type rig struct {
	t     testing.TB
	d     webgpu.Device
	cache *webgpu.Pipelines
}

func newRig(t testing.TB, d webgpu.Device) *rig {
	return &rig{t: t, d: d, cache: webgpu.NewPipelines(d)}
}

// upload makes a buffer holding data ([]float32 or []uint32; at least one element).
func (r *rig) upload(data any) webgpu.Buffer {
	r.t.Helper()
	var b []byte
	switch v := data.(type) {
	case []float32:
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	case []uint32:
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
	default:
		r.t.Fatalf("upload %T", data)
	}
	if len(b) == 0 {
		b = make([]byte, 4)
	}
	buf, err := r.d.CreateBuffer(uint64(len(b)))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.d.WriteBuffer(buf, 0, b); err != nil {
		r.t.Fatal(err)
	}
	return buf
}

// zeros makes a buffer of n 4-byte elements.
func (r *rig) zeros(n int) webgpu.Buffer {
	r.t.Helper()
	buf, err := r.d.CreateBuffer(uint64(4 * max(n, 1)))
	if err != nil {
		r.t.Fatal(err)
	}
	return buf
}

// run records one dispatch, with the table's grid: the tests check the
// grid rules the engine uses.
func (r *rig) run(d shaders.Dispatch) {
	r.t.Helper()
	if err := d.Record(r.d, r.cache); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) read(b webgpu.Buffer, n int) []byte {
	r.t.Helper()
	if err := r.d.Submit(); err != nil {
		r.t.Fatal(err)
	}
	out, err := webgpu.ReadNow(r.d, b, 0, uint64(4*n))
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

func (r *rig) floats(b webgpu.Buffer, n int) []float32 {
	r.t.Helper()
	raw := r.read(b, n)
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func (r *rig) uints(b webgpu.Buffer, n int) []uint32 {
	r.t.Helper()
	raw := r.read(b, n)
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	return out
}

// randoms returns n uniform values in [-1, 1).
func randoms(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*rng.Float32() - 1
	}
	return v
}

// closeTo reports the first index where got and want differ by more than
// tol·(1 + |want|), or -1.
func closeTo(got, want []float32, tol float64) int {
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > tol*(1+math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) {
			return i
		}
	}
	return -1
}

func checkClose(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if i := closeTo(got, want, tol); i >= 0 {
		t.Errorf("%s[%d] = %v; want %v (tolerance %g·(1+|want|))", what, i, got[i], want[i], tol)
	}
}

// packF16 rounds w ([rows][cols], cols even) to half precision, returning the
// packed words ([rows][cols/2]) and the rounded values the CPU reference uses.
func packF16(w []float32) ([]uint32, []float32) {
	packed := make([]uint32, len(w)/2)
	rounded := make([]float32, len(w))
	for i := range packed {
		lo, hi := shaders.ToHalf(w[2*i]), shaders.ToHalf(w[2*i+1])
		packed[i] = uint32(lo) | uint32(hi)<<16
		rounded[2*i], rounded[2*i+1] = shaders.FromHalf(lo), shaders.FromHalf(hi)
	}
	return packed, rounded
}
