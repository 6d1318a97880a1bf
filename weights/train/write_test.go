package train

import (
	"testing"

	"github.com/matedge/matedge/model"
)

func TestEvalSeqLen(t *testing.T) {
	c := model.Config{Context: 64}
	for _, tt := range []struct {
		seq  int
		meta string
		want int
	}{{16, "32", 16}, {0, "32", 32}, {0, "128", 64}, {0, "", 64}, {0, "x", 64}} {
		if got := EvalSeqLen(tt.seq, c, map[string]string{"seq_len": tt.meta}); got != tt.want {
			t.Errorf("EvalSeqLen(%d, seq_len %q) = %d; want %d", tt.seq, tt.meta, got, tt.want)
		}
	}
}

func TestHoldOut(t *testing.T) {
	set := &Images{Name: "s", Image: model.ImageConfig{Size: 1, Channels: 1}, Pixels: make([]float32, 5), Labels: make([]int, 5)}
	tr, valid, err := HoldOut(set, 2)
	if err != nil || tr.Len() != 3 || valid.Len() != 2 {
		t.Fatalf("HoldOut(5 images, 2) = %d + %d, %v; want 3 + 2", tr.Len(), valid.Len(), err)
	}
	if _, _, err := HoldOut(set, 5); err == nil {
		t.Error("HoldOut kept no training images and did not say so")
	}
}

func TestObjectiveName(t *testing.T) {
	c := model.Config{FFNWidths: []int{8, 16}}
	if got := (Options{Config: c}).ObjectiveName(); got != "matformer" {
		t.Errorf("nested: %q", got)
	}
	if got := (Options{Config: BaselineConfig(c, 1)}).ObjectiveName(); got != "baseline" {
		t.Errorf("baseline: %q", got)
	}
	if got := ResumedCommand("", "b"); got != "b (resumed from a checkpoint)" {
		t.Errorf("ResumedCommand without a start: %q", got)
	}
}
