package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
)

// Every kernel is compared with the model package, its CPU reference, over
// seeded random shapes that include sizes that are not multiples of the
// workgroup size. Each test runs in a child process (webgputest.Run).
//
// Tolerances are relative, tol·(1+|want|): sums run in a different order on
// the GPU (tree reductions) or fuse multiply-adds, so they agree to a few
// float32 ulps per term, not bit for bit.

func TestEmbed(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(1, 2))
		for _, c := range []struct{ vocab, dim, count, offset, slab int }{{5, 3, 1, 0, 5}, {50, 65, 7, 2, 50}, {300, 256, 3, 1, 300}, {300, 6, 40, 3, 64}} {
			table := randoms(rng, c.vocab*c.dim)
			tokens := make([]uint32, c.offset+c.count)
			for i := range tokens {
				tokens[i] = uint32(rng.IntN(c.vocab))
			}
			out := r.zeros(c.count * c.dim)
			// The table in slabs of c.slab rows, one dispatch each, as a split embedding is gathered.
			for first := 0; first < c.vocab; first += c.slab {
				rows := min(c.slab, c.vocab-first)
				r.run(shaders.Embed.Call(shaders.EmbedArgs{Dim: c.dim, Count: c.count, Vocab: rows, TokenOffset: c.offset, FirstRow: first,
					Table: r.upload(table[first*c.dim : (first+rows)*c.dim]), Tokens: r.upload(tokens), Out: out}))
			}
			got := r.floats(out, c.count*c.dim)
			for i := range c.count {
				tok := int(tokens[c.offset+i])
				checkClose(t, fmt.Sprintf("%+v row %d", c, i), got[i*c.dim:(i+1)*c.dim], table[tok*c.dim:(tok+1)*c.dim], 0)
			}
		}
	})
}

func TestRMSNorm(t *testing.T) {
	const tol = 1e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(3, 4))
		for _, c := range []struct{ n, rows int }{{1, 1}, {7, 2}, {256, 1}, {300, 3}, {1000, 2}} {
			x, gain := randoms(rng, c.n*c.rows), randoms(rng, c.n)
			out := r.zeros(c.n * c.rows)
			r.run(shaders.RMSNorm.Call(shaders.RMSNormArgs{N: c.n, Rows: c.rows, Eps: 1e-5, X: r.upload(x), Gain: r.upload(gain), Out: out}))
			want := make([]float32, len(x))
			for i := range c.rows {
				model.RMSNorm(want[i*c.n:(i+1)*c.n], x[i*c.n:(i+1)*c.n], gain, 1e-5)
			}
			checkClose(t, fmt.Sprintf("rmsnorm %+v", c), r.floats(out, len(want)), want, tol)
		}
	})
}

func TestAddRMSNorm(t *testing.T) {
	const tol = 1e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(31, 32))
		for _, c := range []struct{ n, rows int }{{1, 1}, {7, 2}, {256, 1}, {300, 3}, {1000, 2}} {
			x, y, gain := randoms(rng, c.n*c.rows), randoms(rng, c.n*c.rows), randoms(rng, c.n)
			xbuf, out := r.upload(x), r.zeros(c.n*c.rows)
			r.run(shaders.AddRMSNorm.Call(shaders.AddRMSNormArgs{N: c.n, Rows: c.rows, Eps: 1e-5, Y: r.upload(y), Gain: r.upload(gain), X: xbuf, Out: out}))
			sum := append([]float32(nil), x...)
			model.Add(sum, y)
			want := make([]float32, len(x))
			for i := range c.rows {
				model.RMSNorm(want[i*c.n:(i+1)*c.n], sum[i*c.n:(i+1)*c.n], gain, 1e-5)
			}
			checkClose(t, fmt.Sprintf("add_rmsnorm %+v: x", c), r.floats(xbuf, len(sum)), sum, 0)
			checkClose(t, fmt.Sprintf("add_rmsnorm %+v: out", c), r.floats(out, len(want)), want, tol)
		}
	})
}

// matrixShapes are [rows][cols] shapes for the matrix kernels; cols are even
// for the f16 kernels.
var matrixShapes = []struct{ rows, cols int }{{1, 2}, {3, 6}, {64, 64}, {65, 128}, {200, 34}, {1000, 514}}

