//go:build wasip1

// Command wasm is the matedge module: built with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared it is a WASI reactor whose exports (ABI.md) drive one
// engine. The host calls _initialize once, then the exports.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/engine"
	_ "github.com/matedge/matedge/wasm/kernels" // the simd kernel set, when the host links it
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
	"github.com/vmihailenco/msgpack/v5"
)

func main() {}

var (
	eng    engine.Engine
	output []byte                // the last export's result or error message
	allocs = map[uint32][]byte{} // buffers lent to the host, kept alive until free
)

// bytesAt returns the guest memory [ptr, ptr+n) if it lies inside a buffer
// that alloc handed out, so a host bug cannot make the module read its own
// heap at random.
func bytesAt(ptr, n uint32) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	for base, b := range allocs {
		if ptr >= base && uint64(ptr)+uint64(n) <= uint64(base)+uint64(len(b)) {
			off := ptr - base
			return b[off : off+n], true
		}
	}
	return nil, false
}

// fail records err's message as the output and returns code.
func fail(code int32, err error) int32 {
	output = []byte(err.Error())
	return code
}

func failErr(err error) int32 { return fail(statusOf(err), err) }

// statusOf maps an engine or weights error to its ABI status code.
func statusOf(err error) int32 {
	switch {
	case errors.Is(err, engine.ErrDone):
		return abi.Done
	case errors.Is(err, engine.ErrPending):
		return abi.Pending
	case errors.Is(err, engine.ErrArg):
		return abi.ErrArg
	case errors.Is(err, engine.ErrState):
		return abi.ErrState
	case errors.Is(err, weights.ErrChecksum):
		return abi.ErrChecksum
	case errors.Is(err, engine.ErrMissing):
		return abi.ErrMissing
	case errors.Is(err, engine.ErrBackend):
		return abi.ErrBackend
	case errors.Is(err, weights.ErrMagic), errors.Is(err, weights.ErrVersion), errors.Is(err, weights.ErrTruncated),
		errors.Is(err, weights.ErrCorrupt), errors.Is(err, weights.ErrTooLarge):
		return abi.ErrFormat
	}
	return abi.ErrInternal
}

func setOutput(v any) int32 {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return fail(abi.ErrInternal, fmt.Errorf("encode output: %w", err))
	}
	output = b
	return int32(len(b))
}

// busy names the export that is running. An export can call an import (the
// webgpu module, WASI) and the host could call back into the module from
// there; that would change the engine under the running export's feet, so
// enter refuses it.
var busy string

// enter marks export name as running, or returns ERR_STATE's code when
// another one is (a re-entrant call from inside an import); leave ends it.
func enter(name string) int32 {
	if busy != "" {
		return fail(abi.ErrState, fmt.Errorf("%s called while %s is running (from inside an import): re-entrant calls are refused", name, busy))
	}
	busy = name
	return 0
}

func leave() { busy = "" }

// guard turns a panic in an export into ErrInternal instead of a trap that
// would leave the module unusable.
func guard(code *int32) {
	if r := recover(); r != nil {
		*code = fail(abi.ErrInternal, fmt.Errorf("internal error: %v", r))
	}
}

// withInput runs the body of an export that takes an input buffer: one
// export at a time (enter), a recovered panic as ERR_INTERNAL (guard), and
// the buffer checked to lie inside one from alloc.
func withInput(name string, ptr, n uint32, body func(b []byte) int32) (code int32) {
	if c := enter(name); c != 0 {
		return c
	}
	defer leave()
	defer guard(&code)
	b, ok := bytesAt(ptr, n)
	if !ok {
		return badPointer(ptr, n)
	}
	return body(b)
}

func badPointer(ptr, n uint32) int32 {
	return fail(abi.ErrArg, fmt.Errorf("pointer %#x length %d is not inside a buffer from alloc", ptr, n))
}

//go:wasmexport abi_version
func abiVersion() uint32 { return abi.Version }

// A wasm32 memory holds at most 4 GiB; a host may allow less and say so
// in the environment variable MATEDGE_MEMORY_LIMIT (bytes). Go's runtime
// aborts the module (a trap) when it cannot grow memory, so alloc checks
// first; the headroom is for what the runtime and the next export allocate
// besides.
const (
	maxMemory      = 4 << 30
	memoryHeadroom = 64 << 20
)

// memoryLimit is maxMemory or the host's lower MATEDGE_MEMORY_LIMIT.
var memoryLimit = sync.OnceValue(func() uint64 {
	if n, err := strconv.ParseUint(os.Getenv("MATEDGE_MEMORY_LIMIT"), 10, 64); err == nil && n > 0 && n < maxMemory {
		return n
	}
	return maxMemory
})

