// Package host runs the matedge wasm module server-side with wazero: it
// compiles the module once, instantiates it with WASI and the webgpu host
// module (host/webgpuhost), checks its ABI version
// and drives its exports (wasm/ABI.md). The matedge CLI (cmd/matedge) is built
// on it, and so are the tests that run the exact module that ships.
package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/matedge/matedge/host/webgpuhost"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/vmihailenco/msgpack/v5"
)

// ErrABI means the module and this host were built from different ABI versions.
var ErrABI = errors.New("host: module ABI version mismatch")

// Runtime is a compiled module, ready to instantiate, with the host modules
// it imports: WASI and webgpu.
type Runtime struct {
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	gpu      *webgpuhost.Host
}

// Config configures a Runtime. The zero value offers the module this
// machine's GPU through webgpu.Open (none in a build without cgo).
type Config struct {
	// GPU opens the device the module's webgpu imports drive, when the module
	// asks for one; webgpuhost.NoGPU offers none.
	GPU func() (webgpu.Device, error)
}

// NewRuntime compiles the module. Compiled code is cached on disk (in the user
// cache directory) so that later runs start fast.
func NewRuntime(ctx context.Context, wasm []byte, cfg Config) (*Runtime, error) {
	rtConfig := wazero.NewRuntimeConfig()
	if dir, err := os.UserCacheDir(); err == nil {
		if cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "matedge", "wazero")); err == nil {
			rtConfig = rtConfig.WithCompilationCache(cache)
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rtConfig)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("host: instantiate WASI: %w", err)
	}
	gpu, err := webgpuhost.Instantiate(ctx, rt, cfg.GPU)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("host: %w", err)
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("host: compile module: %w", err)
	}
	return &Runtime{runtime: rt, compiled: compiled, gpu: gpu}, nil
}

// Close releases the runtime, every module instantiated from it and the GPU
// device if one was opened.
func (r *Runtime) Close(ctx context.Context) error {
	return errors.Join(r.runtime.Close(ctx), r.gpu.Close())
}

// Module is one instance of the matedge module: one engine, one sequence.
type Module struct {
	mod     api.Module
	mem     api.Memory
	fns     map[string]api.Function
	scratch uint32 // a buffer from alloc that inputs are copied into
	size    uint32 // its size
}

var exports = []string{"abi_version", "alloc", "free", "output_ptr", "output_len",
	"header_len", "load_header", "feed", "set_mix", "reset", "prompt", "step", "plan", "widths"}

// Instantiate starts a new instance: runs _initialize, checks the ABI version
// and then that every export of ABI.md is there.
func (r *Runtime) Instantiate(ctx context.Context) (*Module, error) {
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithStderr(os.Stderr).WithRandSource(zeroReader{})
	mod, err := r.runtime.InstantiateModule(ctx, r.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("host: instantiate module: %w", err)
	}
	version := mod.ExportedFunction("abi_version")
	if version == nil {
		mod.Close(ctx)
		return nil, fmt.Errorf("%w: the module does not export abi_version (is it a matedge module?)", ErrABI)
	}
	res, err := version.Call(ctx)
	if err != nil {
		mod.Close(ctx)
		return nil, fmt.Errorf("host: abi_version: %w", err)
	}
	if v := uint32(res[0]); v != abi.Version {
		mod.Close(ctx)
		return nil, fmt.Errorf("%w: module has version %d, this host speaks %d; rebuild both with ./build.sh", ErrABI, v, abi.Version)
	}
	m := &Module{mod: mod, mem: mod.Memory(), fns: map[string]api.Function{}}
	for _, name := range exports {
		f := mod.ExportedFunction(name)
		if f == nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("%w: the module does not export %q", ErrABI, name)
		}
		m.fns[name] = f
	}
	return m, nil
}

// Close ends the instance.
func (m *Module) Close(ctx context.Context) error { return m.mod.Close(ctx) }

// zeroReader makes the module's random_get deterministic: matedge seeds its
// own sampler, and nothing in the module may depend on host randomness.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Error is an error status returned by an export, with the module's message.
type Error struct {
	Export string
	Code   int32
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Is lets callers test errors.Is(err, host.ErrMissing) and friends.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Export == "" && t.Code == e.Code
}

// Sentinels for errors.Is on an *Error.
var (
	ErrArg      = &Error{Code: abi.ErrArg, Msg: "bad argument"}
	ErrState    = &Error{Code: abi.ErrState, Msg: "call out of order"}
	ErrFormat   = &Error{Code: abi.ErrFormat, Msg: "bad weights file"}
	ErrChecksum = &Error{Code: abi.ErrChecksum, Msg: "checksum mismatch"}
	ErrMissing  = &Error{Code: abi.ErrMissing, Msg: "weights missing"}
	ErrBackend  = &Error{Code: abi.ErrBackend, Msg: "backend not available"}
)

// call runs an export and returns its first result as a signed status.
func (m *Module) call(ctx context.Context, name string, args ...uint64) (int64, error) {
	res, err := m.fns[name].Call(ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("host: %s trapped: %w", name, err)
	}
	var status int64
	if len(res) > 0 {
		if m.fns[name].Definition().ResultTypes()[0] == api.ValueTypeI64 {
			status = int64(res[0])
		} else {
			status = int64(int32(uint32(res[0])))
		}
	}
	if status < 0 && status != abi.Done && status != abi.Pending {
		msg, _ := m.output(ctx)
		return status, &Error{Export: name, Code: int32(status), Msg: string(msg)}
	}
	return status, nil
}

