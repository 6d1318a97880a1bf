// Package host runs the matedge wasm module server-side with wazero: it
// compiles the module once, instantiates it with WASI and the webgpu host
// module (host/webgpuhost), checks its ABI version
// and drives its exports (wasm/ABI.md). Around that it opens weights files
// (open.go), measures the device and plans (caps.go, measure.go), runs
// vision models and builds retrieval indexes (visionmodel.go, queryimage.go)
// and describes plans (describe.go); host/serve serves the demo and
// host/bench measures speeds. The matedge CLI (cmd/matedge) is built on
// them, and so are the tests that run the exact module that ships.
package host

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/matedge/matedge/host/webgpuhost"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/kernels"
	"github.com/matedge/matedge/webgpu"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/vmihailenco/msgpack/v5"
)

// ErrABI means the module and this host were built from different ABI versions.
var ErrABI = errors.New("host: module ABI version mismatch")

// ErrTrapped means the instance trapped (a bug in the module, or memory that
// could not grow) and was closed: its state is gone, so this call and every
// later one fail with it. Instantiate a new one.
var ErrTrapped = errors.New("host: the module instance trapped and was closed")

// Runtime is a compiled module, ready to instantiate, with the host modules
// it imports: WASI and webgpu.
type Runtime struct {
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	gpu      *webgpuhost.Host
	kernels  *kernelHost

	memoryLimit uint64 // Config.MemoryLimit
}

// Config configures a Runtime. The zero value offers the module this
// machine's GPU through webgpu.Open (none in a build without cgo).
type Config struct {
	// GPU opens the device the module's webgpu imports drive, when the module
	// asks for one; webgpuhost.NoGPU offers none.
	GPU func() (webgpu.Device, error)
	// MemoryLimit, when set, caps each instance's memory at this many bytes
	// (rounded down to 64 KiB pages; at most 4 GiB, wasm32's limit) and
	// tells the module (MATEDGE_MEMORY_LIMIT), whose alloc then returns 0
	// rather than trap when a buffer would not fit.
	MemoryLimit uint64
	// Kernels is the kernel set of the module's CPU path: KernelsSIMD (or
	// empty) links the SIMD128 companion module, wasm/kernels; KernelsGo
	// leaves the module on its plain-Go kernels. Both give the same tokens.
	Kernels string
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
	if cfg.MemoryLimit > 0 {
		rtConfig = rtConfig.WithMemoryLimitPages(uint32(min(cfg.MemoryLimit, 4<<30) >> 16))
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
	if cfg.Kernels != "" && cfg.Kernels != KernelsSIMD && cfg.Kernels != KernelsGo {
		rt.Close(ctx)
		return nil, fmt.Errorf("host: kernel set %q (want %s or %s)", cfg.Kernels, KernelsSIMD, KernelsGo)
	}
	kern, err := instantiateKernels(ctx, rt, cfg.Kernels != KernelsGo)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("host: %w", err)
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("host: compile module: %w", err)
	}
	// A module that does not import "kernels" gets no companion instance.
	imports := false
	for _, f := range compiled.ImportedFunctions() {
		if module, _, _ := f.Import(); module == kernels.ImportModule {
			imports = true
		}
	}
	if !imports {
		kern.compiled = nil
	}
	return &Runtime{runtime: rt, compiled: compiled, gpu: gpu, kernels: kern, memoryLimit: cfg.MemoryLimit}, nil
}

// Close releases the runtime, every module instantiated from it and the GPU
// device if one was opened.
func (r *Runtime) Close(ctx context.Context) error {
	return errors.Join(r.runtime.Close(ctx), r.gpu.Close())
}

// Module is one instance of the matedge module: one engine, one sequence.
type Module struct {
	mod     api.Module
	unlink  func(context.Context) error // closes the module's kernels.wasm instance
	mem     api.Memory
	fns     map[string]api.Function
	scratch uint32 // a buffer from alloc that inputs are copied into
	size    uint32 // its size
	trapped error  // why the instance is gone, once an export trapped
	context int    // the loaded model's context, in tokens (0 before LoadHeader)
	eot     *int   // the loaded model's end-of-text token, or nil (none)
}

var exports = []string{"abi_version", "alloc", "free", "output_ptr", "output_len",
	"header_len", "load_header", "feed", "set_mix", "reset", "prompt", "step", "plan", "widths", "speculation"}

