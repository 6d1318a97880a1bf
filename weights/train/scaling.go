package train

import (
	"fmt"
	"math"
)

// PowerLaw is loss(N) = A·N^(−Alpha) + C, the form of the scaling laws the
// MatFormer paper fits (loss against non-embedding parameters N).
type PowerLaw struct {
	A     float64 `json:"a"`
	Alpha float64 `json:"alpha"`
	C     float64 `json:"c"`
	RMSE  float64 `json:"rmse"` // root-mean-square error of the fit, nats/token
}

// At is the law's loss at n parameters.
func (p PowerLaw) At(n float64) float64 { return p.A*math.Pow(n, -p.Alpha) + p.C }

func (p PowerLaw) String() string {
	return fmt.Sprintf("%.4g·N^−%.4f + %.4f", p.A, p.Alpha, p.C)
}

// FitPowerLaw fits loss = A·N^(−Alpha) + C to at least three points by least
// squares in loss. For a fixed C the law is a line in log–log space, so C is
// searched (a coarse grid over [0, min loss), then a finer one around the best)
// and A, Alpha come from a linear regression of log(loss − C) on log N.
func FitPowerLaw(n, loss []float64) (PowerLaw, error) {
	if len(n) != len(loss) || len(n) < 3 {
		return PowerLaw{}, fmt.Errorf("train: a power law needs at least 3 points, got %d", min(len(n), len(loss)))
	}
	lo := math.Inf(1)
	for i := range n {
		if n[i] <= 0 || loss[i] <= 0 || math.IsNaN(loss[i]) || math.IsInf(loss[i], 0) {
			return PowerLaw{}, fmt.Errorf("train: power-law point %d (N %g, loss %g) is not positive and finite", i, n[i], loss[i])
		}
		lo = math.Min(lo, loss[i])
	}
	best := PowerLaw{RMSE: math.Inf(1)}
	try := func(c float64) {
		p, ok := fitGivenC(n, loss, c)
		if ok && p.RMSE < best.RMSE {
			best = p
		}
	}
	const steps = 2000
	for i := range steps {
		try(lo * float64(i) / steps)
	}
	width := lo / steps
	center := best.C
	for i := -steps; i <= steps; i++ {
		if c := center + width*float64(i)/steps; c >= 0 && c < lo {
			try(c)
		}
	}
	if math.IsInf(best.RMSE, 1) {
		return PowerLaw{}, fmt.Errorf("train: no power law fits these points")
	}
	return best, nil
}

// fitGivenC regresses log(loss − c) on log n.
func fitGivenC(n, loss []float64, c float64) (PowerLaw, bool) {
	var sx, sy, sxx, sxy float64
	k := float64(len(n))
	for i := range n {
		x, y := math.Log(n[i]), math.Log(loss[i]-c)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	den := k*sxx - sx*sx
	if den == 0 {
		return PowerLaw{}, false
	}
	slope := (k*sxy - sx*sy) / den
	p := PowerLaw{A: math.Exp((sy - slope*sx) / k), Alpha: -slope, C: c}
	var se float64
	for i := range n {
		d := p.At(n[i]) - loss[i]
		se += d * d
	}
	p.RMSE = math.Sqrt(se / k)
	return p, !math.IsNaN(p.RMSE)
}
