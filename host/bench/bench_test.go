package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadPeer reads the f32 rows of a peer results.json and refuses a file
// without any.
func TestReadPeer(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "results.json")
	os.WriteFile(good, []byte(`{"configs":[{"name":"wasm-t1","runs":[
		{"case":"mv_1x1024x4096","M":1,"K":1024,"N":4096,"wdtype":"f32","opt":"all","gflops":13.3},
		{"case":"mv_1x1024x4096_f16w","M":1,"K":1024,"N":4096,"wdtype":"f16","opt":"all","gflops":13.6},
		{"case":"sq_512","M":512,"K":512,"N":512,"wdtype":"f32","opt":"all","error":"boom"}]}]}`), 0o644)
	runs, err := ReadPeer(good)
	if err != nil {
		t.Fatal(err)
	}
	if want := (PeerRun{Config: "wasm-t1", M: 1, K: 1024, N: 4096, GFLOPs: 13.3}); len(runs) != 1 || runs[0] != want {
		t.Fatalf("ReadPeer = %+v; want [%+v]", runs, want)
	}
	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(empty, []byte(`{"configs":[]}`), 0o644)
	if _, err := ReadPeer(empty); err == nil {
		t.Fatal("ReadPeer accepted a file without f32 results")
	}
	if _, err := ReadPeer(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("ReadPeer accepted a missing file")
	}
	// The peer's M×K×N for each of our shapes.
	for _, tt := range []struct {
		s       cpuShape
		m, k, n int
	}{{cpuShape{0, 4096, 1024, 1}, 1, 1024, 4096}, {cpuShape{1, 1024, 4096, 1}, 1, 1024, 4096}, {cpuShape{2, 512, 256, 64}, 64, 256, 512}} {
		if m, k, n := tt.s.peerShape(); m != tt.m || k != tt.k || n != tt.n {
			t.Errorf("%+v.peerShape() = %d×%d×%d; want %d×%d×%d", tt.s, m, k, n, tt.m, tt.k, tt.n)
		}
	}
}
