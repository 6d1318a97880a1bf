package engine

import (
	"errors"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
)

// headerOnly returns an engine that has read only the header of file, as a
// browser has before it downloads any weights; opens counts its GPU opens.
func headerOnly(t testing.TB, file []byte, d webgpu.Device, opens *int) *Engine {
	t.Helper()
	e := &Engine{OpenGPU: func() (webgpu.Device, error) {
		*opens++
		if d == nil {
			return nil, webgpu.ErrNoAdapter
		}
		return d, nil
	}}
	need, err := weights.HeaderLen(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadHeader(file[:need], int64(len(file))); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestShapeBench: with only the header loaded, the synthetic engine runs a
// whole sequence of the mix on the CPU — every step of a full context —
// while the real engine still misses every byte.
func TestShapeBench(t *testing.T) {
	file := weightsFile(t, weights.Random(weights.TinyConfig(), 3))
	var opens int
	e := headerOnly(t, file, nil, &opens)
	c := e.Header().Config
	for _, spec := range []string{"S", "XL", "S,L,XL"} {
		mix, err := c.ParseMix(spec)
		if err != nil {
			t.Fatal(err)
		}
		before := e.Missing(mix)
		b, err := e.ShapeBench(mix)
		if err != nil {
			t.Fatalf("ShapeBench(%s): %v", spec, err)
		}
		if !slices.Equal(b.Mix(), mix) {
			t.Errorf("ShapeBench(%s) selects %v", spec, b.Mix())
		}
		if err := b.Reset(Options{Backend: "cpu"}); err != nil {
			t.Fatalf("ShapeBench(%s): reset: %v", spec, err)
		}
		ids, err := b.Prompt([]byte("T"))
		if err != nil {
			t.Fatal(err)
		}
		steps := 0
		for ; ; steps++ {
			tok, err := b.Step()
			if errors.Is(err, ErrDone) {
				break
			}
			if err != nil || tok < 0 || tok >= c.Vocab {
				t.Fatalf("ShapeBench(%s): step %d = %d, %v", spec, steps, tok, err)
			}
		}
		if want := c.Context - len(ids) + 1; steps != want {
			t.Errorf("ShapeBench(%s): %d steps before the context filled; want %d", spec, steps, want)
		}
		if after := e.Missing(mix); !slices.Equal(after, before) || weights.Bytes(after) == 0 {
			t.Errorf("ShapeBench(%s) changed what the real engine misses: %v → %v", spec, before, after)
		}
		b.Release()
	}
	if opens != 0 {
		t.Errorf("a CPU shape benchmark opened the GPU %d times", opens)
	}
	if _, err := e.ShapeBench(model.Mix{0}); !errors.Is(err, ErrArg) {
		t.Errorf("ShapeBench(one layer of three) = %v; want ErrArg", err)
	}
	if _, err := new(Engine).ShapeBench(model.Mix{0}); !errors.Is(err, ErrState) {
		t.Errorf("ShapeBench before LoadHeader = %v; want ErrState", err)
	}
}

// TestShapeBenchVision: a vision model's synthetic engine classifies the
// benchmark's black image.
func TestShapeBenchVision(t *testing.T) {
	file := weightsFile(t, weights.Random(weights.TinyVisionConfig(), 3))
	var opens int
	e := headerOnly(t, file, nil, &opens)
	b, err := e.ShapeBench(e.Header().Config.Uniform(0))
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Classify(b.BenchImage("cpu"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logits) != e.Header().Config.Vocab || res.Backend != "cpu" {
		t.Errorf("classify on the synthetic model: %d logits on %q", len(res.Logits), res.Backend)
	}
}

// TestShapeBenchGPU: the synthetic engine runs on the GPU through the real
// engine's device, opened once for both.
func TestShapeBenchGPU(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		file := weightsFile(t, weights.Random(weights.TinyConfig(), 3))
		var opens int
		e := headerOnly(t, file, d, &opens)
		b, err := e.ShapeBench(e.Header().Config.Uniform(0))
		if err != nil {
			t.Fatal(err)
		}
		if got := tokens(t, b, "S", Options{Backend: "gpu"}, "T", 5); len(got) != 5 {
			t.Fatalf("%d tokens", len(got))
		}
		b.Release()
		if err := e.Feed(0, file); err != nil {
			t.Fatal(err)
		}
		tokens(t, e, "S", Options{Backend: "gpu"}, gpuPrompt, 3)
		if opens != 1 {
			t.Errorf("the device was opened %d times for the benchmark and the model; want 1", opens)
		}
	})
}
