package engine

import (
	"errors"
	"math"
	"testing"

	"github.com/matedge/matedge/weights"
)

// TestHeaderDataSizeOverflow: a small model whose header claims a data size
// near 2^63, with the file size unknown (a download), must be refused with
// ErrTooLarge: the size check must not wrap (issue 15, defect 2).
func TestHeaderDataSizeOverflow(t *testing.T) {
	c := weights.TinyConfig()
	for _, size := range []int64{math.MaxInt64, math.MaxInt64 - 100, 1 << 62, MaxModelBytes} {
		h := weights.Header{Config: c, Entries: weights.Plan(c, weights.F32), DataSize: size}
		file, err := weights.EncodeHeader(&h)
		if err != nil {
			t.Fatal(err)
		}
		var e Engine
		if _, err := e.LoadHeader(file, -1); !errors.Is(err, weights.ErrTooLarge) {
			t.Errorf("LoadHeader(data size %d) = %v; want ErrTooLarge", size, err)
		}
	}
}

// TestSamplingOptionsRanges: options that would overflow or poison the
// sampler are refused by the engine, so every host gets the same refusal.
func TestSamplingOptionsRanges(t *testing.T) {
	e := loaded(t, weightsFile(t, weights.Random(weights.TinyConfig(), 1)), nil)
	mix, err := e.ParseMix("S")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMix(mix); err != nil {
		t.Fatal(err)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, o := range []Options{
		{Temperature: nan}, {Temperature: 1e-45}, {Temperature: 1e30}, {Temperature: inf}, {Temperature: -1},
		{Temperature: 1, TopP: nan}, {Temperature: 1, TopP: 1.5}, {Temperature: 1, TopK: -2},
	} {
		if err := e.Reset(o); !errors.Is(err, ErrArg) {
			t.Errorf("Reset(%+v) = %v; want ErrArg", o, err)
		}
	}
	for _, o := range []Options{{}, {Temperature: 0.01}, {Temperature: 100, TopP: 1, TopK: 5}} {
		if err := e.Reset(o); err != nil {
			t.Errorf("Reset(%+v) = %v; want nil", o, err)
		}
	}
}
