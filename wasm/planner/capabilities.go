package planner

import (
	"errors"
	"fmt"
	"slices"

	"github.com/matedge/matedge/weights"
)

// Capabilities is what a device reports about itself. The browser runtime
// fills it from navigator.gpu, navigator.deviceMemory,
// navigator.hardwareConcurrency, navigator.storage.estimate() and
// navigator.connection; the native host (host.DetectCapabilities) from the
// machine. It crosses the ABI as msgpack and is read from files as JSON, with
// the same camelCase names the browser APIs use so that the page can copy
// them across without renaming. A zero number means "not reported".
type Capabilities struct {
	// Source says who measured this: "browser", "host", or a profile name.
	Source string `msgpack:"source" json:"source,omitempty"`
	// Adapter is the WebGPU adapter, or nil when there is none (no
	// navigator.gpu, requestAdapter returned null, no native driver).
	Adapter *Adapter `msgpack:"adapter" json:"adapter"`
	// DeviceMemoryBytes is the machine's memory: navigator.deviceMemory
	// (which browsers round down to a power of two and cap at 8 GiB) or the
	// host's physical memory. 0: unknown.
	DeviceMemoryBytes int64 `msgpack:"deviceMemoryBytes" json:"deviceMemoryBytes"`
	// LogicalCores is navigator.hardwareConcurrency or the host's CPU count.
	LogicalCores int `msgpack:"logicalCores" json:"logicalCores"`
	// StorageQuotaBytes is what the origin may still store (quota − usage
	// from navigator.storage.estimate()). 0: unknown.
	StorageQuotaBytes int64 `msgpack:"storageQuotaBytes" json:"storageQuotaBytes"`
	// Network is navigator.connection; all zero when the browser has none.
	Network Network `msgpack:"network" json:"network"`
	// Benchmarks are micro-benchmarks measured on this device, at most one
	// per backend. A backend without one is predicted from conservative
	// assumptions (see Plan.Reasons).
	Benchmarks []Benchmark `msgpack:"benchmarks" json:"benchmarks"`
	// CachedRanges are the bytes of the weights file the host already holds
	// (the browser's Cache API): they cost nothing to download, so a limit on
	// the download applies only to the rest.
	CachedRanges []weights.Range `msgpack:"cachedRanges" json:"cachedRanges,omitempty"`
}

// Adapter describes a WebGPU adapter: GPUAdapter.info, .limits, .features.
type Adapter struct {
	Vendor       string `msgpack:"vendor" json:"vendor"`             // GPUAdapterInfo.vendor, e.g. "intel"
	Architecture string `msgpack:"architecture" json:"architecture"` // GPUAdapterInfo.architecture, e.g. "gen-12lp"
	Description  string `msgpack:"description" json:"description"`   // GPUAdapterInfo.description or the native driver's name
	// Type is "discrete-gpu", "integrated-gpu", "cpu" (a software
	// rasterizer) or "" when the platform does not say (browsers do not).
	Type string `msgpack:"type" json:"type,omitempty"`
	// Fallback is GPUAdapter.isFallbackAdapter: a software implementation
	// such as SwiftShader. A native "cpu" adapter (lavapipe) sets it too.
	Fallback bool     `msgpack:"isFallbackAdapter" json:"isFallbackAdapter"`
	Backend  string   `msgpack:"backend" json:"backend,omitempty"` // native only: "vulkan", "metal", "d3d12"
	Limits   Limits   `msgpack:"limits" json:"limits"`
	Features []string `msgpack:"features" json:"features"` // WebGPU feature names: "shader-f16", "subgroups", "timestamp-query", …
}

// Limits are the adapter limits the planner reads, named as in GPUSupportedLimits.
// Zero means not reported; the planner then assumes WebGPU's default, which
// every adapter supports (DefaultLimits).
type Limits struct {
	MaxBufferSize                     uint64 `msgpack:"maxBufferSize" json:"maxBufferSize"`
	MaxStorageBufferBindingSize       uint64 `msgpack:"maxStorageBufferBindingSize" json:"maxStorageBufferBindingSize"`
	MaxStorageBuffersPerShaderStage   uint32 `msgpack:"maxStorageBuffersPerShaderStage" json:"maxStorageBuffersPerShaderStage"`
	MaxComputeWorkgroupStorageSize    uint32 `msgpack:"maxComputeWorkgroupStorageSize" json:"maxComputeWorkgroupStorageSize"`
	MaxComputeInvocationsPerWorkgroup uint32 `msgpack:"maxComputeInvocationsPerWorkgroup" json:"maxComputeInvocationsPerWorkgroup"`
	MaxComputeWorkgroupSizeX          uint32 `msgpack:"maxComputeWorkgroupSizeX" json:"maxComputeWorkgroupSizeX"`
	MaxComputeWorkgroupsPerDimension  uint32 `msgpack:"maxComputeWorkgroupsPerDimension" json:"maxComputeWorkgroupsPerDimension"`
}

