package planner

import "fmt"

// splitDispatchMicros is what each extra dispatch of a split tensor adds to a
// decode step: an assumption (WebGPU dispatch costs are tens of µs at most).
const splitDispatchMicros = 20

// speed predicts decode speed on one backend.
type speed struct {
	bench    Benchmark
	measured bool   // bench came from the device, not from assumed
	source   string // a sentence saying where the numbers come from
}

// assumed are the rates used for a backend the device did not measure:
// conservative numbers for the class of device, so that a plan made without
// a measurement errs small. A matvec reads 2 bytes per FLOP, so every entry
// has GFLOPs = GBps/2.
var assumed = map[string]Benchmark{
	// Scalar Go inside wasm: about a tenth of native Go's 5.4 GFLOP/s
	// (ARCHITECTURE.md), less what the browser and other tabs take.
	"cpu": {Backend: BackendCPU, GBps: 0.6, GFLOPs: 0.3, StepOverheadMicros: 200},
	// SwiftShader and lavapipe: 1–4 GFLOP/s on the matmuls ARCHITECTURE.md lists.
	"fallback": {Backend: BackendGPU, GBps: 2, GFLOPs: 1, StepOverheadMicros: 2000},
	// An integrated GPU streams from shared LPDDR; half of a low-end part's bandwidth.
	"integrated-gpu": {Backend: BackendGPU, GBps: 10, GFLOPs: 5, StepOverheadMicros: 2000},
	// A discrete GPU has hundreds of GB/s of VRAM; a browser reaches a fraction.
	"discrete-gpu": {Backend: BackendGPU, GBps: 100, GFLOPs: 50, StepOverheadMicros: 1000},
}

// speedFor returns the device's benchmark for backend, or the assumption for
// its class.
func speedFor(caps *Capabilities, backend string) speed {
	if b := caps.benchmark(backend); b != nil {
		return speed{bench: *b, measured: true, source: fmt.Sprintf(
			"Speed is predicted from a %s benchmark on this device (%s): %s GB/s, %s GFLOP/s%s%s.",
			backend, b.Method, formatRate(b.GBps), formatRate(b.GFLOPs), overheadClause(b.StepOverheadMicros), dispatchClause(b.DispatchMicros, b.RowNanos))}
	}
	class := "cpu"
	if backend == BackendGPU {
		switch {
		case caps.Adapter.Fallback || caps.Adapter.Type == "cpu":
			class = "fallback"
		case caps.Adapter.Type == "discrete-gpu":
			class = "discrete-gpu"
		default:
			class = "integrated-gpu"
		}
	}
	b := assumed[class]
	what := map[string]string{
		"cpu":            "scalar Go in wasm",
		"fallback":       "a software GPU",
		"integrated-gpu": "an integrated GPU (the adapter does not say it is discrete)",
		"discrete-gpu":   "a discrete GPU",
	}[class]
	return speed{bench: b, source: fmt.Sprintf(
		"No %s benchmark was reported, so speed assumes %s: %s GB/s, %s GFLOP/s%s.",
		backend, what, formatRate(b.GBps), formatRate(b.GFLOPs), overheadClause(b.StepOverheadMicros))}
}

func dispatchClause(micros, rowNanos float64) string {
	s := ""
	if micros != 0 {
		s += fmt.Sprintf(", %s µs per GPU dispatch", formatRate(micros))
	}
	if rowNanos != 0 {
		s += fmt.Sprintf(", %s ns per matrix row", formatRate(rowNanos))
	}
	return s
}

func overheadClause(micros float64) string {
	if micros == 0 {
		return ""
	}
	return fmt.Sprintf(", %s ms per step overhead", formatRate(micros/1000))
}

// tokensPerSecond predicts decode speed: a step takes its fixed overhead,
// the cost of its GPU dispatches and of its matrix rows (0 on the CPU),
// plus the longer of streaming its bytes and doing its arithmetic (decode
// is usually bound by the bytes). dispatches counts every dispatch of the
// step, extra those that splits add; rows is MatrixRows.
func (s speed) tokensPerSecond(w Work, dispatches, extra int, rows int64) float64 {
	return 1 / s.stepSeconds(w, 1, dispatches, extra, rows)
}

// stepSeconds is a step that does positions positions' arithmetic over the
// weights it reads once (1 for decode; a speculative verifier's more).
func (s speed) stepSeconds(w Work, positions, dispatches, extra int, rows int64) float64 {
	return s.bench.StepOverheadMicros*1e-6 +
		max(float64(w.Bytes)/(s.bench.GBps*1e9), float64(positions)*float64(w.FLOPs)/(s.bench.GFLOPs*1e9)) +
		s.dispatchSeconds(dispatches, extra) + float64(rows)*s.bench.RowNanos*1e-9
}

// dispatchSeconds is what a step's dispatches cost: each at the measured
// DispatchMicros, or, when that was not measured (the rates and the overhead
// hold the cost of the usual dispatches), the assumed cost of the extra
// dispatches that splits add.
func (s speed) dispatchSeconds(dispatches, extra int) float64 {
	if s.bench.DispatchMicros > 0 {
		return float64(dispatches) * s.bench.DispatchMicros * 1e-6
	}
	return float64(extra) * splitDispatchMicros * 1e-6
}