// Instantiate starts a new instance: runs _initialize, checks the ABI version
// and then that every export of ABI.md is there.
func (r *Runtime) Instantiate(ctx context.Context) (*Module, error) {
	cfg := moduleConfig()
	if r.memoryLimit > 0 {
		cfg = cfg.WithEnv("MATEDGE_MEMORY_LIMIT", strconv.FormatUint(min(r.memoryLimit, 4<<30)>>16<<16, 10))
	}
	mod, err := r.runtime.InstantiateModule(ctx, r.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("host: instantiate module: %w", err)
	}
	unlink, err := r.kernels.link(ctx, mod)
	if err != nil {
		mod.Close(ctx)
		return nil, err
	}
	version := mod.ExportedFunction("abi_version")
	if version == nil {
		unlink(ctx)
		mod.Close(ctx)
		return nil, fmt.Errorf("%w: the module does not export abi_version (is it a matedge module?)", ErrABI)
	}
	res, err := version.Call(ctx)
	if err != nil {
		unlink(ctx)
		mod.Close(ctx)
		return nil, fmt.Errorf("host: abi_version: %w", err)
	}
	if v := uint32(res[0]); v != abi.Version {
		unlink(ctx)
		mod.Close(ctx)
		return nil, fmt.Errorf("%w: module has version %d, this host speaks %d; rebuild both with ./build.sh", ErrABI, v, abi.Version)
	}
	m := &Module{mod: mod, unlink: unlink, mem: mod.Memory(), fns: map[string]api.Function{}}
	for _, name := range exports {
		f := mod.ExportedFunction(name)
		if f == nil {
			m.Close(ctx)
			return nil, fmt.Errorf("%w: the module does not export %q", ErrABI, name)
		}
		m.fns[name] = f
	}
	return m, nil
}

// moduleConfig is how every instance starts: anonymous (so that one runtime
// holds many), _initialize run, stderr passed on, random_get all zeros, and
// the system's monotonic clock. wazero's default clock advances 1 ms per
// reading, so the module's own timings (speculative decoding's k auto
// measures its draft and verify passes, or on the gpu its rounds) would all
// read as equal; a browser gives the module performance.now the same way.
// Greedy tokens never depend on the clock (they are the verifier's whatever
// k is chosen); sampled ones with k auto follow the rounds it chose, as in a
// browser.
func moduleConfig() wazero.ModuleConfig {
	return wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithStderr(os.Stderr).WithRandSource(zeroReader{}).WithSysNanotime()
}

// Close ends the instance.
func (m *Module) Close(ctx context.Context) error {
	return errors.Join(m.unlink(ctx), m.mod.Close(ctx))
}

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

// invoke calls an export. After a trap the instance is closed and every
// call returns the first trap's error (ErrTrapped) instead of running
// code in a module whose state is broken.
func (m *Module) invoke(ctx context.Context, name string, args ...uint64) ([]uint64, error) {
	if m.trapped != nil {
		return nil, m.trapped
	}
	res, err := m.fns[name].Call(ctx, args...)
	if err != nil {
		m.trapped = fmt.Errorf("%w: %s trapped (%v); instantiate a new one", ErrTrapped, name, err)
		m.mod.Close(ctx)
		return nil, m.trapped
	}
	return res, nil
}

