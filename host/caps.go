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
// submodel of the weights file, the median step of about limit/2 each after one warm-up step
// (loading the module and the weights comes on top, and is not counted in
// the benchmark's DurationMillis).
// A step's time is fitted as overhead + work/rate to the two, so the
// planner's prediction for either submodel is what was measured. A backend
// the module cannot run here gives an error matching ErrBackend.
func MeasureDecode(ctx context.Context, rt *Runtime, file []byte, backend string, limit time.Duration) (planner.Benchmark, error) {
	mod, err := rt.Instantiate(ctx)
	if err != nil {
		return planner.Benchmark{}, err
	}
	defer mod.Close(ctx)
	info, _, err := mod.Load(ctx, bytes.NewReader(file), int64(len(file)), "auto")
	if err != nil {
		return planner.Benchmark{}, fmt.Errorf("host: benchmark model: %w", err)
	}
	c := info.Header.Config
	var timed time.Duration // spent in timed steps, setup excluded
	type run struct {
		seconds float64 // per step
		work    planner.Work
	}
	measure := func(g int) (run, error) {
		mix := c.Uniform(g)
		if _, err := mod.SetMix(ctx, c.GranularityName(g)); err != nil {
			return run{}, err
		}
		if _, err := mod.Reset(ctx, abi.Options{Backend: backend}); err != nil {
			return run{}, err
		}
		prompt, err := mod.Prompt(ctx, "T")
		if err != nil {
			return run{}, err
		}
		pos := len(prompt) // the first step decodes the prompt; untimed, it warms the backend up
		if _, _, _, err := mod.Step(ctx); err != nil {
			return run{}, err
		}
		var total planner.Work
		var times []float64 // seconds of each timed step
		began := time.Now()
		defer func() { timed += time.Since(began) }()
		for time.Since(began) < limit/2 && pos < c.Context {
			t0 := time.Now()
			if _, _, done, err := mod.Step(ctx); err != nil {
				return run{}, err
			} else if done {
				break
			}
			times = append(times, time.Since(t0).Seconds())
			w := planner.DecodeWork(c, mix, pos)
			total.Bytes += w.Bytes
			total.FLOPs += w.FLOPs
			pos++
		}
		if len(times) == 0 {
			return run{}, fmt.Errorf("host: benchmark: the model's context (%d) leaves no step to time", c.Context)
		}
		// The median step, not the mean: one step that meets a garbage
		// collection or another process's burst would otherwise move the
		// whole prediction (back-to-back means once differed tenfold).
		n := int64(len(times))
		return run{median(times), planner.Work{Bytes: total.Bytes / n, FLOPs: total.FLOPs / n}}, nil
	}
	small, err := measure(0)
	if err != nil {
		return planner.Benchmark{}, err
	}
	large, err := measure(c.Granularities() - 1)
	if err != nil {
		return planner.Benchmark{}, err
	}
	b := fitDecode(small.seconds, small.work, large.seconds, large.work, backend == planner.BackendGPU)
	b.Backend = backend
	b.Method = fmt.Sprintf("decode steps of %s and %s of a %s-parameter model inside the wasm module", c.GranularityName(0),
		c.GranularityName(c.Granularities()-1), paramCount(c))
	b.DurationMillis = float64(timed.Microseconds()) / 1000
	return b, nil
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
