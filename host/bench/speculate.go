package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights/experiment"
)

// ModuleSpeculation is what SpeculateInModule measures: the shared-cache
// rows of the self-speculative decoding experiment in the wasm module, as
// generate runs them.
type ModuleSpeculation struct {
	Backend   string // cpu or gpu (this machine's adapter)
	ModelPath string // the weights file; empty is the embedded default
	Wasm      string // matedge.wasm; empty finds it
	Decode    func([]int) []byte
	Starts    [][]int // the prompts' tokens
	N         int     // tokens generated per prompt
	Repeats   int     // decodes of each prompt per configuration; the fastest counts
	Temps     []float64
	Drafts    []model.Mix
	Ks        []int
	Verify    model.Mix
	Config    model.Config
	Progress  func(string)
}

// moduleRun is a started module and the clock its decodes are timed with.
type moduleRun struct {
	ctx   context.Context
	mod   *host.Module
	clock func() time.Duration
	s     ModuleSpeculation
}

// SpeculateInModule measures the module's CPU or GPU backend under wazero:
// the mix alone, then each draft and k with the shared cache, and appends
// the rows to report. The CPU backend is timed in thread CPU time; the GPU
// backend, whose work runs on the driver's threads (lavapipe's, on a
// machine without a GPU), in wall time.
func SpeculateInModule(ctx context.Context, s ModuleSpeculation, report *experiment.SpecReport) error {
	file, size, name, err := host.OpenModel(s.ModelPath)
	if err != nil {
		return err
	}
	if cl, ok := file.(io.Closer); ok {
		defer cl.Close()
	}
	cfg, where := host.Config{}, "wazero"
	if s.Backend == "gpu" {
		cfg.GPU, where = webgpu.Open, "wazero gpu"
	}
	mod, closeModule, err := host.StartModule(ctx, s.Wasm, cfg)
	if err != nil {
		return err
	}
	defer closeModule()
	info, err := mod.ReadHeader(ctx, file, size)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := mod.FetchMix(ctx, file, info, s.Config.MixSpec(s.Verify)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m := moduleRun{ctx: ctx, mod: mod, s: s}
	m.clock, _ = host.ThreadClock()
	if s.Backend == "gpu" {
		began := time.Now()
		m.clock = func() time.Duration { return time.Since(began) }
	}
	for _, temp := range s.Temps {
		if err := m.temperature(report, where, temp); err != nil {
			return err
		}
	}
	return nil
}

func (m moduleRun) progress(format string, args ...any) {
	if m.s.Progress != nil {
		m.s.Progress(fmt.Sprintf(format, args...))
	}
}

// one generates after prompt i with o, timed by the run's clock.
func (m moduleRun) one(o abi.Options, i int) (*host.Result, error) {
	o.Seed = uint64(i + 1)
	start := m.clock()
	res, err := m.mod.Generate(m.ctx, host.Request{Prompt: string(m.s.Decode(m.s.Starts[i])), MaxTokens: m.s.N, Options: o}, nil)
	if res != nil {
		res.Duration = m.clock() - start
	}
	return res, err
}

// temperature measures the rows of one temperature.
func (m moduleRun) temperature(report *experiment.SpecReport, where string, temp float64) error {
	s, c := m.s, m.s.Config
	cacheBytes := experiment.KVCacheBytes(c)
	plain := abi.Options{Backend: s.Backend, Temperature: float32(temp)}
	if temp > 0 {
		plain.TopP = 1
	}
	var ref [][]int
	m.progress("%s, temperature %g: the verifier alone", where, temp)
	for i := range s.Starts {
		res, err := m.one(plain, i)
		if err != nil {
			return err
		}
		ref = append(ref, res.Tokens)
	}
	var aloneTokens int
	var aloneTime time.Duration
	for _, d := range s.Drafts {
		for _, k := range s.Ks {
			m.progress("%s, temperature %g: draft %s, k %s, shared cache", where, temp, c.MixSpec(d), experiment.KName(k))
			o := plain
			o.Draft, o.DraftTokens = c.MixSpec(d), k
			// With k auto, the first reset measures the costs (on the gpu, the
			// first sequence times its rounds): time the rest.
			if _, err := m.one(o, 0); err != nil {
				return err
			}
			row, rowAloneTokens, rowAlone, err := m.row(plain, o, ref)
			if err != nil {
				return err
			}
			row.Where, row.Draft, row.K, row.Temperature, row.CacheBytes = where, c.MixSpec(d), k, temp, cacheBytes
			aloneTokens, aloneTime = aloneTokens+rowAloneTokens, aloneTime+rowAlone
			report.Rows = append(report.Rows, row)
		}
	}
	report.Alone = append(report.Alone, experiment.SpecRow{Where: where, Models: "MatFormer", Draft: "none", Temperature: temp,
		AcceptanceRate: -1, TokensPerRound: 1, TokensPerSec: experiment.PerSecond(aloneTokens, aloneTime), Speedup: 1, CacheBytes: cacheBytes})
	return nil
}

// row times speculative decoding with o against plain decoding, prompt by
// prompt interleaved, the fastest of Repeats counted; it returns the row
// (speeds, and whether greedy output matched ref) and the plain decodes'
// tokens and time.
func (m moduleRun) row(plain, o abi.Options, ref [][]int) (experiment.SpecRow, int, time.Duration, error) {
	same := true
	var rowAlone, specTime time.Duration
	var rowAloneTokens, specTokens int
	for i := range m.s.Starts {
		var bestAlone, bestSpec time.Duration
		for r := range m.s.Repeats {
			a, err := m.one(plain, i)
			if err != nil {
				return experiment.SpecRow{}, 0, 0, err
			}
			b, err := m.one(o, i)
			if err != nil {
				return experiment.SpecRow{}, 0, 0, err
			}
			if r == 0 || a.Duration < bestAlone {
				bestAlone = a.Duration
			}
			if r == 0 || b.Duration < bestSpec {
				bestSpec = b.Duration
			}
			if r == 0 {
				rowAloneTokens, specTokens = rowAloneTokens+len(a.Tokens), specTokens+len(b.Tokens)
				same = same && slices.Equal(b.Tokens, ref[i])
			}
		}
		rowAlone, specTime = rowAlone+bestAlone, specTime+bestSpec
	}
	tps := experiment.PerSecond(specTokens, specTime)
	row := experiment.SpecRow{Models: "MatFormer", Shared: true, AcceptanceRate: -1, TokensPerRound: -1,
		TokensPerSec: tps, Speedup: tps / experiment.PerSecond(rowAloneTokens, rowAlone)}
	if o.Temperature == 0 {
		row.SameAsVerifier = &same
	}
	return row, rowAloneTokens, rowAlone, nil
}