func TestMatVec(t *testing.T) {
	const tol = 1e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(5, 6))
		for _, c := range matrixShapes {
			for _, half := range []bool{false, true} {
				// Offsets place the matrix, input and output inside larger buffers;
				// a nested width uses only the first rows-1 rows of the matrix.
				rows := max(c.rows-1, 1)
				w, x := randoms(rng, (c.rows+1)*c.cols), randoms(rng, c.cols+3)
				kernel, wbuf, woff, ref := shaders.MatVec, r.upload(w), c.cols, w
				if half {
					packed, rounded := packF16(w)
					kernel, wbuf, woff, ref = shaders.MatVecF16, r.upload(packed), c.cols/2, rounded
				}
				out := r.zeros(rows + 5)
				r.run(kernel.Call(shaders.MatVecArgs{Rows: rows, Cols: c.cols, WOffset: woff, XOffset: 3, OutOffset: 5, W: wbuf, X: r.upload(x), Out: out}))
				want := make([]float32, rows)
				model.MatVec(want, ref[c.cols:c.cols+rows*c.cols], x[3:])
				checkClose(t, fmt.Sprintf("%s %dx%d", kernel.Name, rows, c.cols), r.floats(out, rows+5)[5:], want, tol)
				if !half && c.cols%4 == 0 {
					// matvec4: offsets multiples of 4, the input after 4 other values.
					out := r.zeros(rows + 5)
					r.run(shaders.MatVec4.Call(shaders.MatVecArgs{Rows: rows, Cols: c.cols, WOffset: woff, XOffset: 4, OutOffset: 5, W: wbuf, X: r.upload(append([]float32{0}, x...)), Out: out}))
					checkClose(t, fmt.Sprintf("matvec4 %dx%d", rows, c.cols), r.floats(out, rows+5)[5:], want, tol)
				}
			}
		}
	})
}

func TestMatVecT(t *testing.T) {
	const tol = 1e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(7, 8))
		for _, c := range matrixShapes {
			for _, half := range []bool{false, true} {
				width := max(c.rows-1, 1) // a nested width: the first rows of a neuron-major matrix
				w, x := randoms(rng, (c.rows+1)*c.cols), randoms(rng, c.rows+2)
				kernel, wbuf, woff, ref := shaders.MatVecT, r.upload(w), c.cols, w
				if half {
					packed, rounded := packF16(w)
					kernel, wbuf, woff, ref = shaders.MatVecTF16, r.upload(packed), c.cols/2, rounded
				}
				out := r.zeros(c.cols + 1)
				r.run(kernel.Call(shaders.MatVecArgs{Rows: width, Cols: c.cols, WOffset: woff, XOffset: 2, OutOffset: 1, W: wbuf, X: r.upload(x), Out: out}))
				want := make([]float32, c.cols)
				model.MatTVec(want, ref[c.cols:c.cols+width*c.cols], x[2:2+width])
				checkClose(t, fmt.Sprintf("%s %dx%d", kernel.Name, width, c.cols), r.floats(out, c.cols+1)[1:], want, tol)
			}
		}
	})
}

// TestMatMulT: matvec_t for a batch of tokens, with offsets and a nested
// width, against model.MatTVec per token.
func TestMatMulT(t *testing.T) {
	const tol = 1e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(47, 48))
		for _, c := range matrixShapes {
			for _, tokens := range []int{1, 5, 16, 33} {
				width := max(c.rows-1, 1) // a nested width: the first rows of a neuron-major matrix
				w, x := randoms(rng, (c.rows+1)*c.cols), randoms(rng, 2+tokens*width)
				out := r.zeros(3 + tokens*c.cols)
				r.run(shaders.MatMulT.Call(shaders.MatMulArgs{Rows: width, Cols: c.cols, Tokens: tokens, WOffset: c.cols, XOffset: 2, OutOffset: 3,
					W: r.upload(w), X: r.upload(x), Out: out}))
				want := make([]float32, tokens*c.cols)
				for tok := range tokens {
					model.MatTVec(want[tok*c.cols:(tok+1)*c.cols], w[c.cols:c.cols+width*c.cols], x[2+tok*width:2+(tok+1)*width])
				}
				checkClose(t, fmt.Sprintf("matmul_t %dx%d·%d tokens", width, c.cols, tokens), r.floats(out, 3+len(want))[3:], want, tol)
			}
		}
	})
}

