package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

// BenchmarkLimit is how long the decode benchmark of each backend may take
// when MeasureDevice measures it.
const BenchmarkLimit = 200 * time.Millisecond

// ReadCapabilities reads a capabilities file, refusing unknown fields so
// that a misspelt limit is not silently "not reported".
func ReadCapabilities(path string) (planner.Capabilities, error) {
	var caps planner.Capabilities
	b, err := os.ReadFile(path)
	if err != nil {
		return caps, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&caps); err != nil {
		return caps, fmt.Errorf("%s: %w", path, err)
	}
	if err := caps.Validate(); err != nil {
		return caps, fmt.Errorf("%s: %w", path, err)
	}
	return caps, nil
}

// MeasureDevice describes this machine (DetectCapabilities) and benchmarks
// decode of the default model on each backend the module (ReadModule's
// wasmPath) can run here. Benchmarks are stored for a week per device,
// backend, module and model shape, as the browser stores its own;
// rebenchmark measures anew. When the module cannot drive the GPU it found,
// an "auto" budget is narrowed to the CPU. The notes say where benchmarks
// came from and why a backend was left out.
func MeasureDevice(ctx context.Context, wasmPath string, budget *planner.Budget, rebenchmark bool) (planner.Capabilities, []string, error) {
	caps, noAdapter := DetectCapabilities()
	var notes []string
	if noAdapter != nil {
		notes = append(notes, "no WebGPU adapter: "+noAdapter.Error())
	}
	wasm, err := ReadModule(wasmPath)
	if err != nil {
		return caps, nil, err
	}
	rt, err := NewRuntime(ctx, wasm, Config{})
	if err != nil {
		return caps, nil, err
	}
	defer rt.Close(ctx)
	cache := DefaultBenchmarkCache()
	measure := func(backend string) (planner.Benchmark, error) {
		key := BenchmarkKey(backend, caps, wasm, defaultmodel.Bytes)
		if b, ok := cache.Get(key, time.Now()); ok && !rebenchmark {
			notes = append(notes, fmt.Sprintf("%s benchmark from %s (stored; -rebenchmark measures again)", backend, cache.Path))
			return b, nil
		}
		b, err := MeasureDecode(ctx, rt, defaultmodel.Bytes, backend, BenchmarkLimit)
		if err == nil {
			if err := cache.Put(key, b, time.Now()); err != nil {
				notes = append(notes, "could not store the benchmark: "+oneLine(err))
			}
		}
		return b, err
	}
	b, err := measure(planner.BackendCPU)
	if err != nil {
		return caps, nil, fmt.Errorf("cpu benchmark: %w", err)
	}
	caps.Benchmarks = append(caps.Benchmarks, b)
	if caps.Adapter == nil || budget.Backend == planner.BackendCPU {
		return caps, notes, nil
	}
	b, err = measure(planner.BackendGPU)
	if err != nil {
		notes = append(notes, "the module could not run its GPU backend here: "+oneLine(err))
		if budget.Backend == "" || budget.Backend == "auto" {
			budget.Backend = planner.BackendCPU
			notes = append(notes, "so the plan is for the CPU backend")
		}
		return caps, notes, nil
	}
	caps.Benchmarks = append(caps.Benchmarks, b)
	return caps, notes, nil
}

// PlanFor measures this machine (MeasureDevice, with stored benchmarks) and
// asks mod's planner for a plan: the whole plan when mix is auto, only the
// backend when mix is given; a backend other than auto is kept.
func PlanFor(ctx context.Context, mod *Module, wasmPath string, budget planner.Budget, mix, backend string) (*abi.PlanResult, error) {
	if backend != "auto" {
		budget.Backend = backend
	}
	caps, _, err := MeasureDevice(ctx, wasmPath, &budget, false)
	if err != nil {
		return nil, fmt.Errorf("measuring this device: %w", err)
	}
	req := abi.PlanRequest{Capabilities: caps, Budget: budget}
	if mix != "auto" {
		req.Mix = mix
	}
	return mod.Plan(ctx, req)
}

// oneLine joins a multi-line error (errors.Join) into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// ChoosePlan plans the model h describes for a device of caps within
// budget: for a vision model the query encoder (the most accurate that
// fits), for a language model the planner's choice. A *planner.ConstraintError
// says that nothing fits.
func ChoosePlan(caps planner.Capabilities, h *weights.Header, budget planner.Budget) (planner.Plan, error) {
	if h.IsVision() {
		return planner.ChooseVision(caps, h, budget, nil)
	}
	return planner.Choose(caps, h, budget)
}