// canAllocate reports whether size more bytes fit in the module's memory:
// below the limit as it is, or in heap that a collection leaves free.
func canAllocate(size uint64) bool {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.Sys+size+memoryHeadroom <= memoryLimit() {
		return true
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.Sys+size+memoryHeadroom <= memoryLimit() || ms.HeapIdle-ms.HeapReleased >= size+memoryHeadroom
}

//go:wasmexport alloc
func alloc(size uint32) uint32 {
	if size == 0 || size > 1<<30 || busy != "" || !canAllocate(uint64(size)) {
		return 0
	}
	b := make([]byte, size)
	ptr := uint32(uintptr(unsafe.Pointer(&b[0])))
	allocs[ptr] = b
	return ptr
}

//go:wasmexport free
func free(ptr uint32) {
	if busy == "" { // an export running may be reading the buffer
		delete(allocs, ptr)
	}
}

//go:wasmexport output_ptr
func outputPtr() uint32 {
	if len(output) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&output[0])))
}

//go:wasmexport output_len
func outputLen() uint32 { return uint32(len(output)) }

//go:wasmexport header_len
func headerLen(ptr, n uint32) (code int64) {
	if c := enter("header_len"); c != 0 {
		return int64(c)
	}
	defer leave()
	var status int32
	defer func() {
		if status != 0 {
			code = int64(status)
		}
	}()
	defer guard(&status)
	b, ok := bytesAt(ptr, n)
	if !ok {
		return int64(badPointer(ptr, n))
	}
	need, err := weights.HeaderLen(b)
	if err != nil {
		return int64(failErr(err))
	}
	return need
}

//go:wasmexport load_header
func loadHeader(ptr, n uint32, fileSize int64) int32 {
	return withInput("load_header", ptr, n, func(b []byte) int32 {
		endBench() // a benchmark of the model before is of no use now
		if limit := memoryLimit(); limit < maxMemory {
			eng.MaxBytes = int64(limit / 4 * 3) // as MaxModelBytes is of 4 GiB
		}
		h, err := eng.LoadHeader(b, fileSize)
		if err != nil {
			return failErr(err)
		}
		info := abi.ModelInfo{Header: h, DataStart: h.DataStart, FormatVersion: h.FormatVersion, Architecture: weights.ArchitectureOf(h.Config)}
		for g := range h.Config.Granularities() {
			info.Granularities = append(info.Granularities, h.Config.GranularityName(g))
			info.Ranges = append(info.Ranges, h.Ranges(h.Config.Uniform(g)))
		}
		return setOutput(info)
	})
}

//go:wasmexport feed
func feed(offset int64, ptr, n uint32) int32 {
	return withInput("feed", ptr, n, func(b []byte) int32 {
		if err := eng.Feed(offset, b); err != nil {
			return failErr(err)
		}
		return 0
	})
}

//go:wasmexport set_mix
func setMix(ptr, n uint32) int32 {
	return withInput("set_mix", ptr, n, func(b []byte) int32 {
		mix, err := eng.ParseMix(string(b))
		if err == nil {
			err = eng.SetMix(mix)
		}
		if err != nil {
			return failErr(err)
		}
		h := eng.Header()
		// Empty lists go out as [] rather than nil, so that hosts need no special case.
		missing := append([]weights.Range{}, eng.Missing(mix)...)
		return setOutput(abi.MixInfo{Mix: h.Config.MixNames(mix), Missing: missing, Needed: h.Ranges(mix)})
	})
}

//go:wasmexport reset
func reset(ptr, n uint32) int32 {
	return withInput("reset", ptr, n, func(b []byte) int32 {
		var o abi.Options
		if err := msgpack.Unmarshal(b, &o); err != nil {
			return fail(abi.ErrArg, fmt.Errorf("reset options: %w", err))
		}
		if err := eng.Reset(o); err != nil {
			return failErr(err)
		}
		output = []byte(eng.Backend())
		return 0
	})
}

//go:wasmexport prompt
func prompt(ptr, n uint32) int32 {
	return withInput("prompt", ptr, n, func(b []byte) int32 {
		ids, err := eng.Prompt(b)
		if err != nil {
			return failErr(err)
		}
		return setOutput(ids)
	})
}