func TestMatMul(t *testing.T) {
	// The reference (model.MatVec) sums each row in four lanes, the kernel in
	// its own order: two float32 orders of a 514-term dot product of values
	// in [-1, 1] differ by up to about 2e-5.
	const tol = 3e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(9, 10))
		for _, c := range matrixShapes {
			for _, tokens := range []int{1, 5, 33} {
				for _, half := range []bool{false, true} {
					w, x := randoms(rng, c.rows*c.cols), randoms(rng, tokens*c.cols)
					kernel, wbuf, ref := shaders.MatMul, r.upload(w), w
					if half {
						packed, rounded := packF16(w)
						kernel, wbuf, ref = shaders.MatMulF16, r.upload(packed), rounded
					}
					out := r.zeros(tokens * c.rows)
					r.run(kernel.Call(shaders.MatMulArgs{Rows: c.rows, Cols: c.cols, Tokens: tokens, W: wbuf, X: r.upload(x), Out: out}))
					want := make([]float32, tokens*c.rows)
					for tok := range tokens {
						model.MatVec(want[tok*c.rows:(tok+1)*c.rows], ref, x[tok*c.cols:(tok+1)*c.cols])
					}
					checkClose(t, fmt.Sprintf("%s %dx%d·%d tokens", kernel.Name, c.rows, c.cols, tokens), r.floats(out, len(want)), want, tol)
				}
			}
		}
	})
}

func TestRope(t *testing.T) {
	const tol = 1e-6
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(11, 12))
		for _, c := range []struct{ heads, headDim, rows, pos int }{{1, 2, 1, 0}, {3, 8, 1, 5}, {4, 64, 3, 17}, {6, 34, 7, 40}} {
			cfg := model.Config{Dim: c.heads * c.headDim, Heads: c.heads, Context: 64, RopeTheta: 10000}
			half := c.headDim / 2
			cos, sin := make([]float32, cfg.Context*half), make([]float32, cfg.Context*half)
			model.RopeTable(cfg, cos, sin)
			n := cfg.Dim
			x := randoms(rng, 4+c.rows*n)
			xb := r.upload(x)
			r.run(shaders.RoPE.Call(shaders.RoPEArgs{N: n, HeadDim: c.headDim, Rows: c.rows, Pos: c.pos, XOffset: 4, CosTable: r.upload(cos), SinTable: r.upload(sin), X: xb}))
			want := append([]float32(nil), x...)
			for row := range c.rows {
				p := c.pos + row
				model.Rope(want[4+row*n:4+(row+1)*n], cos[p*half:(p+1)*half], sin[p*half:(p+1)*half], c.headDim)
			}
			checkClose(t, fmt.Sprintf("rope %+v", c), r.floats(xb, len(x)), want, tol)
		}
	})
}

// attend is the attention loop of model.Forward for query rows at positions
// start, start+1, …: q [rows][dim], keys and values [context][dim]. Not
// causal, every query sees positions 0…start+rows-1, as a vision model's
// encoder (model's attentionForward with causal false, for start 0).
func attend(q, keys, values []float32, heads, headDim, rows, start int, causal bool) []float32 {
	dim := heads * headDim
	out := make([]float32, rows*dim)
	scale := 1 / float32(math.Sqrt(float64(headDim)))
	for row := range rows {
		for h := range heads {
			qh := q[row*dim+h*headDim : row*dim+(h+1)*headDim]
			span := start + rows
			if causal {
				span = start + row + 1
			}
			att := make([]float32, span)
			for t := range att {
				att[t] = model.Dot(qh, keys[t*dim+h*headDim:t*dim+(h+1)*headDim]) * scale
			}
			model.Softmax(att)
			o := out[row*dim+h*headDim : row*dim+(h+1)*headDim]
			for t, a := range att {
				for i := range o {
					o[i] += a * values[t*dim+h*headDim+i]
				}
			}
		}
	}
	return out
}

