package engine

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/weights"
)

// TestHeaderTooLarge: a consistent header for a model larger than a wasm32
// module can hold, whose file size is not known yet (a download), is refused
// with ErrTooLarge before anything is allocated for it.
func TestHeaderTooLarge(t *testing.T) {
	c := model.Config{Vocab: 1 << 17, Dim: 4096, Layers: 32, Heads: 32, FFNWidths: model.NestedWidths(16384),
		Context: 4096, RopeTheta: 10000, NormEps: 1e-5}
	h := weights.Header{Config: c, Entries: weights.Plan(c, weights.F32)}
	last := h.Entries[len(h.Entries)-1]
	h.DataSize = last.Offset + last.Length
	file, err := weights.EncodeHeader(&h)
	if err != nil {
		t.Fatal(err)
	}
	var e Engine
	if _, err := e.LoadHeader(file, -1); !errors.Is(err, weights.ErrTooLarge) {
		t.Fatalf("LoadHeader(%d-byte model) = %v; want ErrTooLarge", h.DataSize, err)
	}
}

// pendingBackend stands in for a GPU whose readback the host has not
// completed: its first Token is not ready, the next one is.
type pendingBackend struct{ asked int }

func (p *pendingBackend) Name() string           { return "gpu" }
func (p *pendingBackend) Start([]int, int) error { return nil }
func (p *pendingBackend) Token() (int, bool, error) {
	p.asked++
	return 7, p.asked > 1, nil
}

