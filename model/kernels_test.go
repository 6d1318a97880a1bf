package model

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// kernelShapes are (n, in, out) triples: the default model's shapes and
// awkward ones that are not multiples of the vector width or block.
var kernelShapes = [][3]int{
	{1, 1, 1}, {3, 5, 7}, {4, 16, 16}, {5, 17, 33}, {9, 31, 15}, {13, 64, 130},
	{64, 128, 512}, {37, 200, 9}, {130, 129, 520},
	{2, 20, 78}, {2, 64, 1024}, {3, 64, 256}, // a speculative verify pass: k = 1, 2
}

// closeTo reports whether got matches want to float32 rounding of a sum of
// terms whose magnitudes add up to scale.
func closeTo(got, want, scale float32) bool {
	return math.Abs(float64(got-want)) <= 1e-5*float64(scale)+1e-6
}

func TestKernelsMatchReference(t *testing.T) {
	for _, name := range AvailableKernels() {
		k := kernelSets[name]
		for _, sh := range kernelShapes {
			n, in, out := sh[0], sh[1], sh[2]
			t.Run(fmt.Sprintf("%s/%dx%dx%d", name, n, in, out), func(t *testing.T) {
				rng := NewRNG(uint64(n*1000 + in*10 + out))
				x, w := randomSlice(rng, n*in, 1), randomSlice(rng, out*in, 1)
				base := randomSlice(rng, n*out, 1)
				scale := float32(in)

				got, want := make([]float32, n*out), make([]float32, n*out)
				k.MatMulT(got, x, w, n, in, out)
				GoKernels.MatMulT(want, x, w, n, in, out)
				compareSlices(t, "MatMulT", got, want, scale)

				copy(got, base)
				copy(want, base)
				k.MatMulAdd(got, x, w, n, in, out)
				GoKernels.MatMulAdd(want, x, w, n, in, out)
				compareSlices(t, "MatMulAdd", got, want, scale)

				// aᵀ·b with a = x [n][in], b [n][out]: out [in][out].
				b := randomSlice(rng, n*out, 1)
				got, want = randomSlice(rng, in*out, 1), make([]float32, in*out)
				copy(want, got)
				k.MatTMulAdd(got, x, b, n, in, out)
				GoKernels.MatTMulAdd(want, x, b, n, in, out)
				compareSlices(t, "MatTMulAdd", got, want, float32(n))

				if d, r := k.Dot(x[:in], w[:in]), GoKernels.Dot(x[:in], w[:in]); !closeTo(d, r, scale) {
					t.Errorf("Dot = %v; want %v", d, r)
				}
				y1, y2 := append([]float32(nil), base[:out]...), append([]float32(nil), base[:out]...)
				k.AddScaled(y1, 0.37, b[:out])
				GoKernels.AddScaled(y2, 0.37, b[:out])
				compareSlices(t, "AddScaled", y1, y2, 2)

				for _, size := range []int{1, 7, 8, 33, out} {
					logits := randomSlice(rng, size, 30)
					p1, p2 := append([]float32(nil), logits...), append([]float32(nil), logits...)
					k.Softmax(p1)
					GoKernels.Softmax(p2)
					compareSlices(t, "Softmax", p1, p2, 10)
				}
			})
		}
	}
}

func compareSlices(t *testing.T, what string, got, want []float32, scale float32) {
	t.Helper()
	for i := range want {
		if !closeTo(got[i], want[i], scale) {
			t.Fatalf("%s: element %d = %v; want %v", what, i, got[i], want[i])
		}
	}
}

// TestKernelsDeterministic checks that a product does not depend on how many
// goroutines share it: training must be reproducible.
func TestKernelsDeterministic(t *testing.T) {
	for _, name := range AvailableKernels() {
		k := kernelSets[name]
		rng := NewRNG(7)
		n, in, out := 67, 130, 75
		x, w := randomSlice(rng, n*in, 1), randomSlice(rng, out*in, 1)
		run := func(procs int) []float32 {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			res := make([]float32, n*out+in*out)
			k.MatMulT(res[:n*out], x, w, n, in, out)
			k.MatTMulAdd(res[n*out:], x, res[:n*out], n, in, out)
			return res
		}
		one, three := run(1), run(3)
		for i := range one {
			if math.Float32bits(one[i]) != math.Float32bits(three[i]) {
				t.Fatalf("%s: element %d differs between 1 and 3 goroutines: %v vs %v", name, i, one[i], three[i])
			}
		}
	}
}

func TestUseKernels(t *testing.T) {
	defer UseKernels(ActiveKernels().Name)
	if err := UseKernels("go"); err != nil {
		t.Fatalf(`UseKernels("go") = %v`, err)
	}
	if ActiveKernels().Name != "go" {
		t.Fatalf("ActiveKernels().Name = %q; want go", ActiveKernels().Name)
	}
	if err := UseKernels("no-such-set"); err == nil {
		t.Fatal(`UseKernels("no-such-set") = nil; want an error`)
	}
}

