package weights

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/matedge/matedge/model"
)

// TestUpgradeFile: a file is rewritten in the current version and verifies;
// a damaged one leaves nothing at the destination.
func TestUpgradeFile(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, Random(TinyConfig(), 3), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "new.matw")
	if err := UpgradeFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()), out); err != nil {
		t.Fatal(err)
	}
	f, size, err := OpenFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := Verify(f, size)
	if err != nil || h.FormatVersion != Version {
		t.Fatalf("upgraded file: version %v, %v", h, err)
	}
	costs := h.GranularityCosts()
	if len(costs) != h.Config.Granularities() || costs[0].Bytes >= costs[len(costs)-1].Bytes {
		t.Errorf("GranularityCosts = %+v; want one per granularity, growing", costs)
	}

	bad := filepath.Join(dir, "bad.matw")
	damaged := append([]byte(nil), buf.Bytes()...)
	damaged[len(damaged)-1] ^= 0xff
	if err := UpgradeFile(bytes.NewReader(damaged), int64(len(damaged)), bad); err == nil {
		t.Error("UpgradeFile upgraded a damaged file")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a failed upgrade left %s (%v)", bad, err)
	}
}
