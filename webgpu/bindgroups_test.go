package webgpu_test

import (
	"testing"

	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
)

// bindGroupCounter is the native device's view of its bind group cache.
type bindGroupCounter interface {
	BindGroups() (created, cached, limit int)
}

// doubling runs the double shader (webgpu_test.go) on a device and keeps
// what its y buffer must hold, to check every result against.
type doubling struct {
	t    *testing.T
	d    webgpu.Device
	p    webgpu.Pipeline
	x, y webgpu.Buffer
	xs   [4]uint32 // x's contents
	ys   [4]uint32 // y's contents
}

// run records, for each n of ns, a dispatch of double over x → y with n as
// its params and a copy of y into an output buffer, reads the output back
// and checks it. It returns the bind groups created meanwhile.
func (r *doubling) run(ns ...uint32) int {
	r.t.Helper()
	created := func() int { n, _, _ := r.d.(bindGroupCounter).BindGroups(); return n }
	before := created()
	out, err := r.d.CreateBuffer(uint64(16 * len(ns)))
	if err != nil {
		r.t.Fatal(err)
	}
	var want []uint32
	for i, n := range ns {
		if err := r.d.Dispatch(r.p, words(n, 0, 0, 0), []webgpu.Binding{{Buffer: r.x}, {Buffer: r.y}}, [3]uint32{1, 1, 1}); err != nil {
			r.t.Fatal(err)
		}
		if err := r.d.Copy(r.y, 0, out, uint64(16*i), 16); err != nil {
			r.t.Fatal(err)
		}
		for j := range uint32(4) {
			if j < n {
				r.ys[j] = 2*r.xs[j] + n
			}
		}
		want = append(want, r.ys[:]...)
	}
	got, err := webgpu.ReadNow(r.d, out, 0, uint64(16*len(ns)))
	if err != nil {
		r.t.Fatal(err)
	}
	for i, n := range ns {
		if g, w := got[16*i:16*i+16], words(want[4*i:4*i+4]...); string(g) != string(w) {
			r.t.Fatalf("dispatch %d of %d (params %d) read %v; want %v", i, len(ns), n, g, w)
		}
	}
	if err := r.d.DestroyBuffer(out); err != nil {
		r.t.Fatal(err)
	}
	return created() - before
}

// buffers replaces x and y with new buffers (destroying the old ones, y
// first so that the new ones do not come in the old order), x holding xs.
func (r *doubling) buffers(xs [4]uint32) {
	r.t.Helper()
	for _, b := range []webgpu.Buffer{r.y, r.x} {
		if b != 0 {
			if err := r.d.DestroyBuffer(b); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	var err error
	if r.y, err = r.d.CreateBuffer(16); err != nil {
		r.t.Fatal(err)
	}
	if r.x, err = r.d.CreateBuffer(16); err != nil {
		r.t.Fatal(err)
	}
	if err := r.d.WriteBuffer(r.x, 0, words(xs[:]...)); err != nil {
		r.t.Fatal(err)
	}
	r.xs, r.ys = xs, [4]uint32{}
}

// TestBindGroupCache: submitting the same dispatches over the same buffers
// again creates no bind groups; a destroyed buffer's groups are dropped (the
// buffers that replace it get groups of their own, and results stay right);
// growing the uniform buffer drops every group (they bind the old one); and
// the cache holds at most its limit, with the dispatches past it run on
// groups that are not cached. Every result is checked against the CPU.
func TestBindGroupCache(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		counter, ok := d.(bindGroupCounter)
		if !ok {
			t.Fatalf("%T does not report its bind groups", d)
		}
		cached := func() int { _, n, _ := counter.BindGroups(); return n }
		p, err := d.CreatePipeline(double, 2)
		if err != nil {
			t.Fatal(err)
		}
		r := &doubling{t: t, d: d, p: p}
		r.buffers([4]uint32{1, 2, 3, 4})

		if n := r.run(3, 4); n != 2 {
			t.Errorf("first submit of two dispatches created %d bind groups; want 2", n)
		}
		for range 2 {
			if n := r.run(3, 4); n != 0 {
				t.Errorf("the same submit again created %d bind groups; want 0", n)
			}
		}
		// Other params in the same slots: the groups are the same.
		if n := r.run(1, 2); n != 0 {
			t.Errorf("other params in the same slots created %d bind groups; want 0", n)
		}

		// New buffers for destroyed ones: a group of the old ones would
		// read the old x and write the freed y.
		r.buffers([4]uint32{10, 20, 30, 40})
		if n := cached(); n != 0 {
			t.Errorf("%d bind groups cached after their buffers were destroyed; want 0", n)
		}
		if n := r.run(3, 4); n != 2 {
			t.Errorf("two dispatches over new buffers created %d bind groups; want 2", n)
		}

		// 20 dispatches outgrow the uniform buffer's first 16 slots: the
		// groups of slots 0 and 1 bound the old uniform, so every group is new.
		var many []uint32
		for i := range 20 {
			many = append(many, uint32(1+i%4))
		}
		if n := r.run(many...); n != len(many) {
			t.Errorf("%d dispatches that grew the uniform buffer created %d bind groups; want %d", len(many), n, len(many))
		}
		if n := r.run(many...); n != 0 {
			t.Errorf("the same %d dispatches again created %d bind groups; want 0", len(many), n)
		}

		// Past the limit (growing the uniform again): the groups beyond it
		// are not cached, and the next submit starts from an empty cache.
		_, _, limit := counter.BindGroups()
		many = many[:0]
		for i := range limit + 8 {
			many = append(many, uint32(1+i%4))
		}
		if n := r.run(many...); n != len(many) {
			t.Errorf("%d dispatches created %d bind groups; want %d", len(many), n, len(many))
		}
		if n := cached(); n != limit {
			t.Errorf("%d bind groups cached; want the limit, %d", n, limit)
		}
		if n := r.run(3, 4); n != 2 {
			t.Errorf("a submit after the cache filled created %d bind groups; want 2 (the cache was cleared)", n)
		}
		if n := cached(); n != 2 {
			t.Errorf("%d bind groups cached after the clear; want 2", n)
		}
	})
}

// add uses its params in arithmetic only: lavapipe compiles a variant of a
// shader for the uniform values that steer its control flow (ARCHITECTURE.md),
// which would swamp what BenchmarkStep measures.
const add = `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(1)
fn main() { y[0] = x[0] + p.n; }`

// BenchmarkStep times what a decode step costs the device beyond its
// kernels: 64 small dispatches over the same buffers, each with its own
// params, submitted, and 4 bytes read back. Bind groups come from the cache
// after the first step.
func BenchmarkStep(b *testing.B) {
	d := webgputest.Open(b)
	defer d.Close()
	p, err := d.CreatePipeline(add, 2)
	if err != nil {
		b.Fatal(err)
	}
	x, _ := d.CreateBuffer(16)
	y, _ := d.CreateBuffer(16)
	bindings := []webgpu.Binding{{Buffer: x}, {Buffer: y}}
	for b.Loop() {
		for i := range 64 {
			if err := d.Dispatch(p, words(uint32(1+i%4), 0, 0, 0), bindings, [3]uint32{1, 1, 1}); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := webgpu.ReadNow(d, y, 0, 4); err != nil {
			b.Fatal(err)
		}
	}
}
