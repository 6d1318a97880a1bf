package shaders_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
)

// Benchmarks run in-process on the device of the build (lavapipe here) and
// report arithmetic (GFLOP/s) and weight traffic (GB/s). Sizes are those of
// the compute-dominant config of issue 4 (d=512, h=2048) and a 1024² square.

var benchShapes = []struct{ rows, cols int }{{512, 512}, {2048, 512}, {512, 2048}, {1024, 1024}}

func BenchmarkMatVec(b *testing.B) {
	d := webgputest.Open(b)
	defer d.Close()
	r := newRig(b, d)
	for _, dtype := range []string{"f32", "f32x4", "f16"} { // f32x4: matvec4
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("%s/%dx%d", dtype, s.rows, s.cols), func(b *testing.B) {
				r.t = b
				rng := rand.New(rand.NewPCG(1, 1))
				w, kernel, bytes := r.upload(randoms(rng, s.rows*s.cols)), shaders.MatVec, 4
				switch dtype {
				case "f16":
					packed, _ := packF16(randoms(rng, s.rows*s.cols))
					w, kernel, bytes = r.upload(packed), shaders.MatVecF16, 2
				case "f32x4":
					kernel = shaders.MatVec4
				}
				x, out := r.upload(randoms(rng, s.cols)), r.zeros(s.rows)
				bench(b, r, out, func() {
					r.run(kernel.Call(shaders.MatVecArgs{Rows: s.rows, Cols: s.cols, W: w, X: x, Out: out}))
				}, 2*s.rows*s.cols, bytes*s.rows*s.cols)
			})
		}
	}
}

func BenchmarkMatMul(b *testing.B) {
	const tokens = 64
	d := webgputest.Open(b)
	defer d.Close()
	r := newRig(b, d)
	for _, dtype := range []string{"f32", "f16"} {
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", dtype, s.rows, s.cols, tokens), func(b *testing.B) {
				r.t = b
				rng := rand.New(rand.NewPCG(1, 1))
				w, kernel, bytes := r.upload(randoms(rng, s.rows*s.cols)), shaders.MatMul, 4
				if dtype == "f16" {
					packed, _ := packF16(randoms(rng, s.rows*s.cols))
					w, kernel, bytes = r.upload(packed), shaders.MatMulF16, 2
				}
				x, out := r.upload(randoms(rng, tokens*s.cols)), r.zeros(tokens*s.rows)
				bench(b, r, out, func() {
					r.run(kernel.Call(shaders.MatMulArgs{Rows: s.rows, Cols: s.cols, Tokens: tokens, W: w, X: x, Out: out}))
				}, 2*s.rows*s.cols*tokens, bytes*s.rows*s.cols)
			})
		}
	}
}

// BenchmarkMatMulT times the down projection of a batch of tokens (a vision
// model's patches) in one matmul_t dispatch against one matvec_t per token,
// which is what the batch replaced; a "dispatch" is the whole batch.
func BenchmarkMatMulT(b *testing.B) {
	d := webgputest.Open(b)
	defer d.Close()
	r := newRig(b, d)
	for _, s := range []struct{ rows, cols int }{{256, 64}, {2048, 512}} {
		for _, tokens := range []int{16, 64} {
			for _, kernel := range []string{"matmul_t", "matvec_t"} {
				b.Run(fmt.Sprintf("%s/%dx%dx%d", kernel, s.rows, s.cols, tokens), func(b *testing.B) {
					r.t = b
					rng := rand.New(rand.NewPCG(1, 1))
					w, x, out := r.upload(randoms(rng, s.rows*s.cols)), r.upload(randoms(rng, tokens*s.rows)), r.zeros(tokens*s.cols)
					bench(b, r, out, func() {
						if kernel == "matmul_t" {
							r.run(shaders.MatMulT.Call(shaders.MatMulArgs{Rows: s.rows, Cols: s.cols, Tokens: tokens, W: w, X: x, Out: out}))
							return
						}
						for t := range tokens {
							r.run(shaders.MatVecT.Call(shaders.MatVecArgs{Rows: s.rows, Cols: s.cols, XOffset: t * s.rows, OutOffset: t * s.cols, W: w, X: x, Out: out}))
						}
					}, 2*s.rows*s.cols*tokens, 4*s.rows*s.cols)
				})
			}
		}
	}
}

// bench times b.N dispatches, submitted in batches, and waits for the last
// by reading one word of out.
func bench(b *testing.B, r *rig, out webgpu.Buffer, dispatch func(), flops, bytes int) {
	dispatch()
	r.read(out, 1) // compile and warm up outside the timer
	b.ResetTimer()
	for i := range b.N {
		dispatch()
		if i%32 == 31 {
			if err := r.d.Submit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	r.read(out, 1)
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(flops)*float64(b.N)/sec/1e9, "GFLOP/s")
	b.ReportMetric(float64(bytes)*float64(b.N)/sec/1e9, "GB/s")
}

// BenchmarkAttention times decode attention dispatches (rows = 1) for the
// default model's heads (4 × 32) and the large model's (8 × 64), over a
// 256-position cache, with the position changing every dispatch as it does
// in decode (a driver that specializes shaders on uniform values, as
// lavapipe does, recompiles on every change: see package shaders). The
// positions cycle through [0, span).
func BenchmarkAttention(b *testing.B) {
	const context = 256
	d := webgputest.Open(b)
	defer d.Close()
	r := newRig(b, d)
	for _, s := range []struct{ heads, headDim int }{{4, 32}, {8, 64}} {
		for _, span := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%dx%d/pos<%d", s.heads, s.headDim, span), func(b *testing.B) {
				r.t = b
				rng := rand.New(rand.NewPCG(1, 1))
				dim := s.heads * s.headDim
				q := r.upload(randoms(rng, dim))
				keys, values := r.upload(randoms(rng, context*dim)), r.upload(randoms(rng, context*dim))
				scores, out := r.zeros(s.heads*context), r.zeros(dim)
				pos := 0
				bench(b, r, out, func() {
					r.run(shaders.Attention.Call(shaders.AttentionArgs{HeadDim: s.headDim, Heads: s.heads, Rows: 1, Start: pos, ScoresStride: context, Scale: 0.125,
						Q: q, Keys: keys, Values: values, Scores: scores, Out: out}))
					pos = (pos + 1) % span
				}, 4*span/2*dim, 8*span/2*dim)
			})
		}
	}
}
