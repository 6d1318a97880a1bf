package host

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

// BenchmarkCache keeps decode benchmarks between runs, as the browser keeps
// its own: one per backend, device, module build and model shape, for
// MaxAge. Planning then costs no measurement, and two plans on one machine
// start from the same numbers instead of two noisy ones.
type BenchmarkCache struct {
	Path   string        // a JSON file; created when first written
	MaxAge time.Duration // entries older than this are measured again
}

// DefaultBenchmarkCache is the user's cache directory's benchmarks.json,
// entries kept a week.
func DefaultBenchmarkCache() BenchmarkCache {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return BenchmarkCache{Path: filepath.Join(dir, "matedge", "benchmarks.json"), MaxAge: 7 * 24 * time.Hour}
}

type cachedBenchmark struct {
	Benchmark planner.Benchmark `json:"benchmark"`
	Measured  time.Time         `json:"measured"`
}

// BenchmarkKey names what a benchmark depends on: the backend, the device
// (the adapter's description for the GPU; the CPU's model and core count),
// the module build and the benchmark model.
func BenchmarkKey(backend string, caps planner.Capabilities, wasm, weightsFile []byte) string {
	device := fmt.Sprintf("%s ×%d", cpuModel(), caps.LogicalCores)
	if backend == planner.BackendGPU && caps.Adapter != nil {
		device = caps.Adapter.Vendor + " " + caps.Adapter.Description
	}
	short := func(b []byte) string { sum := sha256.Sum256(b); return hex.EncodeToString(sum[:8]) }
	return fmt.Sprintf("%s|%s|module %s|model %s", backend, device, short(wasm), short(weightsFile))
}

// Get returns the benchmark stored under key if it is younger than MaxAge.
// A missing, unreadable or corrupt file is an empty cache.
func (bc BenchmarkCache) Get(key string, now time.Time) (planner.Benchmark, bool) {
	entries := bc.read()
	e, ok := entries[key]
	if !ok || now.Sub(e.Measured) > bc.MaxAge || now.Before(e.Measured) {
		return planner.Benchmark{}, false
	}
	return e.Benchmark, true
}

// Put stores b under key, dropping expired entries; the file is replaced
// atomically.
func (bc BenchmarkCache) Put(key string, b planner.Benchmark, now time.Time) error {
	entries := bc.read()
	for k, e := range entries {
		if now.Sub(e.Measured) > bc.MaxAge {
			delete(entries, k)
		}
	}
	entries[key] = cachedBenchmark{Benchmark: b, Measured: now}
	data, err := json.MarshalIndent(entries, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(bc.Path), 0o755); err != nil {
		return err
	}
	return weights.WriteFileAtomic(bc.Path, data)
}

func (bc BenchmarkCache) read() map[string]cachedBenchmark {
	entries := map[string]cachedBenchmark{}
	if data, err := os.ReadFile(bc.Path); err == nil {
		if json.Unmarshal(data, &entries) != nil {
			entries = map[string]cachedBenchmark{}
		}
	}
	return entries
}

// cpuModel is /proc/cpuinfo's first "model name", or the architecture.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}
