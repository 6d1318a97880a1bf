// Package testmodule gives tests the matedge.wasm they should run: the one
// named by $MATEDGE_WASM (./build.sh test sets it to the module it just built),
// or else a fresh build of ./wasm into a temporary folder.
package testmodule

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once  sync.Once
	path  string
	err   error
	mu    sync.Mutex
	built []string // folders this process created, for Cleanup
)

// Path returns the module's path, building it once per test process if needed.
func Path(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		path = os.Getenv("MATEDGE_WASM")
		if path == "" {
			path, err = Build("github.com/matedge/matedge/wasm")
			// Child test processes (webgputest re-runs GPU tests in them)
			// inherit the environment and so reuse this build.
			os.Setenv("MATEDGE_WASM", path)
		}
	})
	if err != nil {
		t.Fatalf("building matedge.wasm: %v", err)
	}
	return path
}

// Bytes returns the module's bytes.
func Bytes(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Build compiles a wasip1 reactor from a Go package and returns its path.
func Build(pkg string) (string, error) {
	dir, err := os.MkdirTemp("", "matedge-wasm-")
	if err != nil {
		return "", err
	}
	mu.Lock()
	built = append(built, dir)
	mu.Unlock()
	out := filepath.Join(dir, "module.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	cmd.Stderr = os.Stderr
	return out, cmd.Run()
}

// Cleanup removes what Build made in this process; call it from TestMain
// after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	for _, dir := range built {
		os.RemoveAll(dir)
	}
	built = nil
}
