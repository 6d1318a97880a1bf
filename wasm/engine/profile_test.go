package engine

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

// profiling wraps a device and, when on, runs every dispatch alone: submit,
// then wait for the queue by reading 4 bytes, timing each by kernel name. The
// wait itself (measured with no dispatch, idle) is subtracted.
type profiling struct {
	webgpu.Device
	on    bool
	names map[webgpu.Pipeline]string
	spent map[string]time.Duration
	count map[string]int
	probe webgpu.Buffer
	idle  time.Duration // one wait with nothing to wait for
}

func (p *profiling) CreatePipeline(wgsl string, bindings int) (webgpu.Pipeline, error) {
	pl, err := p.Device.CreatePipeline(wgsl, bindings)
	if err == nil {
		name, _, _ := strings.Cut(strings.TrimPrefix(wgsl, "// matedge kernel "), "\n")
		p.names[pl] = name
	}
	return pl, err
}

func (p *profiling) wait() error {
	_, err := webgpu.ReadNow(p.Device, p.probe, 0, 4)
	return err
}

func (p *profiling) Dispatch(pl webgpu.Pipeline, params []byte, bindings []webgpu.Binding, groups [3]uint32) error {
	if !p.on {
		return p.Device.Dispatch(pl, params, bindings, groups)
	}
	if err := p.wait(); err != nil {
		return err
	}
	start := time.Now()
	if err := p.Device.Dispatch(pl, params, bindings, groups); err != nil {
		return err
	}
	if err := p.wait(); err != nil {
		return err
	}
	p.spent[p.names[pl]] += time.Since(start) - p.idle
	p.count[p.names[pl]]++
	return nil
}

// BenchmarkGPUDecodeProfile decodes with the default model (or, with
// -large, a random d=512 h=2048 8-layer one) on the GPU, dispatch by
// dispatch, and reports milliseconds per token spent in each kernel.
func BenchmarkGPUDecodeProfile(b *testing.B) {
	for _, which := range []string{"default", "large"} {
		b.Run(which, func(b *testing.B) {
			file := defaultmodel.Bytes
			if which == "large" {
				c := model.Config{Vocab: 256, Dim: 512, Layers: 8, Heads: 8, FFNWidths: model.NestedWidths(2048), Context: 256, RopeTheta: 10000, NormEps: 1e-5}
				file = weightsFile(b, weights.Random(c, 1))
			}
			d := webgputest.Open(b)
			defer d.Close()
			p := &profiling{Device: d, names: map[webgpu.Pipeline]string{}, spent: map[string]time.Duration{}, count: map[string]int{}}
			var err error
			if p.probe, err = d.CreateBuffer(4); err != nil {
				b.Fatal(err)
			}
			e := loaded(b, file, p)
			const prompt, decode = 16, 32
			text := strings.Repeat("x", prompt)
			tokens(b, e, "XL", Options{Backend: "gpu"}, text, 2) // compile and upload
			const probes = 50
			start := time.Now()
			for range probes {
				p.wait()
			}
			p.idle = time.Since(start) / probes
			for range b.N {
				m, _ := e.ParseMix("XL")
				e.SetMix(m)
				if err := e.Reset(Options{Backend: "gpu"}); err != nil {
					b.Fatal(err)
				}
				e.Prompt([]byte(text))
				if _, err := step(e); err != nil { // the prompt, unprofiled
					b.Fatal(err)
				}
				p.on = true
				for range decode {
					if _, err := step(e); err != nil {
						b.Fatal(err)
					}
				}
				p.on = false
			}
			per := float64(b.N * decode)
			var names []string
			var total time.Duration
			for name, t := range p.spent {
				names = append(names, name)
				total += t
			}
			sort.Slice(names, func(i, j int) bool { return p.spent[names[i]] > p.spent[names[j]] })
			var lines []string
			for _, name := range names {
				lines = append(lines, fmt.Sprintf("%-14s %7.3f ms/token  %5.1f dispatches/token  %7.1f µs/dispatch", name,
					float64(p.spent[name].Microseconds())/1e3/per, float64(p.count[name])/per, float64(p.spent[name].Microseconds())/float64(p.count[name])))
			}
			b.Logf("%s XL decode, wait overhead %v subtracted:\n%s\ntotal %.3f ms/token", which, p.idle, strings.Join(lines, "\n"), float64(total.Microseconds())/1e3/per)
			b.ReportMetric(float64(total.Microseconds())/1e3/per, "ms/token")
		})
	}
}

func step(e *Engine) (int, error) {
	for {
		tok, err := e.Step()
		if !errors.Is(err, ErrPending) {
			return tok, err
		}
	}
}