// output copies the module's output buffer.
func (m *Module) output(ctx context.Context) ([]byte, error) {
	p, err := m.fns["output_ptr"].Call(ctx)
	if err != nil {
		return nil, err
	}
	n, err := m.fns["output_len"].Call(ctx)
	if err != nil {
		return nil, err
	}
	b, ok := m.mem.Read(uint32(p[0]), uint32(n[0]))
	if !ok {
		return nil, fmt.Errorf("host: output [%#x, +%d) outside module memory", p[0], n[0])
	}
	return append([]byte(nil), b...), nil
}

// put copies b into a module buffer and returns its address.
func (m *Module) put(ctx context.Context, b []byte) (uint32, error) {
	if uint32(len(b)) > m.size {
		if m.scratch != 0 {
			if _, err := m.fns["free"].Call(ctx, uint64(m.scratch)); err != nil {
				return 0, fmt.Errorf("host: free: %w", err)
			}
		}
		size := max(uint32(len(b)), 64<<10)
		res, err := m.fns["alloc"].Call(ctx, uint64(size))
		if err != nil || res[0] == 0 {
			return 0, fmt.Errorf("host: module could not allocate %d bytes", size)
		}
		m.scratch, m.size = uint32(res[0]), size
	}
	if !m.mem.Write(m.scratch, b) {
		return 0, fmt.Errorf("host: module buffer %#x outside its memory", m.scratch)
	}
	return m.scratch, nil
}

// callBytes copies b into the module and calls name(ptr, len, extra...).
func (m *Module) callBytes(ctx context.Context, name string, b []byte, extra ...uint64) (int64, error) {
	ptr, err := m.put(ctx, b)
	if err != nil {
		return 0, err
	}
	return m.call(ctx, name, append([]uint64{uint64(ptr), uint64(len(b))}, extra...)...)
}

// HeaderLen returns how many bytes from the start of the file LoadHeader
// needs, given at least the first 12.
func (m *Module) HeaderLen(ctx context.Context, preamble []byte) (int64, error) {
	return m.callBytes(ctx, "header_len", preamble)
}

// LoadHeader hands the module the header bytes; fileSize is -1 if unknown.
func (m *Module) LoadHeader(ctx context.Context, header []byte, fileSize int64) (*abi.ModelInfo, error) {
	if _, err := m.callBytes(ctx, "load_header", header, uint64(fileSize)); err != nil {
		return nil, err
	}
	var info abi.ModelInfo
	return &info, m.decodeOutput(ctx, &info)
}

// Feed hands the module weights bytes that start at offset in the file.
func (m *Module) Feed(ctx context.Context, offset int64, b []byte) error {
	ptr, err := m.put(ctx, b)
	if err != nil {
		return err
	}
	_, err = m.call(ctx, "feed", uint64(offset), uint64(ptr), uint64(len(b)))
	return err
}

// SetMix selects a mix ("S", "XL", "S,M,L", "auto") and reports what it needs.
func (m *Module) SetMix(ctx context.Context, spec string) (*abi.MixInfo, error) {
	if _, err := m.callBytes(ctx, "set_mix", []byte(spec)); err != nil {
		return nil, err
	}
	var info abi.MixInfo
	return &info, m.decodeOutput(ctx, &info)
}

// Plan asks the module's planner for the submodel and backend that fit caps
// and budget (a fixed mix spec leaves only the backend to choose). When
// nothing fits, the result holds the smallest plan and says why.
func (m *Module) Plan(ctx context.Context, req abi.PlanRequest) (*abi.PlanResult, error) {
	b, err := msgpack.Marshal(&req)
	if err != nil {
		return nil, err
	}
	if _, err := m.callBytes(ctx, "plan", b); err != nil {
		return nil, err
	}
	var res abi.PlanResult
	return &res, m.decodeOutput(ctx, &res)
}

// Reset starts a new sequence; it returns the backend that will run it.
func (m *Module) Reset(ctx context.Context, o abi.Options) (string, error) {
	b, err := msgpack.Marshal(&o)
	if err != nil {
		return "", err
	}
	if _, err := m.callBytes(ctx, "reset", b); err != nil {
		return "", err
	}
	backend, err := m.output(ctx)
	return string(backend), err
}

// Prompt queues the prompt and returns its token ids.
func (m *Module) Prompt(ctx context.Context, text string) ([]int, error) {
	if _, err := m.callBytes(ctx, "prompt", []byte(text)); err != nil {
		return nil, err
	}
	var ids []int
	return ids, m.decodeOutput(ctx, &ids)
}

// Step returns the next token and its bytes; done is true when the context is
// full. A Pending status is retried: this host completes readbacks before
// the import returns, so a module that stays pending is broken.
func (m *Module) Step(ctx context.Context) (token int, piece []byte, done bool, err error) {
	for range maxPending {
		status, err := m.call(ctx, "step")
		if err != nil {
			return 0, nil, false, err
		}
		switch status {
		case abi.Done:
			return 0, nil, true, nil
		case abi.Pending:
			continue
		}
		piece, err := m.output(ctx)
		return int(status), piece, false, err
	}
	return 0, nil, false, fmt.Errorf("host: step still pending after %d calls", maxPending)
}

const maxPending = 1000

// Widths returns the granularity each layer ran for the last position of the
// last step: the router's picks on a routed sequence, else the mix.
func (m *Module) Widths(ctx context.Context) ([]int, error) {
	if _, err := m.call(ctx, "widths"); err != nil {
		return nil, err
	}
	var w []int
	return w, m.decodeOutput(ctx, &w)
}

func (m *Module) decodeOutput(ctx context.Context, v any) error {
	b, err := m.output(ctx)
	if err != nil {
		return err
	}
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("host: decode module output: %w", err)
	}
	return nil
}