//go:wasmexport step
func step() (code int32) {
	if c := enter("step"); c != 0 {
		return c
	}
	defer leave()
	defer guard(&code)
	token, err := eng.Step()
	if err != nil {
		return failErr(err)
	}
	output = append(output[:0], eng.Piece(token)...)
	return int32(token)
}

//go:wasmexport widths
func widths() (code int32) {
	defer guard(&code)
	w, err := eng.Widths()
	if err != nil {
		return failErr(err)
	}
	return setOutput(w)
}

//go:wasmexport speculation
func speculation() (code int32) {
	if c := enter("speculation"); c != 0 {
		return c
	}
	defer leave()
	defer guard(&code)
	return setOutput(eng.Speculation())
}

//go:wasmexport plan
func plan(ptr, n uint32) int32 {
	return withInput("plan", ptr, n, func(b []byte) int32 {
		h := eng.Header()
		if h == nil {
			return failErr(fmt.Errorf("%w: plan before load_header", engine.ErrState))
		}
		var req abi.PlanRequest
		if err := msgpack.Unmarshal(b, &req); err != nil {
			return fail(abi.ErrArg, fmt.Errorf("plan request: %w", err))
		}
		if req.Budget.Name != "" && req.Budget == (planner.Budget{Name: req.Budget.Name}) {
			// A budget that is only a preset's name means that preset.
			preset, err := planner.Preset(req.Budget.Name)
			if err != nil {
				return fail(abi.ErrArg, err)
			}
			req.Budget = preset
		}
		var p planner.Plan
		var err error
		var fixed model.Mix
		if req.Mix != "" {
			if fixed, err = h.Config.ParseMix(req.Mix); err != nil {
				return fail(abi.ErrArg, err)
			}
		}
		if h.IsVision() {
			p, err = planner.ChooseVision(req.Capabilities, h, req.Budget, fixed)
		} else if req.Mix == "" {
			p, err = planner.Choose(req.Capabilities, h, req.Budget)
		} else {
			p, err = planner.Fastest(req.Capabilities, h, req.Budget, fixed)
		}
		res := abi.PlanResult{Plan: &p}
		var noFit *planner.ConstraintError
		switch {
		case errors.As(err, &noFit):
			res.Error, res.Constraint = err.Error(), string(noFit.Constraint)
			if noFit.Smallest != nil {
				res.Plan = noFit.Smallest
			}
		case err != nil:
			return fail(abi.ErrArg, err)
		}
		return setOutput(res)
	})
}

//go:wasmexport classify
func classify(ptr, n uint32) int32 {
	return withInput("classify", ptr, n, func(b []byte) int32 {
		var req abi.ImageRequest
		if err := msgpack.Unmarshal(b, &req); err != nil {
			return fail(abi.ErrArg, fmt.Errorf("classify request: %w", err))
		}
		res, err := eng.Classify(req)
		if err != nil {
			return failErr(err)
		}
		return setOutput(res)
	})
}

//go:wasmexport load_index
func loadIndex(ptr, n uint32) int32 {
	return withInput("load_index", ptr, n, func(b []byte) int32 {
		info, err := eng.LoadIndex(b)
		if err != nil {
			return failErr(err)
		}
		return setOutput(info)
	})
}

//go:wasmexport index_image
func indexImage(i int32) (code int32) {
	if c := enter("index_image"); c != 0 {
		return c
	}
	defer leave()
	defer guard(&code)
	px, err := eng.IndexImage(int(i))
	if err != nil {
		return failErr(err)
	}
	output = append(output[:0], px...)
	return int32(len(px))
}

// Products bench_kernel runs (wasm/ABI.md).
const (
	benchMatVec  = 0 // MatVec: out [rows] = W [rows][cols] · x [cols]
	benchMatTVec = 1 // MatTVec: out [cols] = W [rows][cols]ᵀ · x [rows]
	benchMatMul  = 2 // MatVecBatch: out [tokens][rows] = x [tokens][cols] · Wᵀ
)

// benchBuffers are bench_kernel's operands, kept between calls.
var benchBuffers struct{ w, x, out []float32 }

