package model

import (
	"fmt"
	"math"
)

// Token routing: each token picks, layer by layer, how much of the nested FFN
// it runs. Mix'n'Match fixes one granularity per layer for every token;
// routing lets an easy token (a space, the end of a common word) run S while a
// hard one runs XL, in the same layer of the same step.
//
// The router of layer l is linear: from the FFN input n = rmsnorm(x) ([dim])
// it scores each granularity g but XL,
//
//	s_g = w_g · n + b_g  ≈  log Δloss_g(n)
//
// the log of how much running g instead of XL in this layer, for this token,
// adds to the loss (nats). Given a price τ (log nats per unit of FFN width,
// in units of XL's) the token runs the granularity that minimises
//
//	exp(s_g) + exp(τ) · width_g / width_XL        (XL: exp(τ), s = −∞)
//
// predicted loss plus priced compute, the Lagrangian of "least loss for a
// mean FLOPs budget". Raising τ sends more tokens narrow: one trained router
// serves every budget, and a budget table in the file (rows (fraction of XL's
// FFN FLOPs, τ), measured on training text when the router was fitted) turns a
// budget into τ. τ = −∞ is XL for every token and τ = +∞ S for every token,
// exactly: the routed network then computes what Forward computes for the
// uniform mix. How the scores are fitted is routefit.go and
// weights/experiment/route.go.
//
// The router costs 2·(G−1)·(dim+1) FLOPs per token and layer, against
// 6·dim·width for the FFN it sizes (0.13 % of XL's for the default model).

// maxRouterBudgets bounds the budget table.
const maxRouterBudgets = 1024

// HasRouter reports whether the network carries router tensors.
func (c Config) HasRouter() bool { return c.RouterBudgets > 0 }

// FFNFLOPs is the FLOPs (multiply and add counted apart) of one token through
// an FFN of the given width: gate, up and down products, dim·width each.
func (c Config) FFNFLOPs(width int) float64 { return 6 * float64(c.Dim) * float64(width) }

// RouterFLOPs is the FLOPs of one token through one layer's router.
func (c Config) RouterFLOPs() float64 {
	return 2 * float64(c.Granularities()-1) * float64(c.Dim+1)
}

// RoutePick returns the granularity a token whose FFN input is n ([dim]) runs
// under a router ([G-1][dim+1]) at price tau, for FFN widths ([G]): the one
// minimising exp(s_g) + exp(tau)·widths[g]/widths[G-1] (on a tie, XL over
// the others and the narrower among them); 0 for tau = +∞, G-1 for tau = −∞.
func RoutePick(router, n []float32, tau float32, widths []int) int {
	G := len(widths)
	switch {
	case math.IsInf(float64(tau), 1):
		return 0
	case math.IsInf(float64(tau), -1):
		return G - 1
	}
	d := len(n)
	price := math.Exp(float64(tau))
	best, bestCost := G-1, price
	for g := range G - 1 {
		row := router[g*(d+1) : (g+1)*(d+1)]
		cost := math.Exp(float64(Dot(row[:d], n)+row[d])) + price*float64(widths[g])/float64(widths[G-1])
		if cost < bestCost {
			best, bestCost = g, cost
		}
	}
	return best
}

// CheckRouter reports whether w's router can be used: the config has one and
// its budget table's fractions ascend within (0, 1] (Validate of the weights
// file guarantees finiteness, not order).
func (w *Weights) CheckRouter() error {
	c := w.Config
	if !c.HasRouter() {
		return fmt.Errorf("model: this network has no router (config router_budgets is 0)")
	}
	prev := float32(0)
	for i := range c.RouterBudgets {
		f, tau := w.RouterBudget[2*i], w.RouterBudget[2*i+1]
		if !(f > prev && f <= 1) || math.IsNaN(float64(tau)) {
			return fmt.Errorf("model: router budget row %d: fraction %g must ascend within (0, 1] (previous %g)", i, f, prev)
		}
		prev = f
	}
	return nil
}

// RouteThreshold turns a budget, the fraction of XL's FFN FLOPs a token may
// spend on average, into the router's threshold τ: linear between the rows of
// the budget table; budget ≥ 1 gives −∞ (XL for every token), a budget at or
// below S's share (FFNWidths[0]/Hidden) gives +∞ (S for every token); between
// S's share and the first row, and between the last row and 1, τ stays that
// row's. w must pass CheckRouter.
func (w *Weights) RouteThreshold(budget float64) float32 {
	c := w.Config
	table := w.RouterBudget // [RouterBudgets][2]
	switch {
	case budget >= 1:
		return float32(math.Inf(-1))
	case budget <= float64(c.FFNWidths[0])/float64(c.Hidden()):
		return float32(math.Inf(1))
	case budget <= float64(table[0]):
		return table[1]
	}
	last := c.RouterBudgets - 1
	if budget >= float64(table[2*last]) {
		return table[2*last+1]
	}
	for i := 1; i <= last; i++ {
		f0, f1 := float64(table[2*(i-1)]), float64(table[2*i])
		if budget <= f1 {
			t := (budget - f0) / (f1 - f0)
			return float32(float64(table[2*(i-1)+1])*(1-t) + float64(table[2*i+1])*t)
		}
	}
	return table[2*last+1]
}

// Picker chooses the granularity of layer l for a token whose FFN input is n
// ([dim]).
type Picker func(l int, n []float32) int

// Threshold is the Picker of w's routers at price tau.
func (w *Weights) Threshold(tau float32) Picker {
	return func(l int, n []float32) int { return RoutePick(w.Layers[l].Router, n, tau, w.Config.FFNWidths) }
}

// ForwardRouted is Forward with the granularity of each layer chosen for this
// token by pick, from the FFN input, instead of fixed by a Mix. It records the
// granularity of each layer in picks ([layers]; nil: not recorded) and returns
// the logits ([vocab], valid until the next call). Every op and its order are
// Forward's, so a Picker that always returns Z gives Forward's logits for the
// uniform mix Z bit for bit. w must hold every row pick may choose.
func ForwardRouted(w *Weights, s *State, pick Picker, token, pos int, picks []int) []float32 {
	return forward(w, s, nil, pick, token, pos, picks)
}
