package host

import (
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/matedge/matedge/model"
)

// TestToModelInput: grey values pass exactly, colour becomes luminance or
// RGB planes, a larger image is area-averaged, and a non-integer scale
// weighs each source pixel by the area it covers.
func TestToModelInput(t *testing.T) {
	grey1 := model.ImageConfig{Size: 2, Patch: 1, Channels: 1}
	g := image.NewGray(image.Rect(0, 0, 2, 2))
	copy(g.Pix, []uint8{0, 51, 102, 255})
	px, note := ToModelInput(g, grey1)
	for i, b := range g.Pix {
		if px[i] != float32(float64(b)/255) {
			t.Errorf("grey pixel %d: %g, want %d/255", i, px[i], b)
		}
	}
	if note != "" {
		t.Errorf("same size, grey: note %q", note)
	}

	// 4×4 → 2×2: each output is the mean of a 2×2 block.
	big := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range big.Pix {
		big.Pix[i] = uint8(i * 10)
	}
	px, note = ToModelInput(big, grey1)
	want := []float64{(0 + 10 + 40 + 50) / 4.0, (20 + 30 + 60 + 70) / 4.0, (80 + 90 + 120 + 130) / 4.0, (100 + 110 + 140 + 150) / 4.0}
	for i, w := range want {
		if math.Abs(float64(px[i])-w/255) > 1e-6 {
			t.Errorf("4×4 → 2×2 pixel %d: %g, want %g", i, px[i], w/255)
		}
	}
	if note != "resized from 4×4 to 2×2 (area average)" {
		t.Errorf("note %q", note)
	}

	// 3×1 → 2×2 (the aspect ratio is not kept): output column 0 covers
	// source x in [0, 1.5): pixel 0 whole and half of pixel 1.
	row := image.NewGray(image.Rect(0, 0, 3, 1))
	copy(row.Pix, []uint8{0, 90, 255})
	px, _ = ToModelInput(row, grey1)
	if w := (0*1 + 90*0.5) / 1.5 / 255; math.Abs(float64(px[0])-w) > 1e-6 || px[0] != px[2] {
		t.Errorf("3×1 → 2×2: %v, want column 0 = %g in both rows", px, w)
	}

	// Colour: luminance for one channel, planes for three.
	c := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for i := range 4 {
		c.Set(i%2, i/2, color.RGBA{255, 0, 0, 255})
	}
	px, note = ToModelInput(c, grey1)
	if math.Abs(float64(px[0])-0.299) > 1e-6 || note != "converted to grey (luminance)" {
		t.Errorf("red as grey: %g, note %q; want 0.299", px[0], note)
	}
	px, _ = ToModelInput(c, model.ImageConfig{Size: 2, Patch: 1, Channels: 3})
	if px[0] != 1 || px[4] != 0 || px[8] != 0 {
		t.Errorf("red as RGB planes: %v", px)
	}

	// Transparent counts as black.
	a := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	for i := range 4 {
		a.Set(i%2, i/2, color.NRGBA{255, 255, 255, 0})
	}
	if px, _ = ToModelInput(a, grey1); px[0] != 0 {
		t.Errorf("transparent white: %g, want 0", px[0])
	}
	InvertPixels(px, true)
	if px[0] != 1 {
		t.Errorf("inverted black: %g", px[0])
	}
}