// attentionCase is one shape of an attention test: rows queries at
// positions start… over a layer cache of context positions.
type attentionCase struct{ heads, headDim, rows, start, context int }

// checkAttention runs kernel on each case, its layer's cache placed after
// layerOffset positions of another layer's, against attend.
func checkAttention(t *testing.T, seed uint64, kernel *shaders.Def[shaders.AttentionArgs], causal bool, layerOffset int, cases []attentionCase) {
	const tol = 1e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(seed, seed+1))
		for _, c := range cases {
			dim := c.heads * c.headDim
			q := randoms(rng, c.rows*dim)
			keys, values := randoms(rng, (layerOffset+c.context)*dim), randoms(rng, (layerOffset+c.context)*dim)
			out := r.zeros(c.rows * dim)
			scores := r.zeros(c.rows * c.heads * c.context)
			scale := 1 / float32(math.Sqrt(float64(c.headDim)))
			r.run(kernel.Call(shaders.AttentionArgs{HeadDim: c.headDim, Heads: c.heads, Rows: c.rows, Start: c.start, KVOffset: layerOffset * dim, ScoresStride: c.context, Scale: scale,
				Q: r.upload(q), Keys: r.upload(keys), Values: r.upload(values), Scores: scores, Out: out}))
			want := attend(q, keys[layerOffset*dim:], values[layerOffset*dim:], c.heads, c.headDim, c.rows, c.start, causal)
			checkClose(t, fmt.Sprintf("%s %+v", kernel.Name, c), r.floats(out, len(want)), want, tol)
		}
	})
}

func TestAttention(t *testing.T) {
	checkAttention(t, 13, shaders.Attention, true, 3, []attentionCase{
		{1, 2, 1, 0, 4}, {2, 8, 1, 9, 16}, {4, 16, 1, 99, 130}, {3, 64, 1, 200, 300}, // decode
		{2, 8, 5, 0, 8}, {4, 16, 7, 30, 64}, // causal prefill
	})
}

// TestAttentionBidirectional: every query attends to every position of the
// pass (and any before it), a vision model's T patches at start 0.
func TestAttentionBidirectional(t *testing.T) {
	checkAttention(t, 41, shaders.AttentionBidirectional, false, 2, []attentionCase{
		{1, 2, 1, 0, 1}, {2, 8, 5, 0, 8}, {4, 16, 16, 0, 16}, {3, 64, 49, 0, 49}, {2, 6, 70, 0, 70}, {2, 8, 7, 3, 12},
	})
}

func TestPatchEmbed(t *testing.T) {
	// Dot products of up to 147 terms in another order than model.MatVec's:
	// a few float32 ulps per term.
	const tol = 1e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(43, 44))
		for _, c := range []struct{ size, patch, channels, dim int }{{8, 4, 1, 8}, {6, 2, 3, 5}, {28, 7, 1, 65}, {8, 8, 3, 3}, {14, 7, 3, 130}} {
			im := model.ImageConfig{Size: c.size, Patch: c.patch, Channels: c.channels}
			pixels := make([]float32, im.Pixels())
			for i := range pixels {
				pixels[i] = rng.Float32()
			}
			w, pos := randoms(rng, c.dim*im.PatchLen()), randoms(rng, im.Patches()*c.dim)
			out := r.zeros(im.Patches() * c.dim)
			r.run(shaders.PatchEmbed.Call(shaders.PatchEmbedArgs{Dim: c.dim, Size: c.size, Side: c.patch, Channels: c.channels,
				Pixels: r.upload(pixels), W: r.upload(w), Pos: r.upload(pos), Out: out}))
			patches := make([]float32, im.Patches()*im.PatchLen())
			model.PatchesOf(im, patches, pixels)
			want := make([]float32, im.Patches()*c.dim)
			for p := range im.Patches() {
				row := want[p*c.dim : (p+1)*c.dim]
				model.MatVec(row, w, patches[p*im.PatchLen():(p+1)*im.PatchLen()])
				model.Add(row, pos[p*c.dim:(p+1)*c.dim])
			}
			checkClose(t, fmt.Sprintf("patch_embed %+v", c), r.floats(out, len(want)), want, tol)
		}
	})
}

