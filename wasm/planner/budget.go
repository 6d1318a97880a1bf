package planner

import (
	"fmt"
	"strings"
)

// Budget is what the caller asks of a plan. Every non-zero field is a hard
// limit: a plan that breaks one is never returned.
type Budget struct {
	Name string `msgpack:"name" json:"name,omitempty"` // the preset it came from, if any
	// TargetTokensPerSecond is the slowest predicted decode speed accepted.
	TargetTokensPerSecond float64 `msgpack:"target_tokens_per_second" json:"target_tokens_per_second"`
	// MaxDownloadBytes bounds the weights to fetch. 0: no limit.
	MaxDownloadBytes int64 `msgpack:"max_download_bytes" json:"max_download_bytes,omitempty"`
	// MaxDownloadSeconds bounds the download time at the network's reported
	// downlink. It applies only when the downlink is known. 0: no limit.
	MaxDownloadSeconds float64 `msgpack:"max_download_seconds" json:"max_download_seconds,omitempty"`
	// MaxMemoryBytes bounds the memory the plan keeps resident. 0: the
	// device's allowance (half its reported memory) is the only limit.
	MaxMemoryBytes int64 `msgpack:"max_memory_bytes" json:"max_memory_bytes,omitempty"`
	// Backend is "cpu" or "gpu" to force one, or "" (or "auto") to pick.
	Backend string `msgpack:"backend" json:"backend,omitempty"`
}

// Presets. Reading speed is about 5 words (≈ 7 tokens) a second, so
// "balanced" asks for a little more than that, "fast" for text that appears
// at once, and "best" only for text that is still usable.
var (
	Fast     = Budget{Name: "fast", TargetTokensPerSecond: 25, MaxDownloadSeconds: 20}
	Balanced = Budget{Name: "balanced", TargetTokensPerSecond: 10, MaxDownloadSeconds: 120}
	Best     = Budget{Name: "best", TargetTokensPerSecond: 2}
)

// Preset returns the budget named fast, balanced or best.
func Preset(name string) (Budget, error) {
	switch strings.ToLower(name) {
	case "fast":
		return Fast, nil
	case "balanced", "":
		return Balanced, nil
	case "best":
		return Best, nil
	}
	return Budget{}, fmt.Errorf("planner: budget %q: want fast, balanced or best", name)
}

// MaxTargetTokensPerSecond bounds a budget's speed target: far above any
// device, and small enough that the planner's arithmetic stays finite.
const MaxTargetTokensPerSecond = 1e9

// Validate reports a budget no plan can be measured against. Choose calls
// it; hosts call it to refuse a bad budget before measuring the device.
func (b Budget) Validate() error {
	switch {
	case !(b.TargetTokensPerSecond >= 0) || b.TargetTokensPerSecond > MaxTargetTokensPerSecond:
		return fmt.Errorf("planner: target %g tokens/s: want 0 to %g", b.TargetTokensPerSecond, float64(MaxTargetTokensPerSecond))
	case b.MaxDownloadBytes < 0 || b.MaxMemoryBytes < 0:
		return fmt.Errorf("planner: negative byte budget (download %d, memory %d)", b.MaxDownloadBytes, b.MaxMemoryBytes)
	case !(b.MaxDownloadSeconds >= 0):
		return fmt.Errorf("planner: download time %g s: want ≥ 0", b.MaxDownloadSeconds)
	}
	switch b.Backend {
	case "", "auto", BackendCPU, BackendGPU:
		return nil
	}
	return fmt.Errorf("planner: backend %q: want cpu, gpu or auto", b.Backend)
}

func (b Budget) String() string {
	var parts []string
	if b.TargetTokensPerSecond > 0 {
		parts = append(parts, fmt.Sprintf("≥ %s tokens/s", formatRate(b.TargetTokensPerSecond)))
	}
	if b.MaxDownloadBytes > 0 {
		parts = append(parts, "download ≤ "+formatBytes(b.MaxDownloadBytes))
	}
	if b.MaxDownloadSeconds > 0 {
		parts = append(parts, fmt.Sprintf("download ≤ %g s", b.MaxDownloadSeconds))
	}
	if b.MaxMemoryBytes > 0 {
		parts = append(parts, "memory ≤ "+formatBytes(b.MaxMemoryBytes))
	}
	if b.Backend != "" && b.Backend != "auto" {
		parts = append(parts, "backend "+b.Backend)
	}
	s := strings.Join(parts, ", ")
	if s == "" {
		s = "no limits"
	}
	if b.Name != "" {
		s = b.Name + " (" + s + ")"
	}
	return s
}
