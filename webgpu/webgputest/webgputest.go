// Package webgputest runs GPU tests so that one crash cannot hide the others.
//
// cogentcore/webgpu aborts the whole process on some errors (an error inside
// Queue.Submit, for one). Run therefore re-executes the test binary for just
// the calling test, in a child process that opens the device and runs the
// test body, and reports the child's result as the test's own.
//
// A test skips, with the reason, when there is no adapter, unless the
// environment variable CI is "true": there, a missing adapter fails.
package webgputest

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/matedge/matedge/webgpu"
)

// childEnv names the test a child process is to run.
const childEnv = "MATEDGE_GPU_TEST"

// Run runs body with a fresh Device in a child process of its own.
func Run(t *testing.T, body func(t *testing.T, d webgpu.Device)) {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		d := Open(t)
		defer d.Close()
		body(t, d)
		return
	}
	var levels []string
	for _, name := range strings.Split(t.Name(), "/") {
		levels = append(levels, "^"+regexp.QuoteMeta(name)+"$")
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(levels, "/"), "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	text := string(out)
	switch {
	case err != nil:
		t.Fatalf("GPU test in a child process: %v\n%s", err, text)
	case strings.Contains(text, "--- SKIP: "+t.Name()+" "):
		t.Skip(skipReason(text))
	case !strings.Contains(text, "--- PASS: "+t.Name()+" "):
		t.Fatalf("GPU test in a child process ran no test named %s:\n%s", t.Name(), text)
	case testing.Verbose():
		t.Log("child process:\n" + text)
	}
}

// skipReason picks the indented log lines of the child's output.
func skipReason(out string) string {
	var reason []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "    ") {
			reason = append(reason, strings.TrimSpace(line))
		}
	}
	return strings.Join(reason, "; ")
}

// Open opens the device of this build, skipping the test when there is no
// adapter (failing under CI=true). Close the device when done.
func Open(t testing.TB) webgpu.Device {
	t.Helper()
	d, err := webgpu.Open()
	if errors.Is(err, webgpu.ErrNoAdapter) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true needs a GPU adapter (install libvulkan1 mesa-vulkan-drivers for lavapipe): %v", err)
		}
		t.Skipf("needs a GPU adapter (install libvulkan1 mesa-vulkan-drivers for lavapipe): %v", err)
	}
	if err != nil {
		t.Fatalf("webgpu.Open() = %v", err)
	}
	return d
}
