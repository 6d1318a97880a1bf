// Package webgpu is the GPU interface the matedge engine programs against: a
// small slice of WebGPU for compute (buffers, pipelines from WGSL, dispatches,
// copies, reads), with integer handles so that every method can cross a wasm
// boundary as integers and byte slices.
//
// Open returns the Device of the build:
//
//   - wasip1 (the shipped module): the guest side of the "webgpu" import
//     module (ABI.md), served by the browser runtime or by host/webgpuhost;
//   - cgo on other platforms: the native implementation on
//     github.com/cogentcore/webgpu (wgpu-native over Vulkan, Metal or D3D12);
//   - otherwise: no GPU, ErrNoAdapter.
//
// # Model
//
// Dispatch and Copy record commands; Submit sends everything recorded since
// the last Submit to the GPU, in order. WriteBuffer goes straight to the
// queue: like WebGPU's writeBuffer it takes effect before any work not yet
// submitted, so write a buffer only between submits of work that uses it.
// Kernel parameters do not have that problem: each Dispatch carries its own
// params, which the implementation places in a uniform buffer bound at
// binding 0, with the storage buffers at bindings 1…n (see package shaders).
// The native device and the browser host cache the bind group of each
// dispatch by what it binds (ABI.md, "Why the shape"), so a decode step,
// which records the same dispatches over the same buffers at every token,
// creates none after the first.
//
// Read is asynchronous because a browser cannot block on mapAsync: it submits
// pending work and returns a Ticket; ReadResult reports whether the bytes have
// arrived. Wait loops on ReadResult, which is fine natively and under wazero
// (whose host completes reads at once) but never in a browser.
//
// A Device is not safe for concurrent use.
package webgpu

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Handles name GPU objects owned by a Device. Zero is never a valid handle.
type (
	Buffer   uint32 // a storage buffer, also usable as a copy source and destination
	Pipeline uint32 // a compute pipeline: WGSL with entry point "main"
	Ticket   uint32 // a read in flight
)

// Binding is one storage buffer bound to a dispatch: Size bytes from Offset,
// or to the end of the buffer when Size is 0. Offset must be a multiple of
// Limits.MinStorageBufferOffsetAlignment.
type Binding struct {
	Buffer Buffer
	Offset uint64
	Size   uint64
}

// Device is a GPU, or the host's stand-in for one.
type Device interface {
	// Info describes the adapter: names, limits and features.
	Info() Info
	// CreateBuffer allocates size bytes (a positive multiple of 4), zeroed.
	CreateBuffer(size uint64) (Buffer, error)
	// WriteBuffer copies data to b at offset (both multiples of 4).
	WriteBuffer(b Buffer, offset uint64, data []byte) error
	// DestroyBuffer frees b, submitting any recorded work first.
	DestroyBuffer(b Buffer) error
	// CreatePipeline compiles WGSL whose entry point is "main", with a uniform
	// at binding 0 and bindings storage buffers at bindings 1…bindings.
	CreatePipeline(wgsl string, bindings int) (Pipeline, error)
	// Dispatch records a run of p over groups workgroups, with params (a
	// multiple of 16 bytes, at most 256) as its uniform and bindings in order.
	Dispatch(p Pipeline, params []byte, bindings []Binding, groups [3]uint32) error
	// Copy records a copy of size bytes (offsets and size multiples of 4).
	Copy(src Buffer, srcOffset uint64, dst Buffer, dstOffset, size uint64) error
	// Submit sends the recorded commands to the GPU.
	Submit() error
	// Read submits recorded work and starts a read of size bytes of b at offset.
	Read(b Buffer, offset, size uint64) (Ticket, error)
	// ReadResult fills dst (len = the read's size) and frees t once the read
	// has completed, and reports whether it has.
	ReadResult(t Ticket, dst []byte) (done bool, err error)
	// Close frees every object and the device.
	Close() error
}

