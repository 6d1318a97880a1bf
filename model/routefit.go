package model

import (
	"fmt"
	"math"
	"slices"
)

// Fitting the routers. With the MatFormer frozen, each layer's router is a
// ridge regression of the log relative error of every granularity but XL
// (RouteTrace) on the FFN input and a constant, solved in closed form from
// the normal equations: one pass of the network over the fitting text, then a
// (dim+1)² solve per layer. No gradient steps, no learning rate, and the same
// records give the same router on every machine.

// minRelErr floors the relative errors before their log: a granularity whose
// output equals XL's (a dead neuron range) would otherwise be −∞.
const minRelErr = 1e-6

// RouterFit accumulates the normal equations of every layer's regression.
type RouterFit struct {
	config Config
	xtx    [][]float64 // [layers][(dim+1)²] Σ z zᵀ, z = (n, 1)
	xty    [][]float64 // [layers][(dim+1)·(G-1)] Σ z·y_g, column-major by g
	rows   []int       // [layers] records seen
}

// NewRouterFit starts a fit for networks of config c (at least 2 granularities).
func NewRouterFit(c Config) *RouterFit {
	k := c.Dim + 1
	f := &RouterFit{config: c, xtx: make([][]float64, c.Layers), xty: make([][]float64, c.Layers), rows: make([]int, c.Layers)}
	for l := range f.xtx {
		f.xtx[l] = make([]float64, k*k)
		f.xty[l] = make([]float64, k*(c.Granularities()-1))
	}
	return f
}

// Add records layer l's rows: FFN inputs in ([N][D]) and relative errors
// relErr ([N][G]), as a RouteTrace receives them.
func (f *RouterFit) Add(l int, in, relErr []float32) {
	c := f.config
	d, k, G := c.Dim, c.Dim+1, c.Granularities()
	z := make([]float64, k)
	xtx, xty := f.xtx[l], f.xty[l]
	for r := range len(in) / d {
		for i, v := range in[r*d : (r+1)*d] {
			z[i] = float64(v)
		}
		z[d] = 1
		for i, zi := range z { // upper triangle; Solve mirrors it
			row := xtx[i*k : (i+1)*k]
			for j := i; j < k; j++ {
				row[j] += zi * z[j]
			}
		}
		for g := range G - 1 {
			y := math.Log(max(float64(relErr[r*G+g]), minRelErr))
			col := xty[g*k : (g+1)*k]
			for i, zi := range z {
				col[i] += zi * y
			}
		}
		f.rows[l]++
	}
}

// Solve returns every layer's router ([layers][G-1][dim+1]) minimising the
// squared error plus ridge·rows·‖w‖² (the bias unpenalised).
func (f *RouterFit) Solve(ridge float64) ([][]float32, error) {
	c := f.config
	k, G := c.Dim+1, c.Granularities()
	routers := make([][]float32, c.Layers)
	for l := range routers {
		if f.rows[l] < k {
			return nil, fmt.Errorf("model: router fit: layer %d has %d records, want at least %d", l, f.rows[l], k)
		}
		a := slices.Clone(f.xtx[l])
		for i := range k {
			for j := range i {
				a[i*k+j] = a[j*k+i]
			}
			if i < k-1 {
				a[i*k+i] += ridge * float64(f.rows[l])
			}
		}
		chol, err := cholesky(a, k)
		if err != nil {
			return nil, fmt.Errorf("model: router fit: layer %d: %w", l, err)
		}
		routers[l] = make([]float32, (G-1)*k)
		for g := range G - 1 {
			sol := choleskySolve(chol, f.xty[l][g*k:(g+1)*k], k)
			for i, v := range sol {
				routers[l][g*k+i] = float32(v)
			}
		}
	}
	return routers, nil
}