// TestMeanPool: the same sums in the same order, scaled once, as the
// model's mean pooling: equal bit for bit.
func TestMeanPool(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(45, 46))
		for _, c := range []struct{ n, rows int }{{1, 1}, {8, 4}, {65, 16}, {300, 49}} {
			x := randoms(rng, c.rows*c.n)
			out := r.zeros(c.n)
			scale := 1 / float32(c.rows)
			r.run(shaders.MeanPool.Call(shaders.MeanPoolArgs{N: c.n, Rows: c.rows, Scale: scale, X: r.upload(x), Out: out}))
			want := make([]float32, c.n)
			for row := range c.rows {
				model.Add(want, x[row*c.n:(row+1)*c.n])
			}
			for i := range want {
				want[i] *= scale
			}
			checkClose(t, fmt.Sprintf("mean_pool %+v", c), r.floats(out, c.n), want, 0)
		}
	})
}

func TestSoftmax(t *testing.T) {
	const tol = 1e-5
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(15, 16))
		for _, c := range []struct{ n, rows int }{{1, 1}, {5, 3}, {256, 1}, {1001, 2}} {
			x := randoms(rng, c.n*c.rows)
			for i := range x {
				x[i] *= 10
			}
			xb := r.upload(x)
			r.run(shaders.Softmax.Call(shaders.SoftmaxArgs{N: c.n, Rows: c.rows, X: xb}))
			want := append([]float32(nil), x...)
			for i := range c.rows {
				model.Softmax(want[i*c.n : (i+1)*c.n])
			}
			checkClose(t, fmt.Sprintf("softmax %+v", c), r.floats(xb, len(want)), want, tol)
		}
	})
}

func TestSwiGLU(t *testing.T) {
	const tol = 1e-6
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(17, 18))
		for _, n := range []int{1, 255, 1000} {
			gate, up := randoms(rng, n), randoms(rng, n)
			for i := range gate {
				gate[i] *= 8
			}
			out := r.zeros(n)
			r.run(shaders.SwiGLU.Call(shaders.SwiGLUArgs{N: n, Gate: r.upload(gate), Up: r.upload(up), Out: out}))
			want := make([]float32, n)
			model.SwiGLU(want, gate, up)
			checkClose(t, fmt.Sprintf("swiglu %d", n), r.floats(out, n), want, tol)
		}
	})
}

func TestAdd(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(19, 20))
		for _, n := range []int{1, 257, 70000} {
			x, y := randoms(rng, n), randoms(rng, n)
			xb := r.upload(x)
			r.run(shaders.Add.Call(shaders.AddArgs{N: n, Y: r.upload(y), X: xb}))
			model.Add(x, y)
			checkClose(t, fmt.Sprintf("add %d", n), r.floats(xb, n), x, 0)
		}
	})
}

func TestArgmax(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(21, 22))
		for _, n := range []int{1, 2, 255, 256, 1000, 5000} {
			for _, ties := range []bool{false, true} {
				x := randoms(rng, n)
				if ties { // a few values, many equal maxima
					for i := range x {
						x[i] = float32(rng.IntN(3))
					}
				}
				out := r.zeros(3)
				// x after 3 other values, as one row of a [rows][vocab] logits buffer.
				r.run(shaders.Argmax.Call(shaders.ArgmaxArgs{N: n, OutIndex: 2, XOffset: 3, X: r.upload(append([]float32{9, 9, 9}, x...)), Out: out}))
				if got, want := r.uints(out, 3)[2], model.Argmax(x); int(got) != want {
					t.Errorf("argmax(n=%d, ties=%v) = %d; want %d", n, ties, got, want)
				}
			}
		}
	})
}

func TestSamplerState(t *testing.T) {
	for _, seed := range []uint64{0, 1, 42, 1 << 40, math.MaxUint64} {
		// After NewRNG, one more step gives the same output as the CPU's first draw.
		state := shaders.SamplerState(seed)
		next := state*747796405 + 2891336453
		word := ((next >> ((next >> 28) + 4)) ^ next) * 277803737
		if got, want := (word>>22)^word, model.NewRNG(seed).Uint32(); got != want {
			t.Errorf("first draw after SamplerState(%d) = %d; want %d", seed, got, want)
		}
	}
}