// benchKernel runs one product of the CPU backend's kernel set reps times on
// seeded operands in the module's memory, for a host to time: the module's
// CPU path as the engine runs it (simd when the host linked kernels.wasm,
// else go). It returns 0, or ERR_ARG for a bad kernel or a shape over 2^24
// elements per operand.
//
//go:wasmexport bench_kernel
func benchKernel(kernel, rows, cols, tokens, reps int32) (code int32) {
	defer guard(&code)
	const maxElements = 1 << 24
	if kernel < benchMatVec || kernel > benchMatMul || rows < 1 || cols < 1 || tokens < 1 || reps < 0 ||
		int64(rows)*int64(cols) > maxElements || int64(tokens)*int64(max(rows, cols)) > maxElements {
		return fail(abi.ErrArg, fmt.Errorf("bench_kernel(%d, %d, %d, %d, %d): want kernel 0…2, shapes ≥ 1 of at most %d elements, reps ≥ 0", kernel, rows, cols, tokens, reps, maxElements))
	}
	r, c, n := int(rows), int(cols), int(tokens)
	b := &benchBuffers
	fill := func(s []float32, size int) []float32 {
		if cap(s) < size {
			s = make([]float32, size)
			rng := model.NewRNG(uint64(size))
			for i := range s {
				s[i] = 2*rng.Float32() - 1
			}
		}
		return s[:size]
	}
	b.w = fill(b.w, r*c)
	b.x = fill(b.x, n*max(r, c))
	b.out = fill(b.out, n*max(r, c))
	k := model.ActiveKernels()
	for range reps {
		switch kernel {
		case benchMatVec:
			k.MatVec(b.out[:r], b.w, b.x[:c], c)
		case benchMatTVec:
			k.MatTVec(b.out[:c], b.w, b.x[:r], c)
		case benchMatMul:
			k.MatVecBatch(b.out[:n*r], b.w, b.x[:n*c], n)
		}
	}
	return 0
}

// The shape benchmark: a synthetic model of the loaded header's shape
// (engine.ShapeBench) that a host times before it has fetched any weights.
var (
	bench      *engine.Engine    // nil until bench_start
	benchFor   *weights.Header   // the header bench was made for
	benchMix   string            // and the mix it holds
	benchImage *abi.ImageRequest // a vision model's: what bench_step classifies
)

// endBench drops the benchmark's engine and its GPU buffers.
func endBench() {
	if bench != nil {
		bench.Release()
	}
	bench, benchFor, benchMix, benchImage = nil, nil, "", nil
}

//go:wasmexport bench_start
func benchStart(ptr, n uint32) int32 {
	return withInput("bench_start", ptr, n, func(b []byte) int32 {
		var req abi.BenchRequest
		if err := msgpack.Unmarshal(b, &req); err != nil {
			return fail(abi.ErrArg, fmt.Errorf("bench_start request: %w", err))
		}
		h := eng.Header()
		if h == nil {
			return failErr(fmt.Errorf("%w: bench_start before load_header", engine.ErrState))
		}
		spec := req.Mix
		if spec == "" {
			spec = h.Config.GranularityName(0)
		}
		mix, err := h.Config.ParseMix(spec)
		if err != nil {
			return fail(abi.ErrArg, err)
		}
		if bench == nil || benchFor != h || benchMix != h.Config.MixSpec(mix) {
			endBench()
			if bench, err = eng.ShapeBench(mix); err != nil {
				return failErr(err)
			}
			benchFor, benchMix = h, h.Config.MixSpec(mix)
		}
		if h.IsVision() {
			backend := req.Backend
			if backend == "" {
				backend = "cpu"
			}
			if backend != "cpu" && backend != "gpu" && backend != "auto" {
				return fail(abi.ErrArg, fmt.Errorf("bench_start: backend %q (want cpu, gpu or auto)", backend))
			}
			r := bench.BenchImage(backend)
			benchImage = &r
			output = []byte(backend)
			return 0
		}
		benchImage = nil
		if err := bench.Reset(abi.Options{Seed: 1, Backend: req.Backend}); err != nil {
			return failErr(err)
		}
		if _, err := bench.Prompt([]byte("T")); err != nil {
			return failErr(err)
		}
		output = []byte(bench.Backend())
		return 0
	})
}

//go:wasmexport bench_step
func benchStep() (code int32) {
	if c := enter("bench_step"); c != 0 {
		return c
	}
	defer leave()
	defer guard(&code)
	if bench == nil || benchFor != eng.Header() {
		return failErr(fmt.Errorf("%w: bench_step before bench_start", engine.ErrState))
	}
	if benchImage != nil {
		if _, err := bench.Classify(*benchImage); err != nil {
			return failErr(err)
		}
		return 0
	}
	token, err := bench.Step()
	if err != nil {
		return failErr(err)
	}
	return int32(token)
}

//go:wasmexport bench_end
func benchEnd() (code int32) {
	if c := enter("bench_end"); c != 0 {
		return c
	}
	defer leave()
	defer guard(&code)
	endBench()
	return 0
}
