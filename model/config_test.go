package model

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestConfigValidateRanges: the float fields of a config must be finite and
// in a range a network can run with (issue 15, defect 12: norm_eps = +Inf and
// an infinite or denormal rope_theta gave NUL tokens and NaN losses).
func TestConfigValidateRanges(t *testing.T) {
	good := Config{Vocab: 256, Dim: 32, Layers: 2, Heads: 4, FFNWidths: NestedWidths(128),
		Context: 64, RopeTheta: 10000, NormEps: 1e-5}
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	denormal := math.Float32frombits(1) // 1.4e-45
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" for valid
	}{
		{"default", func(c *Config) {}, ""},
		{"rope_theta 500000", func(c *Config) { c.RopeTheta = 500000 }, ""},
		{"rope_theta 1", func(c *Config) { c.RopeTheta = 1 }, ""},
		{"norm_eps 1e-12", func(c *Config) { c.NormEps = 1e-12 }, ""},
		{"norm_eps 1", func(c *Config) { c.NormEps = 1 }, ""},
		{"norm_eps +Inf", func(c *Config) { c.NormEps = inf }, "norm_eps"},
		{"norm_eps NaN", func(c *Config) { c.NormEps = nan }, "norm_eps"},
		{"norm_eps 0", func(c *Config) { c.NormEps = 0 }, "norm_eps"},
		{"norm_eps -1e-5", func(c *Config) { c.NormEps = -1e-5 }, "norm_eps"},
		{"norm_eps denormal", func(c *Config) { c.NormEps = denormal }, "norm_eps"},
		{"norm_eps 2", func(c *Config) { c.NormEps = 2 }, "norm_eps"},
		{"rope_theta +Inf", func(c *Config) { c.RopeTheta = inf }, "rope_theta"},
		{"rope_theta -Inf", func(c *Config) { c.RopeTheta = float32(math.Inf(-1)) }, "rope_theta"},
		{"rope_theta NaN", func(c *Config) { c.RopeTheta = nan }, "rope_theta"},
		{"rope_theta denormal", func(c *Config) { c.RopeTheta = denormal }, "rope_theta"},
		{"rope_theta 0.5", func(c *Config) { c.RopeTheta = 0.5 }, "rope_theta"},
		{"rope_theta 0", func(c *Config) { c.RopeTheta = 0 }, "rope_theta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.FFNWidths = append([]int(nil), good.FFNWidths...)
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestMixSpecAndPresets(t *testing.T) {
	c := Config{Vocab: 300, Dim: 16, Layers: 4, Heads: 2, FFNWidths: NestedWidths(64), Context: 8, RopeTheta: 10000, NormEps: 1e-5}
	presets := c.PresetMixes()
	var specs []string
	for _, m := range presets {
		spec := c.MixSpec(m)
		back, err := c.ParseMix(spec)
		if err != nil || fmt.Sprint(back) != fmt.Sprint(m) {
			t.Errorf("ParseMix(MixSpec(%v) = %q) = %v, %v", m, spec, back, err)
		}
		specs = append(specs, spec)
	}
	if got, want := strings.Join(specs, " "), "S M L XL S,M,L,XL XL,L,M,S"; got != want {
		t.Errorf("presets = %s; want %s", got, want)
	}
}

func TestMixNarrowerThan(t *testing.T) {
	for _, tt := range []struct {
		m, other Mix
		want     bool
	}{
		{Mix{0, 0}, Mix{3, 3}, true},
		{Mix{0, 3}, Mix{3, 3}, true},
		{Mix{3, 3}, Mix{3, 3}, false}, // equal is not narrower
		{Mix{0, 3}, Mix{1, 2}, false}, // wider in one layer
	} {
		if got := tt.m.NarrowerThan(tt.other); got != tt.want {
			t.Errorf("%v.NarrowerThan(%v) = %v; want %v", tt.m, tt.other, got, tt.want)
		}
	}
}
