package planner

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// visionHeader writes weights.TinyVisionConfig's random weights with quality
// table q (nil: none) and reads its header back.
func visionHeader(t *testing.T, q []weights.Quality) *weights.Header {
	t.Helper()
	meta := map[string]string{}
	if q != nil {
		weights.SetQuality(meta, q)
	}
	var buf bytes.Buffer
	if err := weights.Write(&buf, weights.Random(weights.TinyVisionConfig(), 1), model.Tokenizer{}, meta); err != nil {
		t.Fatal(err)
	}
	h, err := weights.ParseHeader(buf.Bytes(), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestChooseVision: the most accurate mix that fits, the smaller one
// between equals, a reason for each more accurate mix ruled out, and the
// smallest candidate with the error when nothing fits.
func TestChooseVision(t *testing.T) {
	table := []weights.Quality{
		{Mix: "S", LossNatsPerToken: 0.5, Accuracy: 0.80},
		{Mix: "M", LossNatsPerToken: 0.4, Accuracy: 0.84},
		{Mix: "L", LossNatsPerToken: 0.35, Accuracy: 0.86},
		{Mix: "XL", LossNatsPerToken: 0.34, Accuracy: 0.86},
		{Mix: "S,XL", LossNatsPerToken: 0.45, Accuracy: 0.83},
	}
	h := visionHeader(t, table)
	caps := Capabilities{LogicalCores: 4}
	p, err := ChooseVision(caps, h, Budget{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec != "L" || p.Backend != BackendCPU || p.ExpectedAccuracy != 0.86 || p.Speculation != nil {
		t.Errorf("no limits: %s on %s, accuracy %g; want L (as accurate as XL and smaller) on cpu, 0.86", p.Spec, p.Backend, p.ExpectedAccuracy)
	}
	if !strings.Contains(strings.Join(p.Reasons, " "), "the most accurate that fits") {
		t.Errorf("reasons do not say why: %q", p.Reasons)
	}

	// A download limit between S and M's bytes leaves S: every more accurate
	// mix is ruled out with a reason.
	limit := weights.Bytes(h.Ranges(h.Config.Uniform(0))) + 1
	p, err = ChooseVision(caps, h, Budget{MaxDownloadBytes: limit}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec != "S" {
		t.Errorf("download ≤ %d: chose %s, want S", limit, p.Spec)
	}
	ruled := 0
	for _, r := range p.Reasons {
		if strings.Contains(r, "was ruled out") && strings.Contains(r, "download") {
			ruled++
		}
	}
	if ruled != 4 {
		t.Errorf("%d mixes ruled out for their download, want 4: %q", ruled, p.Reasons)
	}

	// Nothing fits: the error names the limit and carries S's plan.
	_, err = ChooseVision(caps, h, Budget{MaxDownloadBytes: 1}, nil)
	var noFit *ConstraintError
	if !errors.As(err, &noFit) || noFit.Constraint != ConstraintDownload || noFit.Smallest == nil || noFit.Smallest.Spec != "S" {
		t.Errorf("download ≤ 1 byte: %v; want a download ConstraintError with S's plan", err)
	}

	// The GPU is refused with a reason; a fixed mix is priced as given.
	if _, err := ChooseVision(caps, h, Budget{Backend: BackendGPU}, nil); !errors.As(err, &noFit) || noFit.Constraint != ConstraintBackend {
		t.Errorf("backend gpu: %v; want a backend ConstraintError", err)
	}
	p, err = ChooseVision(caps, h, Budget{}, model.Mix{0, 3})
	if err != nil || p.Spec != "S,XL" || p.ExpectedAccuracy != 0.83 {
		t.Errorf("fixed S,XL: %+v, %v", p, err)
	}

	// A speed target in images/s: a slower device gets a smaller encoder.
	slow := Capabilities{Benchmarks: []Benchmark{{Backend: BackendCPU, Method: "test", GBps: 1e-4, GFLOPs: 1e-4}}}
	xs := slow.benchmark(BackendCPU)
	s := speed{bench: *xs}
	target := (s.tokensPerSecond(ImageWork(h.Config, h.Config.Uniform(0)), 0, 0, 0) + s.tokensPerSecond(ImageWork(h.Config, h.Config.Uniform(1)), 0, 0, 0)) / 2
	p, err = ChooseVision(slow, h, Budget{TargetTokensPerSecond: target}, nil)
	if err != nil || p.Spec != "S" {
		t.Errorf("target %g images/s: %v, %v; want S", target, p.Spec, err)
	}
}

// TestChooseVisionNoTable: without accuracies the largest uniform mix that fits.
func TestChooseVisionNoTable(t *testing.T) {
	h := visionHeader(t, nil)
	p, err := ChooseVision(Capabilities{}, h, Budget{}, nil)
	if err != nil || p.Spec != "XL" {
		t.Errorf("no table: %s, %v; want XL", p.Spec, err)
	}
	if _, err := ChooseVision(Capabilities{}, tinyHeader(t, nil), Budget{}, nil); err == nil {
		t.Error("ChooseVision accepted a language model")
	}
}
