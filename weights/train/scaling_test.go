package train

import (
	"math"
	"testing"
)

func TestFitPowerLawRecoversLaw(t *testing.T) {
	want := PowerLaw{A: 23.05, Alpha: 0.1407, C: 1.4352} // the seed's MatFormer law
	var n, loss []float64
	for _, x := range []float64{1e5, 3e5, 1e6, 3e6, 1e7} {
		n, loss = append(n, x), append(loss, want.At(x))
	}
	got, err := FitPowerLaw(n, loss)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.Alpha-want.Alpha) > 0.01 || math.Abs(got.C-want.C) > 0.05 || got.RMSE > 1e-3 {
		t.Fatalf("FitPowerLaw = %v (rmse %g); want %v", got, got.RMSE, want)
	}
}

func TestFitPowerLawRefusesBadPoints(t *testing.T) {
	for _, tt := range []struct{ n, loss []float64 }{
		{[]float64{1, 2}, []float64{3, 2}},
		{[]float64{1, 2, 3}, []float64{3, math.NaN(), 1}},
		{[]float64{1, 0, 3}, []float64{3, 2, 1}},
	} {
		if _, err := FitPowerLaw(tt.n, tt.loss); err == nil {
			t.Errorf("FitPowerLaw(%v, %v) = nil error", tt.n, tt.loss)
		}
	}
}
