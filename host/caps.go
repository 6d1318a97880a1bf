package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
)

// DetectCapabilities describes this machine the way a browser describes
// itself to the planner: its memory (/proc/meminfo, bounded by the cgroup's
// limit; 0 where neither exists), its logical cores, and the native WebGPU
// adapter when this build has one (cgo) and a driver answers. A host reads
// weights from local files, so network and storage quota stay unknown, and
// no benchmark is run: see MeasureDecode. noAdapter says why there is no
// adapter (it wraps webgpu.ErrNoAdapter), nil when there is one.
func DetectCapabilities() (caps planner.Capabilities, noAdapter error) {
	caps = planner.Capabilities{Source: "host", LogicalCores: runtime.NumCPU(), DeviceMemoryBytes: physicalMemory()}
	caps.Adapter, noAdapter = nativeAdapter()
	return caps, noAdapter
}

// nativeAdapter opens the native device long enough to read its adapter's
// names, limits and features.
func nativeAdapter() (*planner.Adapter, error) {
	device, err := webgpu.Open()
	if err != nil {
		return nil, err
	}
	info := device.Info()
	device.Close()
	l := info.Limits
	return &planner.Adapter{
		Vendor:      info.Vendor,
		Description: info.Name,
		Type:        info.AdapterType,
		Fallback:    info.AdapterType == "cpu", // lavapipe and friends: what a browser calls a fallback adapter
		Backend:     info.Backend,
		Limits: planner.Limits{
			MaxBufferSize:                     l.MaxBufferSize,
			MaxStorageBufferBindingSize:       l.MaxStorageBufferBindingSize,
			MaxStorageBuffersPerShaderStage:   l.MaxStorageBuffersPerShaderStage,
			MaxComputeWorkgroupStorageSize:    l.MaxComputeWorkgroupStorageSize,
			MaxComputeInvocationsPerWorkgroup: l.MaxComputeInvocationsPerWorkgroup,
			MaxComputeWorkgroupSizeX:          l.MaxComputeWorkgroupSizeX,
			MaxComputeWorkgroupsPerDimension:  l.MaxComputeWorkgroupsPerDimension,
		},
		Features: webgpuFeatures(info.Features),
	}, nil
}

// webgpuFeatures drops wgpu-native's own features ("native-feature-…"),
// which no browser reports and the engine does not use.
func webgpuFeatures(all []string) []string {
	var out []string
	for _, f := range all {
		if !strings.HasPrefix(f, "native-feature-") {
			out = append(out, f)
		}
	}
	return out
}

// physicalMemory is MemTotal from /proc/meminfo, or the cgroup's memory
// limit when that is lower (a container sees the host's MemTotal).
func physicalMemory() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		total = parseMeminfo(f)
		f.Close()
	}
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(path); err == nil {
			if limit := parseCgroupLimit(string(b)); limit > 0 && (total == 0 || limit < total) {
				total = limit
			}
		}
	}
	return total
}

// parseMeminfo returns the MemTotal line of /proc/meminfo in bytes, or 0.
func parseMeminfo(r io.Reader) int64 {
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// parseCgroupLimit reads memory.max (v2) or memory.limit_in_bytes (v1):
// bytes, or "max" (v2) or a huge number (v1) for no limit, which is 0 here.
func parseCgroupLimit(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0
	}
	return n
}

