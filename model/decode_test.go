package model

import (
	"math"
	"testing"
)

// TestExp32 checks exp32 against math.Exp: within 3 float32 ulp over the
// range it serves, 0 below it (and at −∞), NaN for NaN.
func TestExp32(t *testing.T) {
	worst := 0.0
	for x := float32(-87.25); x <= 88.25; x += 0.0137 {
		got, want := float64(exp32(x)), math.Exp(float64(x))
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want))
		if e := math.Abs(got-want) / ulp; e > worst {
			worst = e
		}
	}
	if worst > 3 {
		t.Errorf("exp32 is %.2f ulp from e^x at worst; want ≤ 3", worst)
	}
	for _, tt := range []struct{ x, want float32 }{{0, 1}, {-88, 0}, {float32(math.Inf(-1)), 0}, {-1000, 0}} {
		if got := exp32(tt.x); got != tt.want {
			t.Errorf("exp32(%v) = %v; want %v", tt.x, got, tt.want)
		}
	}
	if got := exp32(float32(math.NaN())); got == got {
		t.Errorf("exp32(NaN) = %v; want NaN", got)
	}
	if got := exp32(1000); got <= 2e38 || math.IsInf(float64(got), 0) {
		t.Errorf("exp32(1000) = %v; want e^88.3, finite", got)
	}
}
