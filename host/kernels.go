package host

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/matedge/matedge/wasm/kernels"
)

// Kernel sets a host can give the module's CPU path (Config.Kernels).
const (
	KernelsSIMD = "simd" // link the SIMD128 companion module (the default)
	KernelsGo   = "go"   // do not link it: the module runs its plain-Go reference kernels
)

// kernelHost serves the "kernels" import module (wasm/kernels): each import
// is a trampoline to the export of the same name of a kernels.wasm instance
// that shares the calling module's memory. Each module instance gets its own
// companion instance, since each has its own memory.
type kernelHost struct {
	runtime  wazero.Runtime
	compiled wazero.CompiledModule // nil when not linked: version answers 0

	mu       sync.Mutex
	byCaller map[api.Module][]api.Function // per module instance, its companion's exports in kernels.Functions order
	calls    atomic.Int64                  // kernel calls forwarded, for tests

	// last is the caller of the last forwarded call and its exports: a
	// decode step makes over a hundred kernel calls from one module, and the
	// lock and map lookup were a good part of each call's cost.
	last atomic.Pointer[linkedModule]
}

type linkedModule struct {
	mod api.Module
	fns []api.Function
}

// instantiateKernels defines the "kernels" host module in r; link says whether
// it forwards to kernels.wasm or tells the module to keep its Go kernels.
func instantiateKernels(ctx context.Context, r wazero.Runtime, link bool) (*kernelHost, error) {
	h := &kernelHost{runtime: r, byCaller: map[api.Module][]api.Function{}}
	version := int32(0)
	if link {
		compiled, err := r.CompileModule(ctx, kernels.Wasm)
		if err != nil {
			return nil, fmt.Errorf("compile kernels.wasm: %w", err)
		}
		h.compiled, version = compiled, kernels.Version
	}
	b := r.NewHostModuleBuilder(kernels.ImportModule)
	b.NewFunctionBuilder().WithFunc(func() int32 { return version }).Export("version")
	for i, f := range kernels.Functions {
		params := make([]api.ValueType, f.Params)
		for j := range params {
			params[j] = api.ValueTypeI32
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, caller api.Module, stack []uint64) {
			var fns []api.Function
			if l := h.last.Load(); l != nil && l.mod == caller {
				fns = l.fns
			} else {
				h.mu.Lock()
				fns = h.byCaller[caller]
				h.mu.Unlock()
				if fns != nil {
					h.last.Store(&linkedModule{caller, fns})
				}
			}
			if fns == nil {
				panic(fmt.Errorf("host: kernels.%s called by a module whose kernels were not linked", f.Name))
			}
			h.calls.Add(1)
			if err := fns[i].CallWithStack(ctx, stack); err != nil {
				panic(fmt.Errorf("host: kernels.%s: %w", f.Name, err))
			}
		}), params, nil).Export(f.Name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return nil, fmt.Errorf("kernels host module: %w", err)
	}
	return h, nil
}

// link instantiates kernels.wasm on mod's memory (wazero's import resolver
// hands it mod as "env") and returns the function that unlinks it.
func (h *kernelHost) link(ctx context.Context, mod api.Module) (unlink func(context.Context) error, err error) {
	if h.compiled == nil {
		return func(context.Context) error { return nil }, nil
	}
	resolve := experimental.WithImportResolver(ctx, func(name string) api.Module {
		if name == "env" {
			return mod
		}
		return nil
	})
	companion, err := h.runtime.InstantiateModule(resolve, h.compiled, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return nil, fmt.Errorf("host: link kernels.wasm: %w", err)
	}
	fns := make([]api.Function, len(kernels.Functions))
	for i, f := range kernels.Functions {
		if fns[i] = companion.ExportedFunction(f.Name); fns[i] == nil {
			companion.Close(ctx)
			return nil, fmt.Errorf("host: kernels.wasm does not export %s", f.Name)
		}
	}
	h.mu.Lock()
	h.byCaller[mod] = fns
	h.mu.Unlock()
	return func(ctx context.Context) error {
		h.mu.Lock()
		delete(h.byCaller, mod)
		if l := h.last.Load(); l != nil && l.mod == mod {
			h.last.Store(nil)
		}
		h.mu.Unlock()
		return companion.Close(ctx)
	}, nil
}
