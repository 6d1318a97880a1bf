package host

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/matedge/matedge/host/internal/testmodule"
	"github.com/matedge/matedge/host/webgpuhost"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights/defaultmodel"
)

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		text string
		want int64
	}{
		{"MemTotal:       24683620 kB\nMemFree:        21291928 kB\n", 24683620 << 10},
		{"MemFree: 5 kB\nMemTotal: 1024 kB\n", 1 << 20},
		{"MemTotal: lots kB\n", 0},
		{"", 0},
	}
	for _, tt := range tests {
		if got := parseMeminfo(strings.NewReader(tt.text)); got != tt.want {
			t.Errorf("parseMeminfo(%q) = %d; want %d", tt.text, got, tt.want)
		}
	}
	for text, want := range map[string]int64{"max\n": 0, "2147483648\n": 2 << 30, "9223372036854771712\n": 0, "": 0} {
		if got := parseCgroupLimit(text); got != want {
			t.Errorf("parseCgroupLimit(%q) = %d; want %d", text, got, want)
		}
	}
}

func TestDetectCapabilities(t *testing.T) {
	caps, noAdapter := DetectCapabilities()
	if caps.LogicalCores != runtime.NumCPU() || caps.Source != "host" {
		t.Errorf("caps = %+v", caps)
	}
	if runtime.GOOS == "linux" && caps.DeviceMemoryBytes <= 0 {
		t.Errorf("DeviceMemoryBytes = %d on linux", caps.DeviceMemoryBytes)
	}
	switch {
	case caps.Adapter == nil && !errors.Is(noAdapter, webgpu.ErrNoAdapter):
		t.Errorf("no adapter, and the reason %v is not ErrNoAdapter", noAdapter)
	case caps.Adapter != nil && (noAdapter != nil || caps.Adapter.Limits.MaxStorageBufferBindingSize == 0):
		t.Errorf("adapter %+v, error %v; want limits and no error", caps.Adapter, noAdapter)
	}
	if err := caps.Validate(); err != nil {
		t.Error(err)
	}
}

// TestFitDecode: the fitted rates reproduce both measured step times, in the
// dimension that bounds the backend, and the other rate never decides them.
func TestFitDecode(t *testing.T) {
	small := planner.Work{Bytes: 400_000, FLOPs: 210_000}
	large := planner.Work{Bytes: 1_200_000, FLOPs: 590_000}
	for _, bytesBound := range []bool{false, true} {
		for _, times := range [][2]float64{{0.002, 0.004}, {0.004, 0.004}, {0.001, 0.0012}} {
			b := fitDecode(times[0], small, times[1], large, bytesBound)
			if err := (&planner.Capabilities{Benchmarks: []planner.Benchmark{{Backend: "cpu", GBps: b.GBps, GFLOPs: b.GFLOPs, StepOverheadMicros: b.StepOverheadMicros}}}).Validate(); err != nil {
				t.Fatalf("fitDecode(%v) = %+v: %v", times, b, err)
			}
			predict := func(w planner.Work) float64 {
				return b.StepOverheadMicros*1e-6 + max(float64(w.Bytes)/(b.GBps*1e9), float64(w.FLOPs)/(b.GFLOPs*1e9))
			}
			if got := predict(large); math.Abs(got-times[1]) > 1e-12 {
				t.Errorf("bytesBound %v, times %v: predicted %g s for the large step", bytesBound, times, got)
			}
			if times[1] > times[0] && times[0] > 0.0015 { // a fit with a non-negative overhead
				if got := predict(small); math.Abs(got-times[0]) > 1e-12 {
					t.Errorf("bytesBound %v, times %v: predicted %g s for the small step", bytesBound, times, got)
				}
			}
		}
	}
}

// TestMeasureDecode runs the CPU benchmark the plan command runs, briefly.
func TestMeasureDecode(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, testmodule.Bytes(t), Config{GPU: webgpuhost.NoGPU})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	b, err := MeasureDecode(ctx, rt, defaultmodel.Bytes, planner.BackendCPU, 40*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	caps := planner.Capabilities{Benchmarks: []planner.Benchmark{b}}
	if err := caps.Validate(); err != nil || b.Backend != planner.BackendCPU || b.DurationMillis <= 0 {
		t.Errorf("MeasureDecode = %+v, %v", b, err)
	}
	if _, err := MeasureDecode(ctx, rt, defaultmodel.Bytes, planner.BackendGPU, 40*time.Millisecond); !errors.Is(err, ErrBackend) {
		t.Errorf("MeasureDecode(gpu) without a GPU: %v; want ErrBackend", err)
	}
}