// MeasureDecode times decode steps of backend ("cpu" or "gpu") inside the
// module — the path a plan runs — for the smallest and the largest uniform
// submodel of the weights file, and takes the median step of each (loading
// the module and the weights, and the warm-up steps, come on top and are
// not counted in the benchmark's DurationMillis).
//
// On the CPU each submodel is timed for about limit/2 after one warm-up
// step, and a step's time fitted as overhead + FLOPs/rate to the two, so
// the planner's prediction for either submodel is what was measured.
//
// On the GPU the two are timed again on random weights of a second, wider
// and deeper shape (gpuFitConfig), and the four fitted as overhead +
// dispatches·cost + rows·cost + bytes/rate (planner.FitGPUDecode): one
// shape cannot tell a software GPU's per-dispatch cost from its per-step
// overhead, and one rate fitted on the short rows of a small model
// mispredicts a larger one (lavapipe ran the default model's FFN rows at
// half the bytes per second of a d=384 model's). After two warm-up steps
// each, the four take turns, one step at a time, for gpuRounds rounds:
// a burst of other work on the machine then slows all four alike instead
// of one, which the fit would read as a cost of its shape. This takes
// longer than limit on a software GPU (about a second on lavapipe).
//
// A backend the module cannot run here gives an error matching ErrBackend.
func MeasureDecode(ctx context.Context, rt *Runtime, file []byte, backend string, limit time.Duration) (planner.Benchmark, error) {
	gpu := backend == planner.BackendGPU
	var runs []*decodeRun
	defer func() {
		for _, r := range runs {
			r.mod.Close(ctx)
		}
	}()
	warmup := 1
	if gpu {
		warmup = 2
	}
	// The wider shape's file is made only once the backend has run the
	// default model: a GPU the module cannot use fails before that work.
	for i := range 2 {
		f := file
		if i == 1 {
			if !gpu {
				break
			}
			var err error
			if f, err = gpuFitFile(file); err != nil {
				return planner.Benchmark{}, err
			}
		}
		for _, small := range []bool{true, false} {
			r, err := startDecodeRun(ctx, rt, f, backend, small, warmup)
			if err != nil {
				return planner.Benchmark{}, err
			}
			runs = append(runs, r)
		}
	}
	var timed time.Duration // spent in timed steps, setup excluded
	if gpu {
		began := time.Now()
		for range gpuRounds {
			for _, r := range runs {
				if err := r.step(ctx); err != nil {
					return planner.Benchmark{}, err
				}
			}
		}
		timed = time.Since(began)
	} else {
		for _, r := range runs {
			began := time.Now()
			for r.pos < r.c.Context && (len(r.times) == 0 || time.Since(began) < limit/2) {
				if err := r.step(ctx); err != nil {
					return planner.Benchmark{}, err
				}
			}
			timed += time.Since(began)
		}
	}
	samples := make([]planner.DecodeSample, len(runs))
	for i, r := range runs {
		if len(r.times) == 0 {
			return planner.Benchmark{}, fmt.Errorf("host: benchmark: the model's context (%d) leaves no step to time", r.c.Context)
		}
		if samples[i] = r.sample(); gpu {
			samples[i].Dispatches, samples[i].Rows = planner.GPUDispatches(r.c), planner.MatrixRows(r.c, r.mix)
		}
	}
	var b planner.Benchmark
	if gpu {
		var ok bool
		if b, ok = planner.FitGPUDecode(samples); !ok {
			return planner.Benchmark{}, fmt.Errorf("host: gpu benchmark: the steps timed fit no positive rate")
		}
	} else {
		b = fitDecode(samples[0].Seconds, samples[0].Work, samples[1].Seconds, samples[1].Work, false)
	}
	c := runs[0].c
	b.Backend = backend
	b.Method = fmt.Sprintf("decode steps of %s and %s of a %s-parameter model inside the wasm module", c.GranularityName(0),
		c.GranularityName(c.Granularities()-1), paramCount(c))
	if gpu {
		wc := runs[len(runs)-1].c
		b.Method += fmt.Sprintf(" and of random weights of d=%d, %d layers, in turns", wc.Dim, wc.Layers)
	}
	b.DurationMillis = float64(timed.Microseconds()) / 1000
	return b, nil
}

// gpuRounds is how many steps the GPU benchmark times of each submodel, in
// turns: a software GPU takes 4–60 ms a step here, and the median of one or
// two steps on a busy machine moved predictions tenfold between runs.
const gpuRounds = 7

// gpuFitConfig is the second shape the GPU benchmark times, beside the
// default model of c: three times its width, twice its layers and FFN widths
// (a third of its dispatches per byte, and rows of the length a small real
// model has), with a small vocabulary.
func gpuFitConfig(c model.Config) model.Config {
	w := model.Config{Vocab: 256, Dim: 3 * c.Dim, Layers: 2 * c.Layers, Heads: c.Heads, Context: c.Context,
		RopeTheta: c.RopeTheta, NormEps: c.NormEps}
	for _, f := range c.FFNWidths {
		w.FFNWidths = append(w.FFNWidths, 2*f)
	}
	return w
}