// fileOf is a weights file of w.
func fileOf(t *testing.T, w *model.Weights) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := weights.Write(&buf, w, model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// stateFixture brings a fresh engine to one state through the calls a host
// makes, and says where it stands.
type stateFixture struct {
	name string
	want state
	make func(t *testing.T) *Engine
}

func stateFixtures(t *testing.T, file []byte, vision bool) []stateFixture {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	noGPU := func() (webgpu.Device, error) { return nil, webgpu.ErrNoAdapter }
	fresh := func(t *testing.T) *Engine { return &Engine{OpenGPU: noGPU} }
	header := func(t *testing.T) *Engine {
		e := fresh(t)
		_, err := e.LoadHeader(file, int64(len(file)))
		must(err)
		must(e.Feed(0, file))
		return e
	}
	mix := func(t *testing.T) *Engine {
		e := header(t)
		m, err := e.ParseMix("S")
		must(err)
		must(e.SetMix(m))
		return e
	}
	fixtures := []stateFixture{
		{"no model", noModel, fresh},
		{"header loaded", headerLoaded, header},
		{"mix set", mixSet, mix},
	}
	if vision {
		return append(fixtures, stateFixture{"mix set, index loaded", mixSet, func(t *testing.T) *Engine {
			e := mix(t)
			c := e.header.Config
			ix := &weights.Index{
				IndexHeader: weights.IndexHeader{ModelID: weights.ModelID(e.header), Mix: c.MixNames(e.mix), Dim: c.Dim, Count: 1,
					Classes: []string{"a"}, Labels: []int{0}, Image: &weights.IndexImage{Size: c.Image.Size, Channels: c.Image.Channels}, DType: "f32"},
				Embeddings: append([]float32{1}, make([]float32, c.Dim-1)...),
				Pixels:     make([]byte, c.Image.Channels*c.Image.Size*c.Image.Size),
			}
			var buf bytes.Buffer
			must(weights.WriteIndex(&buf, ix))
			_, err := e.LoadIndex(buf.Bytes())
			must(err)
			return e
		}})
	}
	reset := func(t *testing.T) *Engine {
		e := mix(t)
		must(e.Reset(Options{}))
		return e
	}
	prompt := func(t *testing.T) *Engine {
		e := reset(t)
		_, err := e.Prompt([]byte("ab"))
		must(err)
		return e
	}
	stepped := func(t *testing.T) *Engine {
		e := prompt(t)
		_, err := e.Step()
		must(err)
		return e
	}
	return append(fixtures,
		stateFixture{"sequence", sequence, reset},
		stateFixture{"prompted", prompted, prompt},
		stateFixture{"prompted, stepped once", prompted, stepped},
		stateFixture{"stepping", stepping, func(t *testing.T) *Engine {
			e := stepped(t)
			e.backend = &pendingBackend{}
			if _, err := e.Step(); !errors.Is(err, ErrPending) {
				t.Fatalf("step with a readback pending = %v; want ErrPending", err)
			}
			return e
		}},
		stateFixture{"set_mix while generating", prompted, func(t *testing.T) *Engine {
			e := stepped(t)
			m, err := e.ParseMix("XL")
			must(err)
			must(e.SetMix(m))
			return e
		}},
	)
}

// doCall makes call the way its export does.
func doCall(e *Engine, call Call, file []byte) error {
	switch call {
	case CallFeed:
		return e.Feed(0, file)
	case CallSetMix:
		m, err := e.ParseMix("S")
		if err != nil {
			return err
		}
		return e.SetMix(m)
	case CallReset:
		return e.Reset(Options{})
	case CallPrompt:
		_, err := e.Prompt([]byte("ab"))
		return err
	case CallStep:
		_, err := e.Step()
		return err
	case CallWidths:
		_, err := e.Widths()
		return err
	case CallPlan:
		return e.Allowed(CallPlan) // the export's own check (wasm/main.go); plan changes no state
	case CallClassify:
		var px []byte
		if h := e.header; h != nil && h.IsVision() {
			px = make([]byte, 4*h.Config.Image.Pixels())
		}
		_, err := e.Classify(abi.ImageRequest{Pixels: px, Backend: "cpu"})
		return err
	case CallLoadIndex:
		_, err := e.LoadIndex(nil) // no index: ERR_FORMAT when the call is allowed
		if errors.Is(err, weights.ErrCorrupt) {
			return nil
		}
		return err
	case CallIndexImage:
		_, err := e.IndexImage(0)
		return err
	}
	panic("unknown call")
}

// TestStateTransitions makes every call that depends on the order in every
// state of a language model and of a vision model: a refused call is
// ErrState, as Allowed says, and leaves the state as it was; an allowed one
// moves the state as the table in state.go says.
func TestStateTransitions(t *testing.T) {
	const refused = state(255)
	calls := []Call{CallFeed, CallSetMix, CallReset, CallPrompt, CallStep, CallWidths, CallPlan, CallClassify, CallLoadIndex, CallIndexImage}
	x := refused
	// The state after each call of calls, in their order; x: ErrState.
	text := map[string][]state{
		"no model":                 {x, x, x, x, x, x, x, x, x, x},
		"header loaded":            {headerLoaded, mixSet, x, x, x, x, headerLoaded, x, x, x},
		"mix set":                  {mixSet, mixSet, sequence, x, x, x, mixSet, x, x, x},
		"sequence":                 {sequence, mixSet, sequence, prompted, x, x, sequence, x, x, x},
		"prompted":                 {prompted, prompted, sequence, x, prompted, x, prompted, x, x, x},
		"prompted, stepped once":   {prompted, prompted, sequence, x, prompted, prompted, prompted, x, x, x},
		"stepping":                 {stepping, stepping, sequence, x, prompted, stepping, stepping, x, x, x},
		"set_mix while generating": {prompted, prompted, sequence, x, prompted, prompted, prompted, x, x, x},
	}
	vision := map[string][]state{
		"no model":              {x, x, x, x, x, x, x, x, x, x},
		"header loaded":         {headerLoaded, mixSet, x, x, x, x, headerLoaded, x, headerLoaded, x},
		"mix set":               {mixSet, mixSet, x, x, x, x, mixSet, mixSet, mixSet, x},
		"mix set, index loaded": {mixSet, mixSet, x, x, x, x, mixSet, mixSet, mixSet, mixSet},
	}
	for _, kind := range []struct {
		name   string
		file   []byte
		vision bool
		want   map[string][]state
	}{
		{"language", fileOf(t, weights.Random(weights.TinyConfig(), 1)), false, text},
		{"vision", fileOf(t, weights.Random(weights.TinyVisionConfig(), 2)), true, vision},
	} {
		fixtures := stateFixtures(t, kind.file, kind.vision)
		if len(fixtures) != len(kind.want) {
			t.Fatalf("%s: %d fixtures, %d rows of expectations", kind.name, len(fixtures), len(kind.want))
		}
		for _, f := range fixtures {
			want, ok := kind.want[f.name]
			if !ok {
				t.Fatalf("%s: no expectations for %q", kind.name, f.name)
			}
			if e := f.make(t); e.state != f.want {
				t.Fatalf("%s, %s: the fixture is in state %v; want %v", kind.name, f.name, e.state, f.want)
			}
			for i, call := range calls {
				e := f.make(t)
				allowed := e.Allowed(call)
				err := doCall(e, call, kind.file)
				switch {
				case want[i] == refused:
					if !errors.Is(allowed, ErrState) || !errors.Is(err, ErrState) {
						t.Errorf("%s, %s: %v: Allowed = %v, call = %v; want ErrState", kind.name, f.name, call, allowed, err)
					}
					if e.state != f.want {
						t.Errorf("%s, %s: refused %v moved the state to %v", kind.name, f.name, call, e.state)
					}
				case allowed != nil || err != nil:
					t.Errorf("%s, %s: %v: Allowed = %v, call = %v; want both nil", kind.name, f.name, call, allowed, err)
				case e.state != want[i]:
					t.Errorf("%s, %s: %v moved the state to %v; want %v", kind.name, f.name, call, e.state, want[i])
				}
			}
		}
	}
}

// TestHeldAndMix: the rows held in memory only grow, and the mix that runs
// is any mix within them. A wider mix asks only for the rows it adds; a
// narrower one after a wider one needs no byte and keeps every row (the
// weights are not even reallocated).
func TestHeldAndMix(t *testing.T) {
	file := fileOf(t, weights.Random(weights.TinyConfig(), 1))
	e := &Engine{}
	h, err := e.LoadHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	c := h.Config
	feed := func(ranges []weights.Range) {
		t.Helper()
		for _, r := range ranges {
			if err := e.Feed(r.Offset, file[r.Offset:r.End()]); err != nil {
				t.Fatal(err)
			}
		}
	}
	set := func(spec string) model.Mix {
		t.Helper()
		m, err := c.ParseMix(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.SetMix(m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// added is what mix needs beyond what the mixes before it needed, as
	// Missing reports it: file ranges, adjacent ones merged.
	added := func(mix model.Mix, before ...model.Mix) []weights.Range {
		var out []weights.Range
		for _, en := range h.Entries {
			had := false
			for _, b := range before {
				had = had || en.NeededBy(b)
			}
			if !en.NeededBy(mix) || had {
				continue
			}
			r := weights.Range{Offset: h.DataStart + en.Offset, Length: en.Length}
			if n := len(out); n > 0 && out[n-1].End() == r.Offset {
				out[n-1].Length += r.Length
			} else {
				out = append(out, r)
			}
		}
		return out
	}
	if e.Held() != nil {
		t.Fatalf("held before any mix or byte = %v; want nil", e.Held())
	}

	s := set("S")
	if !slices.Equal(e.Held(), s) {
		t.Fatalf("held after set_mix S = %v; want %v", e.Held(), s)
	}
	feed(e.Missing(s))

	mixed := set("M,S,XL")
	if want := (model.Mix{1, 0, 3}); !slices.Equal(e.Held(), want) {
		t.Fatalf("held after S then M,S,XL = %v; want %v", e.Held(), want)
	}
	if got, want := e.Missing(mixed), added(mixed, s); !slices.Equal(got, want) {
		t.Fatalf("S → M,S,XL asks for %v; want only the rows it adds, %v", got, want)
	}
	feed(e.Missing(mixed))

	xl := set("XL")
	if got, want := e.Missing(xl), added(xl, s, mixed); !slices.Equal(got, want) || len(got) == 0 {
		t.Fatalf("M,S,XL → XL asks for %v; want only the rows it adds, %v", got, want)
	}
	feed(e.Missing(xl))
	if err := e.Reset(Options{}); err != nil {
		t.Fatal(err)
	}

	before := e.asm.Weights
	for _, spec := range []string{"S,M,S", "S", "L,XL,M"} {
		narrow := set(spec)
		if m := e.Missing(narrow); len(m) != 0 {
			t.Errorf("XL → %s asks for %v; want nothing", spec, m)
		}
		if !slices.Equal(e.Held(), xl) || e.asm.Weights != before {
			t.Errorf("XL → %s: held %v (weights reallocated: %v); want XL's rows kept as they were", spec, e.Held(), e.asm.Weights != before)
		}
		if !slices.Equal(e.Mix(), narrow) {
			t.Errorf("the mix after set_mix %s = %v", spec, e.Mix())
		}
		if err := e.Reset(Options{}); err != nil {
			t.Errorf("reset on %s after XL: %v", spec, err)
		}
	}

	// The mix is never wider than the rows held: run, the one place that
	// sets it, refuses (a fresh engine holds S's rows once S is set).
	var narrowOnly Engine
	if _, err := narrowOnly.LoadHeader(file, int64(len(file))); err != nil {
		t.Fatal(err)
	}
	narrowOnly.hold(s)
	if err := narrowOnly.run(xl); err == nil {
		t.Error("run(XL) holding S's rows succeeded")
	}
}
