package shaders

import (
	"io/fs"
	"math"
	"regexp"
	"strconv"
	"testing"
)

// TestFloatLiterals keeps out f32 literals beyond FLT_MAX, which Chromium's
// WGSL compiler rejects although naga (lavapipe) rounds them.
func TestFloatLiterals(t *testing.T) {
	literal := regexp.MustCompile(`[0-9.]+e\+?38`)
	names, err := fs.Glob(files, "*.wgsl")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		src := mustRead(name)
		for _, lit := range literal.FindAllString(src, -1) {
			if v, err := strconv.ParseFloat(lit, 64); err != nil || v > math.MaxFloat32 {
				t.Errorf("%s: literal %s is above FLT_MAX (%g)", name, lit, math.MaxFloat32)
			}
		}
	}
}
