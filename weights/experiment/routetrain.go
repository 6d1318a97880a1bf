package experiment

import (
	"fmt"
	"math"
	"time"

	"github.com/matedge/matedge/model"
)

// RouteTrainSetup is how Route trains the second, loss-trained series of
// routers (model.RouterTrainer): Steps Adam steps on batches of the fitting
// text, from the fitted routers, the MatFormer frozen. Each step draws its
// price τ uniformly between the fitted table's prices at the largest and
// the smallest budget measured, so one router is trained for every budget
// and a budget table maps budgets to τ as for the fitted routers. The
// temperature falls geometrically from Temp[0] to Temp[1] over the steps.
type RouteTrainSetup struct {
	Steps    int        `json:"steps"`
	Batch    int        `json:"batch"` // windows per step
	LR       float64    `json:"lr"`
	Temp     [2]float64 `json:"temperature"`      // from, to
	Straight bool       `json:"straight_through"` // forward the hard pick (else the softmax mixture)
	Seed     uint64     `json:"seed"`
	TauRange [2]float64 `json:"tau_range"` // the prices drawn, filled in by Route
	Keep     bool       `json:"keep"`      // Route returns the trained routers (for -write), not the fitted ones
}

// trainRoutedSeries trains routers from fitted (the fitted routers, scaled to
// scores) and returns the network with them and their budget table.
func trainRoutedSeries(s RouteSetup, r *RouteStudy, fitted [][]float32, fittedW *model.Weights, progress func(string)) (*model.Weights, error) {
	c := s.Weights.Config
	G := c.Granularities()
	t := s.Train
	if t.Batch <= 0 || !(t.LR > 0) || !(t.Temp[0] > 0) || !(t.Temp[1] > 0) {
		return nil, fmt.Errorf("route: router training needs a batch, a learning rate and temperatures above 0")
	}
	lo, hi := 1.0, 0.0
	for _, b := range s.Budgets {
		lo, hi = min(lo, b), max(hi, b)
	}
	tauLo, tauHi := float64(fittedW.RouteThreshold(hi)), float64(fittedW.RouteThreshold(lo))
	if math.IsInf(tauLo, 0) || math.IsInf(tauHi, 0) {
		return nil, fmt.Errorf("route: the budgets %g…%g reach uniform S or XL; router training needs budgets strictly between", lo, hi)
	}
	t.TauRange = [2]float64{tauLo, tauHi}
	r.Train = t

	routers := make([][]float32, c.Layers)
	for l := range routers {
		routers[l] = append([]float32(nil), fitted[l]...)
	}
	grad := make([][]float32, c.Layers)
	m1, m2 := make([][]float64, c.Layers), make([][]float64, c.Layers)
	for l := range grad {
		grad[l] = make([]float32, len(routers[l]))
		m1[l], m2[l] = make([]float64, len(routers[l])), make([]float64, len(routers[l]))
	}
	// The fitting text, cut into windows; step i takes the next t.Batch.
	ids := s.TrainIDs[:s.FitTokens+1]
	nWin := (len(ids) - 1) / s.SeqLen
	if nWin < t.Batch {
		return nil, fmt.Errorf("route: router training: %d fitting tokens make %d windows of %d, fewer than a batch of %d", s.FitTokens, nWin, s.SeqLen, t.Batch)
	}
	tr := model.NewRouterTrainer(c, t.Batch, s.SeqLen)
	rng := model.NewRNG(t.Seed)
	tokens, targets := make([]int, t.Batch*s.SeqLen), make([]int, t.Batch*s.SeqLen)
	mode := model.RouteSoft
	if t.Straight {
		mode = model.RouteStraightThrough
	}
	const beta1, beta2, eps = 0.9, 0.999, 1e-8
	start := time.Now()
	curve := make([]float64, 10)
	counts := make([]int, 10)
	win := 0
	for step := range t.Steps {
		for i := range t.Batch {
			w := (win + i) % nWin
			for j := range s.SeqLen {
				tokens[i*s.SeqLen+j], targets[i*s.SeqLen+j] = ids[w*s.SeqLen+j], ids[w*s.SeqLen+j+1]
			}
		}
		win = (win + t.Batch) % nWin
		frac := 0.0
		if t.Steps > 1 {
			frac = float64(step) / float64(t.Steps-1)
		}
		tau := tauLo + (tauHi-tauLo)*float64(rng.Float32())
		obj := model.RouteObjective{Tau: float32(tau), Temp: float32(t.Temp[0] * math.Pow(t.Temp[1]/t.Temp[0], frac)), Mode: mode}
		loss, share, err := tr.Forward(s.Weights, routers, obj, tokens, targets)
		if err != nil {
			return nil, err
		}
		bucket := min(9, step*10/t.Steps)
		curve[bucket] += loss + math.Exp(tau)*float64(c.Layers)*share
		counts[bucket]++
		for l := range grad {
			clear(grad[l])
		}
		tr.Backward(s.Weights, routers, grad)
		b1 := 1 - math.Pow(beta1, float64(step+1))
		b2 := 1 - math.Pow(beta2, float64(step+1))
		for l := range routers {
			for i, g := range grad[l] {
				m1[l][i] = beta1*m1[l][i] + (1-beta1)*float64(g)
				m2[l][i] = beta2*m2[l][i] + (1-beta2)*float64(g)*float64(g)
				routers[l][i] -= float32(t.LR * (m1[l][i] / b1) / (math.Sqrt(m2[l][i]/b2) + eps))
			}
		}
		if (step+1)%max(1, t.Steps/10) == 0 {
			progress(fmt.Sprintf("router training step %d/%d: τ %.2f, T %.3f, loss %.4f, expected FFN share %.3f", step+1, t.Steps, tau, obj.Temp, loss, share))
		}
	}
	for i := range curve {
		if counts[i] > 0 {
			curve[i] /= float64(counts[i])
		}
	}
	r.TrainCurve = curve
	r.TrainSecs = time.Since(start).Seconds()

	// The budget table from the trained scores on the calibration text, as
	// for the fitted routers.
	var scores []float32
	xl := func(int, []float32) int { return G - 1 }
	windows(s.TrainIDs[s.FitTokens:s.FitTokens+s.CalTokens+1], s.SeqLen, s.Batch, c, func(b *model.Batch, tokens, _ []int) {
		b.ForwardRouted(s.Weights, xl, tokens, nil, nil, func(l int, in, _ []float32) {
			d := c.Dim
			for row := range len(in) / d {
				for g := range G - 1 {
					w := routers[l][g*(d+1) : (g+1)*(d+1)]
					scores = append(scores, model.Dot(w[:d], in[row*d:(row+1)*d])+w[d])
				}
			}
		})
	})
	table := model.BudgetTable(c, scores, s.TableRows)
	progress(fmt.Sprintf("routers trained for %d steps in %.0f s", t.Steps, r.TrainSecs))
	return model.WithRouter(s.Weights, routers, table)
}
