package shaders_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
)

// nearTie is how close, relatively, the CPU's float64 costs of two
// granularities must be for the route kernel's f32 costs to order them
// otherwise: f32's rounding is 6e-8, exp's a few ulps more.
const nearTie = 1e-5

// routeCosts is model.RoutePick's cost of each granularity of a token (the
// last's is the price), in float64 as the CPU computes them.
func routeCosts(router, n []float32, tau float32, widths []int) []float64 {
	G, d := len(widths), len(n)
	price := math.Exp(float64(tau))
	costs := make([]float64, G)
	costs[G-1] = price
	for g := range G - 1 {
		row := router[g*(d+1) : (g+1)*(d+1)]
		costs[g] = math.Exp(float64(model.Dot(row[:d], n)+row[d])) + price*float64(widths[g])/float64(widths[G-1])
	}
	return costs
}

// TestRoute: the route kernel's widths against model.RoutePick's picks,
// capped, on the same FFN inputs and routers, over granularity counts,
// dims, prices (±∞ forced), caps and more tokens than a workgroup; each
// token's width lands at its place in a [tokens][layers] table and nothing
// else is written. A pick other than the CPU's is allowed only as a near-tie:
// its CPU cost within nearTie of the best one's (the test logs how many).
func TestRoute(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(61, 62))
		const layers, layer, rows = 3, 1, 70
		const untouched = math.MaxUint32
		inf := float32(math.Inf(1))
		ties := 0
		for _, widths := range [][]int{model.NestedWidths(128), {24, 96}} {
			G := len(widths)
			picked := make([]int, G)
			ffn := make([]uint32, G)
			for g, w := range widths {
				ffn[g] = uint32(w)
			}
			for _, dim := range []int{1, 7, 32, 130} {
				router, x := randoms(rng, (G-1)*(dim+1)), randoms(rng, rows*dim)
				for _, tau := range []float32{-3, -0.5, 0, 1.5, 4, inf, -inf} {
					for _, limit := range []int{G - 1, 1, 0} {
						table := slices.Repeat([]uint32{untouched}, rows*layers)
						out := r.upload(table)
						forced, price := G, tau
						if math.IsInf(float64(tau), 0) {
							forced, price = 0, 0
							if tau < 0 {
								forced = G - 1
							}
						}
						r.run(shaders.Route.Call(shaders.RouteArgs{Dim: dim, Rows: rows, Granularities: G, Cap: limit, Forced: forced, Tau: price,
							WidthOffset: layer, WidthStride: layers, X: r.upload(x), Router: r.upload(router), FFNWidths: r.upload(ffn), Widths: out}))
						got := r.uints(out, rows*layers)
						for tok := range rows {
							what := fmt.Sprintf("widths %v dim %d tau %g cap %d token %d", widths, dim, tau, limit, tok)
							for l := range layers {
								if l != layer && got[tok*layers+l] != untouched {
									t.Fatalf("%s: wrote layer %d's entry", what, l)
								}
							}
							n := x[tok*dim : (tok+1)*dim]
							pick := model.RoutePick(router, n, tau, widths)
							picked[pick]++
							want := min(pick, limit)
							g := slices.Index(widths, int(got[tok*layers+layer]))
							if g < 0 {
								t.Fatalf("%s: width %d is no granularity's", what, got[tok*layers+layer])
							}
							if g == want {
								continue
							}
							// The kernel's uncapped pick is g, or at least the cap when g is it.
							costs := routeCosts(router, n, tau, widths)
							tie := false
							for q := range G {
								if min(q, limit) == g && costs[q] <= costs[pick]*(1+nearTie) {
									tie = true
								}
							}
							if !tie {
								t.Fatalf("%s: picked %d, the CPU %d (costs %v)", what, g, want, costs)
							}
							ties++
						}
					}
				}
			}
			for g, n := range picked {
				if n == 0 {
					t.Errorf("widths %v: the CPU never picked granularity %d (picks %v): the cases test too little", widths, g, picked)
				}
			}
		}
		t.Logf("%d near-ties picked otherwise than on the CPU", ties)
	})
}

// routedCase is one shape for TestRoutedKernels: w holds rows rows, which
// start at row first of the tensor (a slab).
type routedCase struct{ rows, cols, first int }