// DefaultLimits are WebGPU's default limits: what requestDevice grants when
// no limit is requested, and the least any conforming adapter offers.
var DefaultLimits = Limits{
	MaxBufferSize:                     256 << 20,
	MaxStorageBufferBindingSize:       128 << 20,
	MaxStorageBuffersPerShaderStage:   8,
	MaxComputeWorkgroupStorageSize:    16 << 10,
	MaxComputeInvocationsPerWorkgroup: 256,
	MaxComputeWorkgroupSizeX:          256,
	MaxComputeWorkgroupsPerDimension:  65535,
}

// Features the planner and the engine look for.
const (
	FeatureShaderF16      = "shader-f16"
	FeatureSubgroups      = "subgroups"
	FeatureTimestampQuery = "timestamp-query"
)

// HasFeature reports whether the adapter lists feature.
func (a *Adapter) HasFeature(feature string) bool {
	return a != nil && slices.Contains(a.Features, feature)
}

// Network is navigator.connection. Chromium caps Downlink at 10 Mbit/s and
// rounds it, so it is a hint, not a measurement.
type Network struct {
	EffectiveType string  `msgpack:"effectiveType" json:"effectiveType,omitempty"` // "slow-2g", "2g", "3g", "4g"; "": unknown
	DownlinkMbps  float64 `msgpack:"downlink" json:"downlink,omitempty"`           // Mbit/s; 0: unknown
	SaveData      bool    `msgpack:"saveData" json:"saveData,omitempty"`           // the user asked for reduced data use
}

// Backends a plan runs on.
const (
	BackendCPU = "cpu" // model.Forward inside the wasm module
	BackendGPU = "gpu" // WGSL kernels through WebGPU
)

// Benchmark is a micro-benchmark of the decode path on one backend: how fast
// the device streams weights through a matrix–vector product. It should take
// at most 200 ms to measure.
type Benchmark struct {
	Backend string `msgpack:"backend" json:"backend"` // "cpu" or "gpu"
	// Method says what ran, e.g. "matvec 4096x1024 f32, WGSL" or "decode
	// steps of the default model's S and XL inside the wasm module".
	Method string `msgpack:"method" json:"method"`
	// GBps is weight bytes read per second (1e9 bytes).
	GBps float64 `msgpack:"gbps" json:"gbps"`
	// GFLOPs is arithmetic per second (1e9 multiply-adds count as 2e9). A
	// matvec over f32 weights does half a FLOP per byte, so a memory-bound
	// device reports about GBps/2.
	GFLOPs float64 `msgpack:"gflops" json:"gflops"`
	// StepOverheadMicros is the fixed cost of one decode step beyond its
	// matrix products (calls across the wasm boundary, sampling, dispatch
	// and readback latency), in µs. 0: not measured.
	StepOverheadMicros float64 `msgpack:"stepOverheadMicros" json:"stepOverheadMicros,omitempty"`
	// DispatchMicros is what each GPU dispatch of a decode step costs beyond
	// the bytes it reads (recording, the driver's launch and, on a software
	// GPU, starting its threads), in µs: a step pays it once per dispatch
	// the gpu backend records (GPUDispatches), so a model of many small
	// layers is predicted slower than its bytes alone say. 0: not measured
	// (folded into the rates and the step overhead).
	DispatchMicros float64 `msgpack:"dispatchMicros" json:"dispatchMicros,omitempty"`
	// RowNanos is what each matrix row a decode step reads costs beyond its
	// bytes (MatrixRows), in ns: an invocation's setup and its output on a
	// GPU, so that a model of short rows (a small dim) is predicted slower
	// per byte than one of long rows, as lavapipe runs them. 0: not
	// measured (folded into the rates).
	RowNanos float64 `msgpack:"rowNanos" json:"rowNanos,omitempty"`
	// DurationMillis is how long the measurement took.
	DurationMillis float64 `msgpack:"durationMillis" json:"durationMillis"`
}

// ErrCapabilities means a capabilities document is malformed.
var ErrCapabilities = errors.New("planner: bad capabilities")