// TestPenalize: the penalties of the window's distinct tokens, against
// model.Penalize then model.PenalizePresence. WGSL's f32 division may be
// off by 2.5 ulp (a CPU driver divides exactly).
func TestPenalize(t *testing.T) {
	const tol = 1e-6
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(51, 52))
		for _, c := range []struct {
			n, first, count      int
			repetition, presence float32
		}{
			{5, 0, 1, 1.5, 0}, {50, 3, 20, 2, 0.5}, {50, 0, 40, 0, -1.2}, {300, 10, 64, 1.3, 0}, {300, 0, 200, 10, 2}, {1000, 5, 0, 2, 1},
		} {
			logits := randoms(rng, c.n)
			tokens := make([]uint32, c.first+c.count+1)
			recent := make([]int, c.count)
			for i := range tokens {
				tokens[i] = uint32(rng.IntN(c.n/3 + 1)) // repeats
			}
			tokens[len(tokens)-1] = uint32(c.n) // past the window: never read
			for i := range recent {
				recent[i] = int(tokens[c.first+i])
			}
			lb := r.upload(logits)
			r.run(shaders.Penalize.Call(shaders.PenalizeArgs{N: c.n, First: c.first, Count: c.count, Repetition: c.repetition, Presence: c.presence,
				Tokens: r.upload(tokens), Logits: lb}))
			want := append([]float32(nil), logits...)
			model.Penalize(want, recent, c.repetition)
			model.PenalizePresence(want, recent, c.presence)
			checkClose(t, fmt.Sprintf("penalize %+v", c), r.floats(lb, c.n), want, tol)
		}
	})
}

// TestSample checks that the GPU sampler draws the CPU sampler's tokens from
// the same seed. The GPU sums probabilities in another order, so a draw that
// falls within rounding of a boundary between two candidates may differ:
// allow at most 1 in 100.
func TestSample(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(23, 24))
		cases := []struct {
			n, topK     int
			topP, temp  float32
			integerLogs bool // logits with many exact ties
			minP        float32
		}{
			{1, 0, 0, 1, false, 0}, {10, 0, 0, 1, false, 0}, {300, 0, 0.9, 0.8, false, 0}, {300, 20, 0, 1.2, false, 0},
			{1000, 40, 0.95, 0.7, false, 0}, {1000, 0, 0.5, 1, true, 0}, {517, 7, 0, 1, true, 0},
			{300, 0, 0, 1, false, 0.1}, {1000, 40, 0.9, 0.8, false, 0.05}, {517, 0, 0, 1, true, 0.5}, {200, 0, 0, 1, false, 1},
		}
		const draws = 40
		mismatches, total := 0, 0
		for _, c := range cases {
			seed := rng.Uint64()
			cpu := model.Sampler{Temperature: c.temp, TopK: c.topK, TopP: c.topP, MinP: c.minP, RNG: model.NewRNG(seed)}
			state := r.upload([]uint32{shaders.SamplerState(seed)})
			out := r.zeros(draws)
			for i := range draws {
				logits := randoms(rng, c.n)
				for j := range logits {
					logits[j] *= 4
					if c.integerLogs {
						logits[j] = float32(int(logits[j]))
					}
				}
				lb := r.upload(logits)
				r.run(shaders.Sample.Call(shaders.SampleArgs{N: c.n, TopK: c.topK, TopP: c.topP, Temperature: c.temp, MinP: c.minP, OutIndex: i, Logits: lb, State: state, Out: out}))
				if err := d.Submit(); err != nil {
					t.Fatal(err)
				}
				want := cpu.Sample(logits)
				got := r.uints(out, draws)[i]
				total++
				if int(got) != want {
					mismatches++
					t.Logf("sample %+v draw %d = %d; CPU drew %d", c, i, got, want)
				}
				if err := d.DestroyBuffer(lb); err != nil {
					t.Fatal(err)
				}
			}
		}
		if mismatches*100 > total {
			t.Errorf("%d of %d GPU draws differ from the CPU's; want at most 1%%", mismatches, total)
		}
	})
}