// TestRoutedKernels: each routed matrix kernel gives every token the plain
// kernel's bits on the rows below its own width — read from the widths
// buffer at width_offset + t·width_stride, less the slab's first row — and
// leaves its rows past the width untouched (matvec*, matmul*), or sums only
// those rows (matvec_t*), for widths of none, some, all and more than the
// slab holds.
func TestRoutedKernels(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		r := newRig(t, d)
		rng := rand.New(rand.NewPCG(63, 64))
		const stride, offset = 3, 2
		const sentinel = float32(-7.25)
		same := func(what string, got, want []float32) {
			t.Helper()
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s [%d] = %v; want %v", what, i, got[i], want[i])
				}
			}
		}
		for _, c := range []routedCase{{3, 6, 0}, {65, 128, 0}, {65, 128, 40}, {200, 34, 5}} {
			for _, half := range []bool{false, true} {
				w := randoms(rng, c.rows*c.cols)
				wbuf := r.upload(w)
				plainMV, routedMV, plainMVT, routedMVT := shaders.MatVec, shaders.MatVecRouted, shaders.MatVecT, shaders.MatVecTRouted
				plainMM, routedMM := shaders.MatMul, shaders.MatMulRouted
				if half {
					packed, _ := packF16(w)
					wbuf = r.upload(packed)
					plainMV, routedMV, plainMVT, routedMVT = shaders.MatVecF16, shaders.MatVecF16Routed, shaders.MatVecTF16, shaders.MatVecTF16Routed
					plainMM, routedMM = shaders.MatMulF16, shaders.MatMulF16Routed
				}
				type pair struct {
					plain  *shaders.Def[shaders.MatVecArgs]
					routed *shaders.Def[shaders.RoutedArgs]
				}
				rowKernels := []pair{{plainMV, routedMV}}
				if !half && c.cols%4 == 0 {
					rowKernels = append(rowKernels, pair{shaders.MatVec4, shaders.MatVec4Routed})
				}
				for _, width := range []int{0, c.first, c.first + 1, c.first + c.rows/2, c.first + c.rows, c.first + c.rows + 7} {
					limit := min(c.rows, max(width-c.first, 0))
					what := fmt.Sprintf("%+v half %v width %d", c, half, width)
					widths := r.upload([]uint32{9, 9, uint32(width), 9})
					x := r.upload(randoms(rng, max(c.rows, c.cols)))
					for _, k := range rowKernels {
						full := r.zeros(c.rows)
						r.run(k.plain.Call(shaders.MatVecArgs{Rows: c.rows, Cols: c.cols, X: x, W: wbuf, Out: full}))
						want := append(r.floats(full, c.rows)[:limit], slices.Repeat([]float32{sentinel}, c.rows-limit)...)
						out := r.upload(slices.Repeat([]float32{sentinel}, c.rows))
						r.run(k.routed.Call(shaders.RoutedArgs{Rows: c.rows, Cols: c.cols, Tokens: 1, FirstRow: c.first, WidthOffset: offset,
							X: x, W: wbuf, Out: out, Widths: widths}))
						same(k.routed.Name+" "+what, r.floats(out, c.rows), want)
					}
					sum := r.zeros(c.cols)
					r.run(plainMVT.Call(shaders.MatVecArgs{Rows: limit, Cols: c.cols, X: x, W: wbuf, Out: sum}))
					out := r.upload(slices.Repeat([]float32{sentinel}, c.cols))
					r.run(routedMVT.Call(shaders.RoutedArgs{Rows: c.rows, Cols: c.cols, Tokens: 1, FirstRow: c.first, WidthOffset: offset,
						X: x, W: wbuf, Out: out, Widths: widths}))
					same(routedMVT.Name+" "+what, r.floats(out, c.cols), r.floats(sum, c.cols))
				}
				// A batch: each token its own width, read at offset + t·stride.
				for _, tokens := range []int{1, 5, 33} {
					table := make([]uint32, offset+tokens*stride)
					limits := make([]int, tokens)
					for tok := range tokens {
						width := rng.IntN(c.first + c.rows + 4)
						table[offset+tok*stride] = uint32(width)
						limits[tok] = min(c.rows, max(width-c.first, 0))
					}
					x := r.upload(randoms(rng, tokens*c.cols))
					full := r.zeros(tokens * c.rows)
					r.run(plainMM.Call(shaders.MatMulArgs{Rows: c.rows, Cols: c.cols, Tokens: tokens, X: x, W: wbuf, Out: full}))
					want := r.floats(full, tokens*c.rows)
					for tok, limit := range limits {
						for row := limit; row < c.rows; row++ {
							want[tok*c.rows+row] = sentinel
						}
					}
					out := r.upload(slices.Repeat([]float32{sentinel}, tokens*c.rows))
					r.run(routedMM.Call(shaders.RoutedArgs{Rows: c.rows, Cols: c.cols, Tokens: tokens, FirstRow: c.first, WidthOffset: offset, WidthStride: stride,
						X: x, W: wbuf, Out: out, Widths: r.upload(table)}))
					same(fmt.Sprintf("%s %+v half %v widths %v", routedMM.Name, c, half, limits), r.floats(out, tokens*c.rows), want)
				}
			}
		}
	})
}