// Validate reports numbers that no device can have: negative sizes, rates
// that are not positive, an unknown backend.
func (c *Capabilities) Validate() error {
	switch {
	case c.DeviceMemoryBytes < 0:
		return fmt.Errorf("%w: deviceMemoryBytes %d is negative", ErrCapabilities, c.DeviceMemoryBytes)
	case c.LogicalCores < 0:
		return fmt.Errorf("%w: logicalCores %d is negative", ErrCapabilities, c.LogicalCores)
	case c.StorageQuotaBytes < 0:
		return fmt.Errorf("%w: storageQuotaBytes %d is negative", ErrCapabilities, c.StorageQuotaBytes)
	case c.Network.DownlinkMbps < 0 || c.Network.DownlinkMbps != c.Network.DownlinkMbps:
		return fmt.Errorf("%w: network downlink %g Mbit/s", ErrCapabilities, c.Network.DownlinkMbps)
	}
	seen := map[string]bool{}
	for i, b := range c.Benchmarks {
		switch {
		case b.Backend != BackendCPU && b.Backend != BackendGPU:
			return fmt.Errorf("%w: benchmark %d has backend %q, want cpu or gpu", ErrCapabilities, i, b.Backend)
		case seen[b.Backend]:
			return fmt.Errorf("%w: two benchmarks for backend %s", ErrCapabilities, b.Backend)
		case !(b.GBps > 0) || !(b.GFLOPs > 0) || b.GBps > 1e6 || b.GFLOPs > 1e9:
			return fmt.Errorf("%w: benchmark %s: %g GB/s, %g GFLOP/s (want positive, finite)", ErrCapabilities, b.Backend, b.GBps, b.GFLOPs)
		case !(b.StepOverheadMicros >= 0) || b.StepOverheadMicros > 1e9:
			return fmt.Errorf("%w: benchmark %s: step overhead %g µs", ErrCapabilities, b.Backend, b.StepOverheadMicros)
		case !(b.DispatchMicros >= 0) || b.DispatchMicros > 1e9:
			return fmt.Errorf("%w: benchmark %s: dispatch cost %g µs", ErrCapabilities, b.Backend, b.DispatchMicros)
		case !(b.RowNanos >= 0) || b.RowNanos > 1e9:
			return fmt.Errorf("%w: benchmark %s: row cost %g ns", ErrCapabilities, b.Backend, b.RowNanos)
		}
		seen[b.Backend] = true
	}
	return nil
}

// benchmark returns the measurement for backend, or nil.
func (c *Capabilities) benchmark(backend string) *Benchmark {
	for i := range c.Benchmarks {
		if c.Benchmarks[i].Backend == backend {
			return &c.Benchmarks[i]
		}
	}
	return nil
}

// limits returns the adapter's limits with unreported ones set to WebGPU's defaults.
func (a *Adapter) limits() Limits {
	l, d := a.Limits, DefaultLimits
	if l.MaxBufferSize == 0 {
		l.MaxBufferSize = d.MaxBufferSize
	}
	if l.MaxStorageBufferBindingSize == 0 {
		l.MaxStorageBufferBindingSize = d.MaxStorageBufferBindingSize
	}
	if l.MaxStorageBuffersPerShaderStage == 0 {
		l.MaxStorageBuffersPerShaderStage = d.MaxStorageBuffersPerShaderStage
	}
	if l.MaxComputeWorkgroupStorageSize == 0 {
		l.MaxComputeWorkgroupStorageSize = d.MaxComputeWorkgroupStorageSize
	}
	if l.MaxComputeInvocationsPerWorkgroup == 0 {
		l.MaxComputeInvocationsPerWorkgroup = d.MaxComputeInvocationsPerWorkgroup
	}
	if l.MaxComputeWorkgroupSizeX == 0 {
		l.MaxComputeWorkgroupSizeX = d.MaxComputeWorkgroupSizeX
	}
	if l.MaxComputeWorkgroupsPerDimension == 0 {
		l.MaxComputeWorkgroupsPerDimension = d.MaxComputeWorkgroupsPerDimension
	}
	return l
}

// name is a short description of the adapter for sentences.
func (a *Adapter) name() string {
	s := a.Description
	if s == "" {
		s = a.Vendor
		if a.Architecture != "" {
			s += " " + a.Architecture
		}
	}
	if s == "" {
		s = "unnamed adapter"
	}
	switch {
	case a.Fallback:
		s += " (software fallback)"
	case a.Type != "":
		s += " (" + a.Type + ")"
	}
	return s
}