// call runs an export and returns its first result as a signed status.
func (m *Module) call(ctx context.Context, name string, args ...uint64) (int64, error) {
	res, err := m.invoke(ctx, name, args...)
	if err != nil {
		return 0, err
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
	p, err := m.invoke(ctx, "output_ptr")
	if err != nil {
		return nil, err
	}
	n, err := m.invoke(ctx, "output_len")
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
			if _, err := m.invoke(ctx, "free", uint64(m.scratch)); err != nil {
				return 0, err
			}
			m.scratch, m.size = 0, 0
		}
		size := max(uint32(len(b)), 64<<10)
		res, err := m.invoke(ctx, "alloc", uint64(size))
		if err != nil {
			return 0, err
		}
		if res[0] == 0 {
			return 0, fmt.Errorf("host: the module could not allocate %d bytes (out of memory)", size)
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
	if err := m.decodeOutput(ctx, &info); err != nil {
		return nil, err
	}
	m.eot = nil
	if info.Header != nil {
		m.context = info.Header.Config.Context
		m.eot = info.Header.EOT
	}
	return &info, nil
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

// Speculation reports what self-speculative decoding did in the sequence
// since the last reset (abi.SpeculationInfo): zeros and an empty draft when
// it does not speculate.
func (m *Module) Speculation(ctx context.Context) (abi.SpeculationInfo, error) {
	var info abi.SpeculationInfo
	if _, err := m.call(ctx, "speculation"); err != nil {
		return info, err
	}
	return info, m.decodeOutput(ctx, &info)
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

// BenchKernel runs one of the CPU path's products reps times inside the
// module (the bench_kernel export, wasm/ABI.md), for the caller to time.
// A module older than the export is told apart with ErrABI.
func (m *Module) BenchKernel(ctx context.Context, kernel int32, rows, cols, tokens, reps int) error {
	if m.fns["bench_kernel"] == nil {
		f := m.mod.ExportedFunction("bench_kernel")
		if f == nil {
			return fmt.Errorf("%w: the module does not export bench_kernel; rebuild it with ./build.sh", ErrABI)
		}
		m.fns["bench_kernel"] = f
	}
	_, err := m.call(ctx, "bench_kernel", uint64(kernel), uint64(rows), uint64(cols), uint64(tokens), uint64(reps))
	return err
}

// BenchStart builds, inside the module, a synthetic model of the loaded
// header's shape holding mix ("": the smallest granularity) and starts a
// sequence on it on backend (bench_start, wasm/ABI.md); it fetches nothing
// and returns the backend that will run. Time BenchStep calls after it.
func (m *Module) BenchStart(ctx context.Context, mix, backend string) (string, error) {
	if err := m.export("bench_start"); err != nil {
		return "", err
	}
	b, err := msgpack.Marshal(&abi.BenchRequest{Mix: mix, Backend: backend})
	if err != nil {
		return "", err
	}
	if _, err := m.callBytes(ctx, "bench_start", b); err != nil {
		return "", err
	}
	out, err := m.output(ctx)
	return string(out), err
}

// BenchStep runs one decode step of the synthetic model (a vision model's:
// one image); done is true once its context is full.
func (m *Module) BenchStep(ctx context.Context) (done bool, err error) {
	if err := m.export("bench_step"); err != nil {
		return false, err
	}
	for range maxPending {
		status, err := m.call(ctx, "bench_step")
		if err != nil || status != abi.Pending {
			return status == abi.Done, err
		}
	}
	return false, fmt.Errorf("host: bench_step still pending after %d calls", maxPending)
}

// BenchEnd drops the synthetic model.
func (m *Module) BenchEnd(ctx context.Context) error {
	if err := m.export("bench_end"); err != nil {
		return err
	}
	_, err := m.call(ctx, "bench_end")
	return err
}

// export returns an export looked up by name once, for the exports a module
// built before them lacks (ErrABI says to rebuild).
func (m *Module) export(name string) error {
	if m.fns[name] != nil {
		return nil
	}
	f := m.mod.ExportedFunction(name)
	if f == nil {
		return fmt.Errorf("%w: the module does not export %s; rebuild it with ./build.sh", ErrABI, name)
	}
	m.fns[name] = f
	return nil
}

// Classify runs one image ([C][S][S] values in [0, 1]) through the mix of
// the last SetMix of a vision model on backend ("cpu", "gpu", "auto"; ""
// is cpu), with the k nearest entries of the loaded index (LoadIndex).
func (m *Module) Classify(ctx context.Context, pixels []float32, backend string, k int) (*abi.ImageResult, error) {
	if err := m.export("classify"); err != nil {
		return nil, err
	}
	raw := make([]byte, 4*len(pixels))
	for i, x := range pixels {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	b, err := msgpack.Marshal(&abi.ImageRequest{Pixels: raw, Backend: backend, K: k})
	if err != nil {
		return nil, err
	}
	if _, err := m.callBytes(ctx, "classify", b); err != nil {
		return nil, err
	}
	var res abi.ImageResult
	return &res, m.decodeOutput(ctx, &res)
}

// LoadIndex hands the module a .mati retrieval index built by the loaded
// vision model.
func (m *Module) LoadIndex(ctx context.Context, index []byte) (*abi.IndexInfo, error) {
	if err := m.export("load_index"); err != nil {
		return nil, err
	}
	if _, err := m.callBytes(ctx, "load_index", index); err != nil {
		return nil, err
	}
	var info abi.IndexInfo
	return &info, m.decodeOutput(ctx, &info)
}

// IndexImage returns the stored pixels of entry i of the loaded index, u8
// [C][S][S].
func (m *Module) IndexImage(ctx context.Context, i int) ([]byte, error) {
	if err := m.export("index_image"); err != nil {
		return nil, err
	}
	if i < math.MinInt32 || i > math.MaxInt32 {
		return nil, fmt.Errorf("host: index entry %d out of range", i)
	}
	if _, err := m.call(ctx, "index_image", uint64(uint32(int32(i)))); err != nil {
		return nil, err
	}
	return m.output(ctx)
}