// cholesky factors the symmetric positive definite a ([k][k]) as L·Lᵀ and
// returns L (lower triangle, row-major).
func cholesky(a []float64, k int) ([]float64, error) {
	lo := make([]float64, k*k)
	for i := range k {
		for j := 0; j <= i; j++ {
			s := a[i*k+j]
			for p := range j {
				s -= lo[i*k+p] * lo[j*k+p]
			}
			if i == j {
				if !(s > 0) {
					return nil, fmt.Errorf("normal equations not positive definite at row %d (add ridge)", i)
				}
				lo[i*k+i] = math.Sqrt(s)
			} else {
				lo[i*k+j] = s / lo[j*k+j]
			}
		}
	}
	return lo, nil
}

// choleskySolve solves L·Lᵀ·x = b.
func choleskySolve(lo, b []float64, k int) []float64 {
	y := make([]float64, k)
	for i := range k {
		s := b[i]
		for p := range i {
			s -= lo[i*k+p] * y[p]
		}
		y[i] = s / lo[i*k+i]
	}
	x := make([]float64, k)
	for i := k - 1; i >= 0; i-- {
		s := y[i]
		for p := i + 1; p < k; p++ {
			s -= lo[p*k+i] * x[p]
		}
		x[i] = s / lo[i*k+i]
	}
	return x
}

// BudgetTable builds the budget table from calibration records: preds
// ([records][G-1], each record one token in one layer: its router's scores).
// For candidate prices at rows quantiles of the prices where some
// granularity starts to beat XL, it measures the mean width the records would
// run, as a fraction of XL's, and keeps the rows whose fraction strictly
// ascends below 1: at most rows rows, (fraction, τ) each.
func BudgetTable(c Config, preds []float32, rows int) []float32 {
	G := c.Granularities()
	var switches []float32
	for i, s := range preds {
		g := i % (G - 1)
		switches = append(switches, s-float32(math.Log(1-float64(c.FFNWidths[g])/float64(c.Hidden()))))
	}
	slices.Sort(switches)
	var table []float32
	for i := range rows {
		tau := switches[min(len(switches)-1, i*len(switches)/rows)]
		var width float64
		for r := range len(preds) / (G - 1) {
			width += float64(c.FFNWidths[pickScores(preds[r*(G-1):(r+1)*(G-1)], tau, c.FFNWidths)])
		}
		frac := float32(width / float64(len(preds)/(G-1)) / float64(c.Hidden()))
		table = append(table, frac, tau)
	}
	// A higher price sends more tokens narrow: walk from the highest up in fraction.
	var out []float32
	for i := len(table)/2 - 1; i >= 0; i-- {
		if f := table[2*i]; (len(out) == 0 || f > out[len(out)-2]) && f < 1 {
			out = append(out, f, table[2*i+1])
		}
	}
	return out
}

// pickScores is RoutePick on scores already computed.
func pickScores(scores []float32, tau float32, widths []int) int {
	G := len(widths)
	price := math.Exp(float64(tau))
	best, bestCost := G-1, price
	for g, s := range scores {
		if cost := math.Exp(float64(s)) + price*float64(widths[g])/float64(widths[G-1]); cost < bestCost {
			best, bestCost = g, cost
		}
	}
	return best
}

// WithRouter returns a copy of w that carries routers ([layers][G-1][dim+1])
// and a budget table ([K][2], fractions ascending).
func WithRouter(w *Weights, routers [][]float32, budget []float32) (*Weights, error) {
	c := w.Config
	c.RouterBudgets = len(budget) / 2
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := NewNestedWeights(c, w.NestedRows)
	old := w.Tensors()
	for i, t := range out.Tensors() {
		if i < len(old) && old[i].Name == t.Name {
			copy(t.Data, old[i].Data)
		}
	}
	for l, r := range routers {
		if len(r) != len(out.Layers[l].Router) {
			return nil, fmt.Errorf("model: router of layer %d has %d values, want %d", l, len(r), len(out.Layers[l].Router))
		}
		copy(out.Layers[l].Router, r)
	}
	copy(out.RouterBudget, budget)
	return out, out.CheckRouter()
}