// BenchmarkKernels runs every kernel set side by side at the default model's
// training shapes (N = 4·256 rows) and reports GFLOP/s.
func BenchmarkKernels(b *testing.B) {
	const n = 1024
	shapes := []struct {
		name    string
		in, out int
		kind    string
	}{
		{"qkv", 128, 128, "all"}, {"gate", 128, 512, "all"}, {"down", 512, 128, "all"}, {"head", 128, 2048, "all"},
	}
	rng := NewRNG(1)
	for _, name := range AvailableKernels() {
		k := kernelSets[name]
		for _, sh := range shapes {
			x, w := randomSlice(rng, n*sh.in, 1), randomSlice(rng, sh.out*sh.in, 1)
			out := make([]float32, n*sh.out)
			g := make([]float32, sh.in*sh.out)
			flops := float64(2 * n * sh.in * sh.out)
			products := []struct {
				op  string
				run func()
			}{
				{"MatMulT", func() { k.MatMulT(out, x, w, n, sh.in, sh.out) }},
				{"MatMulAdd", func() { k.MatMulAdd(out, x, w, n, sh.in, sh.out) }},
				{"MatTMulAdd", func() { k.MatTMulAdd(g, x, out, n, sh.in, sh.out) }},
			}
			for _, p := range products {
				b.Run(fmt.Sprintf("%s/%s/%s/%dx%dx%d", name, p.op, sh.name, n, sh.in, sh.out), func(b *testing.B) {
					for b.Loop() {
						p.run()
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// TestDecodeProductsBitIdentical: every kernel set's decode products give the
// reference's bits, so the same prompt and seed give the same tokens
// whichever set a host runs.
func TestDecodeProductsBitIdentical(t *testing.T) {
	for _, name := range AvailableKernels() {
		k := kernelSets[name]
		for _, sh := range kernelShapes {
			n, cols, rows := sh[0], sh[1], sh[2]
			rng := NewRNG(uint64(n*7 + cols*3 + rows))
			stride := cols + 3 // rows padded, as a nested matrix's prefix is
			w, x := randomSlice(rng, rows*stride, 1), randomSlice(rng, n*cols, 1)
			same := func(what string, got, want []float32) {
				t.Helper()
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s %s %v: element %d = %v; the reference gives %v", name, what, sh, i, got[i], want[i])
					}
				}
			}
			got, want := make([]float32, rows), make([]float32, rows)
			k.MatVec(got, w, x[:cols], stride)
			GoKernels.MatVec(want, w, x[:cols], stride)
			same("MatVec", got, want)

			tw := randomSlice(rng, cols*stride, 1) // Wᵀ·x: W [cols][stride], out [rows ≤ stride]
			out := min(rows, stride)
			got, want = make([]float32, out), make([]float32, out)
			k.MatTVec(got, tw, x[:cols], stride)
			GoKernels.MatTVec(want, tw, x[:cols], stride)
			same("MatTVec", got, want)

			packed := randomSlice(rng, rows*cols, 1)
			got, want = make([]float32, n*rows), make([]float32, n*rows)
			k.MatVecBatch(got, packed, x, n)
			GoKernels.MatVecBatch(want, packed, x, n)
			same("MatVecBatch", got, want)

			got, want = make([]float32, n*rows), make([]float32, n*rows)
			tp := randomSlice(rng, cols*rows, 1)
			k.MatTVecBatch(got, tp, x, n)
			GoKernels.MatTVecBatch(want, tp, x, n)
			same("MatTVecBatch", got, want)
		}
	}
}

// BenchmarkDecodeMatVec times each kernel set's decode product at the
// default model's FFN shape (512 rows of 128: one granularity's gate) and
// reports GFLOP/s.
func BenchmarkDecodeMatVec(b *testing.B) {
	const rows, cols = 512, 128
	rng := NewRNG(2)
	w, x, out := randomSlice(rng, rows*cols, 1), randomSlice(rng, cols, 1), make([]float32, rows)
	for _, name := range AvailableKernels() {
		k := kernelSets[name]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				k.MatVec(out, w, x, cols)
			}
			b.ReportMetric(2*rows*cols*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		// Five tokens at once: a speculative verify pass with k = 4.
		xs, outs := randomSlice(rng, 5*cols, 1), make([]float32, 5*rows)
		b.Run(name+"/batch5", func(b *testing.B) {
			for b.Loop() {
				k.MatVecBatch(outs, w, xs, 5)
			}
			b.ReportMetric(10*rows*cols*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestSwiGLUBitIdentical: every set's SwiGLU gives the reference's bits,
// across exp32's range and past both ends of it, at lengths that leave a
// tail after the vector width.
func TestSwiGLUBitIdentical(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 87.3, -87.3, 88.3, -88.3, 87.31, -87.31, 100, -100,
		float32(math.Inf(1)), float32(math.Inf(-1)), 1e-30, -1e-30, 0.5, -0.5}
	for _, name := range AvailableKernels() {
		k := kernelSets[name]
		// The long one sweeps enough values that a fused multiply-add in
		// any step of exp32 changes some of them.
		for _, n := range []int{1, 7, 8, 9, 16, 33, 256, 1 << 16} {
			rng := NewRNG(uint64(n))
			gate, up := randomSlice(rng, n, 90), randomSlice(rng, n, 2)
			for i := range gate {
				if i%5 == 0 {
					gate[i] = special[(i/5)%len(special)]
				}
			}
			got, want := make([]float32, n), make([]float32, n)
			k.SwiGLU(got, gate, up)
			GoKernels.SwiGLU(want, gate, up)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s n=%d: SwiGLU element %d (gate %v, up %v) = %v; the reference gives %v", name, n, i, gate[i], up[i], got[i], want[i])
				}
			}
			// out may alias gate.
			k.SwiGLU(gate, gate, up)
			for i := range want {
				if math.Float32bits(gate[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s n=%d: SwiGLU in place, element %d = %v; want %v", name, n, i, gate[i], want[i])
				}
			}
		}
	}
}