// gpuFitFile is a weights file of random weights of gpuFitConfig for the
// model in file.
func gpuFitFile(file []byte) ([]byte, error) {
	h, err := weights.ParseHeader(file, int64(len(file)))
	if err != nil {
		return nil, fmt.Errorf("host: benchmark model: %w", err)
	}
	var buf bytes.Buffer
	if err := weights.Write(&buf, weights.Random(gpuFitConfig(h.Config), 1), model.Tokenizer{}, map[string]string{"kind": "random"}); err != nil {
		return nil, fmt.Errorf("host: gpu benchmark model: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeRun is one submodel decoding in a module of its own, for timing.
type decodeRun struct {
	mod   *Module
	c     model.Config
	mix   model.Mix
	pos   int          // of the token the next step decodes
	total planner.Work // of the timed steps
	times []float64    // seconds of each timed step
}

// startDecodeRun loads the smallest (small) or largest uniform submodel of
// file into a new module, prompts it and runs warmup untimed steps: the
// first decodes the prompt; on the GPU the second is the first of one
// token, whose pipelines (matvec, not matmul) it compiles.
func startDecodeRun(ctx context.Context, rt *Runtime, file []byte, backend string, small bool, warmup int) (*decodeRun, error) {
	mod, err := rt.Instantiate(ctx)
	if err != nil {
		return nil, err
	}
	h, err := weights.ParseHeader(file, int64(len(file)))
	if err != nil {
		mod.Close(ctx)
		return nil, fmt.Errorf("host: benchmark model: %w", err)
	}
	r := &decodeRun{mod: mod, c: h.Config}
	g := r.c.Granularities() - 1
	if small {
		g = 0
	}
	r.mix = r.c.Uniform(g)
	err = func() error {
		// Only the submodel's rows: S of the wider shape is a third of its file.
		if _, _, err := mod.Load(ctx, bytes.NewReader(file), int64(len(file)), r.c.GranularityName(g)); err != nil {
			return fmt.Errorf("host: benchmark model: %w", err)
		}
		if _, err := mod.Reset(ctx, abi.Options{Backend: backend}); err != nil {
			return err
		}
		prompt, err := mod.Prompt(ctx, "T")
		if err != nil {
			return err
		}
		for range warmup {
			if _, _, _, err := mod.Step(ctx); err != nil {
				return err
			}
		}
		r.pos = len(prompt) + warmup - 1
		return nil
	}()
	if err != nil {
		mod.Close(ctx)
		return nil, err
	}
	return r, nil
}

// step times one decode step; past the context it does nothing.
func (r *decodeRun) step(ctx context.Context) error {
	if r.pos >= r.c.Context {
		return nil
	}
	t0 := time.Now()
	_, _, done, err := r.mod.Step(ctx)
	if err != nil || done {
		r.pos = r.c.Context
		return err
	}
	r.times = append(r.times, time.Since(t0).Seconds())
	w := planner.DecodeWork(r.c, r.mix, r.pos)
	r.total.Bytes += w.Bytes
	r.total.FLOPs += w.FLOPs
	r.pos++
	return nil
}

// sample is the run's median step, with its mean work. The median, not the
// mean: one step that meets a garbage collection or another process's burst
// would otherwise move the whole prediction (back-to-back means once
// differed tenfold).
func (r *decodeRun) sample() planner.DecodeSample {
	n := int64(len(r.times))
	return planner.DecodeSample{Seconds: median(slices.Clone(r.times)),
		Work: planner.Work{Bytes: r.total.Bytes / n, FLOPs: r.total.FLOPs / n}}
}

// median returns the middle value of v (the mean of the two middle ones
// for an even count); it reorders v.
func median(v []float64) float64 {
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

// fitDecode solves t = overhead + work/rate for two measured steps, in
// FLOPs (the CPU backend is compute-bound) or, for bytesBound, in bytes.
// The other rate is set as high as the two steps allow without it deciding
// their predicted time, so that the prediction for each measured submodel
// is what was measured. When noise makes the larger step no slower, or the
// overhead negative, it falls back to no overhead and the larger step's rates.
func fitDecode(tSmall float64, small planner.Work, tLarge float64, large planner.Work, bytesBound bool) planner.Benchmark {
	amount := func(w planner.Work) float64 { return float64(w.FLOPs) }
	other := func(w planner.Work) float64 { return float64(w.Bytes) }
	if bytesBound {
		amount, other = other, amount
	}
	rate, overhead := amount(large)/tLarge, 0.0
	if dt := tLarge - tSmall; dt > 0 && amount(large) > amount(small) {
		r := (amount(large) - amount(small)) / dt
		if o := tSmall - amount(small)/r; o >= 0 {
			rate, overhead = r, o
		}
	}
	otherRate := rate * max(other(small)/amount(small), other(large)/amount(large))
	b := planner.Benchmark{GFLOPs: rate / 1e9, GBps: otherRate / 1e9, StepOverheadMicros: overhead * 1e6}
	if bytesBound {
		b.GFLOPs, b.GBps = b.GBps, b.GFLOPs
	}
	return b
}

func paramCount(c model.Config) string {
	n := float64(c.NonEmbeddingParams(c.Uniform(c.Granularities()-1)) + 2*c.Vocab*c.Dim)
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.3gB", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.3gM", n/1e6)
	}
	return fmt.Sprintf("%.3gk", n/1e3)
}