// Info describes an adapter. It crosses the ABI as JSON.
type Info struct {
	Name        string   `json:"name"`        // e.g. "llvmpipe (LLVM 19.1.7, 256 bits)"
	Vendor      string   `json:"vendor"`      //
	Driver      string   `json:"driver"`      // driver description
	AdapterType string   `json:"adapterType"` // "DiscreteGPU", "IntegratedGPU", "CPU", …
	Backend     string   `json:"backend"`     // "Vulkan", "Metal", "WebGPU", …
	Limits      Limits   `json:"limits"`
	Features    []string `json:"features"`
}

// Limits are the device limits the engine plans with.
type Limits struct {
	MaxBufferSize                     uint64 `json:"maxBufferSize"`
	MaxStorageBufferBindingSize       uint64 `json:"maxStorageBufferBindingSize"`
	MaxStorageBuffersPerShaderStage   uint32 `json:"maxStorageBuffersPerShaderStage"`
	MinStorageBufferOffsetAlignment   uint32 `json:"minStorageBufferOffsetAlignment"`
	MaxComputeWorkgroupStorageSize    uint32 `json:"maxComputeWorkgroupStorageSize"`
	MaxComputeInvocationsPerWorkgroup uint32 `json:"maxComputeInvocationsPerWorkgroup"`
	MaxComputeWorkgroupSizeX          uint32 `json:"maxComputeWorkgroupSizeX"`
	MaxComputeWorkgroupsPerDimension  uint32 `json:"maxComputeWorkgroupsPerDimension"`
}

func (i Info) String() string {
	return fmt.Sprintf("%s (%s, %s)", i.Name, i.AdapterType, i.Backend)
}

// Errors a Device returns, wrapped with what was being done. Each has an ABI
// error code (ABI.md).
var (
	ErrNoAdapter = errors.New("webgpu: no adapter")           // no GPU here: use the CPU backend
	ErrHandle    = errors.New("webgpu: bad handle")           // unknown, freed or zero handle
	ErrRange     = errors.New("webgpu: out of range")         // an offset or size outside a buffer, or guest memory
	ErrArgument  = errors.New("webgpu: bad argument")         // misaligned, wrong count, over a limit
	ErrGPU       = errors.New("webgpu: GPU error")            // the implementation rejected the call (shader errors, …)
	ErrVersion   = errors.New("webgpu: ABI version mismatch") // host and guest disagree on ABI.md's version
)

// Wait blocks until the read t has completed and fills dst. Use it natively
// and under wazero; in a browser, return to the event loop instead.
func Wait(d Device, t Ticket, dst []byte) error {
	for spins := 0; ; spins++ {
		done, err := d.ReadResult(t, dst)
		if err != nil || done {
			return err
		}
		backoff(spins)
	}
}

// backoff yields between polls, then sleeps, leaving the cores to a software
// rasterizer such as lavapipe.
func backoff(spins int) {
	if spins < 100 {
		runtime.Gosched()
	} else {
		time.Sleep(20 * time.Microsecond)
	}
}

// ReadNow reads size bytes of b at offset, waiting for them (see Wait).
func ReadNow(d Device, b Buffer, offset, size uint64) ([]byte, error) {
	t, err := d.Read(b, offset, size)
	if err != nil {
		return nil, err
	}
	dst := make([]byte, size)
	return dst, Wait(d, t, dst)
}

// Pipelines caches compiled pipelines by a deterministic key, such as
// shaders.Program.Key, so each kernel variant is compiled once per device.
type Pipelines struct {
	device Device
	byKey  map[string]Pipeline
}

// NewPipelines returns an empty cache for d.
func NewPipelines(d Device) *Pipelines {
	return &Pipelines{device: d, byKey: map[string]Pipeline{}}
}

// Get returns the pipeline for key, compiling wgsl the first time.
func (c *Pipelines) Get(key, wgsl string, bindings int) (Pipeline, error) {
	if p, ok := c.byKey[key]; ok {
		return p, nil
	}
	p, err := c.device.CreatePipeline(wgsl, bindings)
	if err != nil {
		return 0, fmt.Errorf("pipeline %s: %w", key, err)
	}
	c.byKey[key] = p
	return p, nil
}
