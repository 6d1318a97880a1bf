package host

// Tests that wasm/ABI.md and webgpu/ABI.md say what the built module does:
// its imports and exports, which webgpu imports each backend setting calls
// on a host without a GPU, how Options are decoded, and the edge cases of
// feed, set_mix and the output buffer.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/host/internal/testmodule"
	"github.com/matedge/matedge/host/webgpuhost"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/kernels"
	"github.com/matedge/matedge/weights"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/vmihailenco/msgpack/v5"
)

// mdTable is one markdown table and the heading it sits under.
type mdTable struct {
	heading string
	rows    [][]string // without the header and separator rows; cells trimmed
}

// mdTables returns the tables of a markdown file, in order.
func mdTables(t *testing.T, path string) []mdTable {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []mdTable
	var heading string
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") {
			heading = strings.TrimSpace(strings.TrimLeft(l, "#"))
			continue
		}
		if !strings.HasPrefix(l, "|") || i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "|---") && !strings.HasPrefix(lines[i+1], "|--:") {
			continue
		}
		table := mdTable{heading: heading}
		for i += 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
			cells := strings.Split(strings.Trim(lines[i], "|"), "|")
			for j := range cells {
				cells[j] = strings.TrimSpace(cells[j])
			}
			table.rows = append(table.rows, cells)
		}
		out = append(out, table)
	}
	return out
}

// tablesUnder returns the tables under a heading.
func tablesUnder(t *testing.T, path, heading string) []mdTable {
	t.Helper()
	var out []mdTable
	for _, tb := range mdTables(t, path) {
		if tb.heading == heading {
			out = append(out, tb)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no table under %q", path, heading)
	}
	return out
}

var backticked = regexp.MustCompile("`([^`]*)`")

// names returns the backticked names in a cell: "`output_ptr`, `output_len`".
func names(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// paramTypes reads a parameter list where a type applies to the names before
// it: "buffer: i32, offset: i64, ptr, len: i32" or "(ptr, len i32, file_size i64)".
func paramTypes(list string) []string {
	list = strings.Trim(strings.TrimSpace(list), "()`")
	if list == "" || list == "—" {
		return nil
	}
	var out []string
	pending := 0
	for _, p := range strings.Split(list, ",") {
		fields := strings.Fields(strings.ReplaceAll(p, ":", " "))
		if len(fields) == 2 {
			for range pending + 1 {
				out = append(out, fields[1])
			}
			pending = 0
		} else {
			pending++
		}
	}
	return out
}

func valueTypes(ts []api.ValueType) []string {
	var out []string
	for _, v := range ts {
		out = append(out, api.ValueTypeName(v))
	}
	return out
}

// compiledModule compiles the module under test (cached on disk, as
// NewRuntime does).
func compiledModule(t *testing.T) wazero.CompiledModule {
	t.Helper()
	ctx := context.Background()
	rt, err := NewRuntime(ctx, testmodule.Bytes(t), Config{GPU: webgpuhost.NoGPU})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	return rt.compiled
}

// TestDocImportsExports: the import and export lists of wasm/ABI.md and
// webgpu/ABI.md are those of the built module, with the same signatures.
func TestDocImportsExports(t *testing.T) {
	compiled := compiledModule(t)
	webgpuImports := map[string][]string{}
	kernelImports := map[string][]string{}
	var wasi []string
	for _, f := range compiled.ImportedFunctions() {
		module, name, _ := f.Import()
		switch module {
		case "webgpu":
			webgpuImports[name] = valueTypes(f.ParamTypes())
			if got := valueTypes(f.ResultTypes()); !slices.Equal(got, []string{"i32"}) {
				t.Errorf("webgpu %s returns %v; webgpu/ABI.md says every function returns an i32", name, got)
			}
		case wasi_snapshot_preview1.ModuleName:
			wasi = append(wasi, name)
		case kernels.ImportModule:
			kernelImports[name] = append(valueTypes(f.ParamTypes()), "→")
			kernelImports[name] = append(kernelImports[name], valueTypes(f.ResultTypes())...)
		default:
			t.Errorf("the module imports %s.%s, which wasm/ABI.md does not list", module, name)
		}
	}

	// webgpu/ABI.md: the first table under "Functions" is what the module imports.
	documented := map[string]bool{}
	for _, row := range tablesUnder(t, "../webgpu/ABI.md", "Functions")[0].rows {
		name := names(row[0])[0]
		documented[name] = true
		got, ok := webgpuImports[name]
		if !ok {
			t.Errorf("webgpu/ABI.md lists %s as imported; the module does not import it", name)
		} else if want := paramTypes(row[1]); !slices.Equal(got, want) {
			t.Errorf("webgpu %s takes %v; webgpu/ABI.md says %v", name, got, want)
		}
	}
	for name := range webgpuImports {
		if !documented[name] {
			t.Errorf("the module imports webgpu %s; webgpu/ABI.md's table of imported functions does not list it", name)
		}
	}
	if b, err := os.ReadFile("../wasm/ABI.md"); err != nil {
		t.Fatal(err)
	} else if want := fmt.Sprintf("**`webgpu`** — %d functions", len(webgpuImports)); !strings.Contains(string(b), want) {
		t.Errorf("wasm/ABI.md does not say %q", want)
	}

	// wasm/ABI.md: the kernels table lists every kernels import with its signature.
	docKernels := map[string]bool{}
	for _, row := range tablesUnder(t, "../wasm/ABI.md", "Imports")[0].rows {
		name := names(row[0])[0]
		docKernels[name] = true
		sig := strings.Trim(row[1], "`")
		params, result, _ := strings.Cut(sig, "→")
		want := append(paramTypes(params), "→")
		want = append(want, strings.Fields(result)...)
		if got, ok := kernelImports[name]; !ok {
			t.Errorf("wasm/ABI.md lists kernels %s; the module does not import it", name)
		} else if !slices.Equal(got, want) {
			t.Errorf("kernels %s is %v; wasm/ABI.md says %v", name, got, want)
		}
	}
	for name := range kernelImports {
		if !docKernels[name] {
			t.Errorf("the module imports kernels %s; wasm/ABI.md's kernels table does not list it", name)
		}
	}
	if len(kernelImports) != len(kernels.Functions)+1 {
		t.Errorf("the module imports %d kernels functions; wasm/kernels lists %d and version", len(kernelImports), len(kernels.Functions))
	}

	// wasm/ABI.md: the WASI list is the block after **`wasi_snapshot_preview1`**.
	b, err := os.ReadFile("../wasm/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(b), "**`wasi_snapshot_preview1`**")
	block := regexp.MustCompile("(?s)```\n(.*?)```").FindStringSubmatch(after)
	if block == nil {
		t.Fatal("wasm/ABI.md has no WASI list")
	}
	docWASI := strings.Fields(block[1])
	slices.Sort(docWASI)
	slices.Sort(wasi)
	wasi = slices.Compact(wasi)
	if !slices.Equal(docWASI, wasi) {
		t.Errorf("the module imports WASI %v;\nwasm/ABI.md lists %v", wasi, docWASI)
	}
	if want := fmt.Sprintf("these %d functions", len(wasi)); !strings.Contains(after, want) {
		t.Errorf("wasm/ABI.md does not say %q", want)
	}

	// wasm/ABI.md: the exports table.
	exported := compiled.ExportedFunctions()
	docExports := map[string]bool{"_initialize": true}
	for _, row := range tablesUnder(t, "../wasm/ABI.md", "Exports, in calling order")[0].rows {
		sig := strings.Trim(row[1], "`")
		params, result, _ := strings.Cut(sig, "→")
		for _, name := range names(row[0]) {
			docExports[name] = true
			f, ok := exported[name]
			if !ok {
				t.Errorf("wasm/ABI.md lists export %s; the module does not export it", name)
				continue
			}
			if got, want := valueTypes(f.ParamTypes()), paramTypes(params); !slices.Equal(got, want) {
				t.Errorf("%s takes %v; wasm/ABI.md says %v", name, got, want)
			}
			if got, want := valueTypes(f.ResultTypes()), strings.Fields(result); !slices.Equal(got, want) {
				t.Errorf("%s returns %v; wasm/ABI.md says %v", name, got, want)
			}
		}
	}
	for name := range exported {
		if !docExports[name] {
			t.Errorf("the module exports %s; wasm/ABI.md does not list it", name)
		}
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		t.Error("the module does not export memory")
	}
}

// gpuRecorder is a webgpu host without a GPU that records the imports called.
type gpuRecorder struct {
	version int32
	calls   []string
}

// recordingRuntime compiles the module with WASI and a webgpu host module
// that records every call and has no GPU.
func recordingRuntime(t *testing.T, rec *gpuRecorder) *Runtime {
	t.Helper()
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfig()
	if dir, err := os.UserCacheDir(); err == nil {
		if cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "matedge", "wazero")); err == nil {
			cfg = cfg.WithCompilationCache(cache)
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	t.Cleanup(func() { rt.Close(ctx) })
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	compiled, err := rt.CompileModule(ctx, testmodule.Bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	b := rt.NewHostModuleBuilder("webgpu")
	for _, f := range compiled.ImportedFunctions() {
		module, name, _ := f.Import()
		if module != "webgpu" {
			continue
		}
		fn := func(_ context.Context, m api.Module, stack []uint64) {
			rec.calls = append(rec.calls, name)
			status := int32(-2) // ErrHandle: no device
			switch name {
			case "abi_version":
				status = rec.version
			case "open":
				status = -1 // ErrNoAdapter
			case "last_error":
				msg := []byte("no GPU here")[:min(len("no GPU here"), int(uint32(stack[1])))]
				m.Memory().Write(uint32(stack[0]), msg)
				status = int32(len(msg))
			}
			stack[0] = uint64(uint32(status))
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(fn), f.ParamTypes(), f.ResultTypes()).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	kern, err := instantiateKernels(ctx, rt, true)
	if err != nil {
		t.Fatal(err)
	}
	return &Runtime{runtime: rt, compiled: compiled, kernels: kern}
}

// TestDocNoGPU checks webgpu/ABI.md's table of the imports each backend
// setting calls on a host without a GPU.
func TestDocNoGPU(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	rec := &gpuRecorder{version: 1}
	rt := recordingRuntime(t, rec)
	load := func() *Module {
		t.Helper()
		m, err := rt.Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(ctx) })
		if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
			t.Fatal(err)
		}
		rec.calls = nil
		return m
	}
	reset := func(m *Module, backend string, wantBackend string, wantErr error, wantCalls ...string) {
		t.Helper()
		rec.calls = nil
		got, err := m.Reset(ctx, abi.Options{Backend: backend})
		if wantErr != nil && !errors.Is(err, wantErr) || wantErr == nil && (err != nil || got != wantBackend) {
			t.Errorf("reset backend %q = %q, %v; want %q, %v", backend, got, err, wantBackend, wantErr)
		}
		if !slices.Equal(rec.calls, wantCalls) {
			t.Errorf("reset backend %q called webgpu %v; webgpu/ABI.md says %v", backend, rec.calls, wantCalls)
		}
	}
	// The table: backend → the imports its first reset calls.
	calls := map[string][]string{}
	for _, row := range tablesUnder(t, "../webgpu/ABI.md", "A host without a GPU")[0].rows {
		calls[names(row[0])[0]] = names(row[1])
	}
	if len(calls) != 3 {
		t.Fatalf("webgpu/ABI.md's no-GPU table has rows %v; want cpu, auto and gpu", calls)
	}

	m := load()
	reset(m, "cpu", "cpu", nil, calls["cpu"]...)
	reset(m, "", "cpu", nil, calls["cpu"]...)
	reset(m, "auto", "cpu", nil, calls["auto"]...)
	reset(m, "auto", "cpu", nil) // remembered
	reset(m, "gpu", "", ErrBackend)
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatal(err)
	}
	reset(m, "gpu", "", ErrBackend) // still remembered after another load_header

	reset(load(), "gpu", "", ErrBackend, calls["gpu"]...)

	rec.version = 2
	reset(load(), "auto", "cpu", nil, "abi_version")
}

// rawReset calls reset with raw input bytes.
func rawReset(t *testing.T, m *Module, input []byte) (string, error) {
	t.Helper()
	ctx := context.Background()
	var err error
	if len(input) == 0 {
		_, err = m.call(ctx, "reset", 0, 0)
	} else {
		_, err = m.callBytes(ctx, "reset", input)
	}
	if err != nil {
		return "", err
	}
	out, err := m.output(ctx)
	return string(out), err
}

func mustMsgpack(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noGPUModule is a module with the tiny model loaded on mix, on a host without a GPU.
func noGPUModule(t *testing.T, file []byte, mix string) *Module {
	t.Helper()
	m := startWith(t, Config{GPU: webgpuhost.NoGPU})
	if _, _, err := m.Load(context.Background(), bytes.NewReader(file), int64(len(file)), mix); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDocOptions checks wasm/ABI.md's Options: defaults, ranges, which
// msgpack number encodings each field accepts, trailing bytes, and reset's
// plain-text output.
func TestDocOptions(t *testing.T) {
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	m := noGPUModule(t, file, "S")
	ok := map[string][]byte{
		"an empty map":                     {0x80},
		"a nil document":                   {0xc0},
		"an integer temperature":           mustMsgpack(t, map[string]any{"temperature": 1, "top_p": 1}),
		"float32 temperature and top_p":    mustMsgpack(t, map[string]any{"temperature": float32(0.5), "top_p": float32(0.9)}),
		"top_p 1, top_k 0":                 mustMsgpack(t, map[string]any{"temperature": float32(1), "top_p": float32(1), "top_k": 0}),
		"an unknown key":                   mustMsgpack(t, map[string]any{"beam_width": 4}),
		"a negative seed":                  mustMsgpack(t, map[string]any{"seed": -1}),
		"backend cpu, precision f16":       mustMsgpack(t, map[string]any{"backend": "cpu", "precision": "f16"}),
		"trailing bytes after the Options": append(mustMsgpack(t, map[string]any{"backend": "auto"}), 0xc1, 0xff, 'x'),
	}
	for what, input := range ok {
		if out, err := rawReset(t, m, input); err != nil || out != "cpu" {
			t.Errorf("reset with %s = %q, %v; want the plain text \"cpu\"", what, out, err)
		}
	}
	refused := map[string][]byte{
		"no bytes":                  nil,
		"a float64 temperature":     mustMsgpack(t, map[string]any{"temperature": float64(1)}),
		"a float64 top_p":           mustMsgpack(t, map[string]any{"top_p": float64(0.5)}),
		"a float top_k":             mustMsgpack(t, map[string]any{"top_k": float32(2)}),
		"a negative temperature":    mustMsgpack(t, map[string]any{"temperature": float32(-1)}),
		"a negative top_k":          mustMsgpack(t, map[string]any{"top_k": -1}),
		"top_p above 1":             mustMsgpack(t, map[string]any{"top_p": float32(1.5)}),
		"an unknown backend":        mustMsgpack(t, map[string]any{"backend": "tpu"}),
		"an unknown precision":      mustMsgpack(t, map[string]any{"precision": "f8"}),
		"an array instead of a map": {0x91, 0x01},
	}
	for what, input := range refused {
		if out, err := rawReset(t, m, input); !errors.Is(err, ErrArg) {
			t.Errorf("reset with %s = %q, %v; want ERR_ARG", what, out, err)
		}
	}

	// top_k 0 and top_p 0 or 1 keep every token.
	ctx := context.Background()
	var first []int
	for _, o := range []abi.Options{
		{Seed: 3, Temperature: 1},
		{Seed: 3, Temperature: 1, TopP: 1},
		{Seed: 3, Temperature: 1, TopK: weights.TinyConfig().Vocab, TopP: 0},
	} {
		res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: 12, Options: o}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res.Tokens
		} else if !slices.Equal(res.Tokens, first) {
			t.Errorf("%+v gave %v, the default %v: top_k 0 and top_p 0 or 1 should keep every token", o, res.Tokens, first)
		}
	}
}

// TestDocFeedAndMix checks wasm/ABI.md's edge cases of feed and set_mix.
func TestDocFeedAndMix(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	m := startWith(t, Config{GPU: webgpuhost.NoGPU})
	info, err := m.ReadHeader(ctx, bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	mixNames := func(spec string) []string {
		t.Helper()
		mi, err := m.SetMix(ctx, spec)
		if err != nil {
			t.Fatalf("set_mix(%q): %v", spec, err)
		}
		return mi.Mix
	}

	// auto with nothing fed is S, and reset then wants the bytes.
	if got := mixNames("auto"); !slices.Equal(got, []string{"S", "S", "S"}) {
		t.Errorf("set_mix(auto) with nothing fed = %v; want S everywhere", got)
	}
	if _, err := m.Reset(ctx, abi.Options{}); !errors.Is(err, ErrMissing) {
		t.Errorf("reset with nothing fed = %v; want ERR_MISSING", err)
	}
	if _, err := m.SetMix(ctx, "Auto"); !errors.Is(err, ErrArg) {
		t.Errorf("set_mix(Auto) = %v; want ERR_ARG (auto is matched exactly)", err)
	}
	if got := mixNames(" s , m ,xl"); !slices.Equal(got, []string{"S", "M", "XL"}) {
		t.Errorf("set_mix(\" s , m ,xl\") = %v; want [S M XL]", got)
	}

	// Bytes outside every entry, even past the end of the file, are accepted.
	for _, off := range []int64{0, int64(len(file)), int64(len(file)) + 1<<20} {
		if err := m.Feed(ctx, off, make([]byte, 100)); err != nil {
			t.Errorf("feed at %d (outside the data) = %v; want accepted", off, err)
		}
	}

	// A checksum failure drops that entry and keeps the rest of the call.
	h := info.Header
	bad := h.Entries[3] // layers.0.query
	data := append([]byte(nil), file[info.DataStart:]...)
	data[bad.Offset+5] ^= 0xff
	if err := m.Feed(ctx, info.DataStart, data); !errors.Is(err, ErrChecksum) {
		t.Fatalf("feed with one corrupted entry = %v; want ERR_CHECKSUM", err)
	}
	mi, err := m.SetMix(ctx, "XL")
	if err != nil {
		t.Fatal(err)
	}
	want := []weights.Range{{Offset: info.DataStart + bad.Offset, Length: bad.Length}}
	if !slices.Equal(mi.Missing, want) {
		t.Errorf("after a checksum failure, missing = %v; want only %s's bytes %v", mi.Missing, bad.Tensor, want)
	}
	if err := m.Feed(ctx, want[0].Offset, file[want[0].Offset:want[0].End()]); err != nil {
		t.Fatal(err)
	}
	if got := mixNames("auto"); !slices.Equal(got, []string{"XL", "XL", "XL"}) {
		t.Errorf("set_mix(auto) with everything fed = %v; want XL everywhere", got)
	}

	// A new mix takes effect at reset: prompt is refused, step keeps the old mix.
	greedy := func(spec string, n int) []int {
		t.Helper()
		mixNames(spec)
		res, err := m.Generate(ctx, Request{Prompt: testPrompt, MaxTokens: n}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Tokens
	}
	wantS, wantXL := greedy("S", 6), greedy("XL", 6)
	if slices.Equal(wantS, wantXL) {
		t.Log("S and XL give the same tokens here; the step-keeps-its-mix check cannot tell them apart")
	}
	mixNames("S")
	if _, err := m.Reset(ctx, abi.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Prompt(ctx, testPrompt); err != nil {
		t.Fatal(err)
	}
	var got []int
	for i := range 6 {
		if i == 3 {
			mixNames("XL")
			if _, err := m.Prompt(ctx, testPrompt); !errors.Is(err, ErrState) {
				t.Errorf("prompt after set_mix without reset = %v; want ERR_STATE", err)
			}
		}
		token, _, _, err := m.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, token)
	}
	if !slices.Equal(got, wantS) {
		t.Errorf("set_mix(XL) mid-sequence: tokens %v; want S's %v (XL's are %v)", got, wantS, wantXL)
	}
}

// TestDocOutputBuffer checks which exports leave the output buffer alone.
func TestDocOutputBuffer(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	m := noGPUModule(t, file, "S")
	if _, err := m.SetMix(ctx, "S"); err != nil {
		t.Fatal(err)
	}
	want, err := m.output(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ptr, err := m.call(ctx, "alloc", 16)
	if err != nil || ptr == 0 {
		t.Fatalf("alloc = %d, %v", ptr, err)
	}
	for _, c := range []struct {
		name string
		args []uint64
	}{
		{"abi_version", nil}, {"output_ptr", nil}, {"output_len", nil}, {"free", []uint64{uint64(ptr)}},
		{"alloc", []uint64{32}}, {"feed", []uint64{uint64(len(file)), uint64(ptr), 0}},
	} {
		if _, err := m.call(ctx, c.name, c.args...); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got, _ := m.output(ctx); !bytes.Equal(got, want) {
			t.Errorf("%s changed the output buffer", c.name)
		}
	}
	if _, err := m.HeaderLen(ctx, file[:weights.Preamble]); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.output(ctx); !bytes.Equal(got, want) {
		t.Error("header_len changed the output buffer")
	}
	_, err = m.SetMix(ctx, "XXL")
	var e *Error
	if !errors.As(err, &e) || e.Code != abi.ErrArg || e.Msg == "" || strings.Contains(e.Msg, "\n") {
		t.Errorf("set_mix(XXL) = %v; want ERR_ARG with a one-line message in the output buffer", err)
	}
}

// TestDocTablesWellFormed: every table row in the ABI documents and
// ARCHITECTURE.md belongs to a table with a header and a separator row and
// has as many cells as its header, so that no row renders as stray text.
func TestDocTablesWellFormed(t *testing.T) {
	separator := regexp.MustCompile(`^\|[-:| ]+\|$`)
	for _, path := range []string{"../wasm/ABI.md", "../webgpu/ABI.md", "../ARCHITECTURE.md"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			if !strings.HasPrefix(lines[i], "|") {
				continue
			}
			start := i
			for i < len(lines) && strings.HasPrefix(lines[i], "|") {
				i++
			}
			block := lines[start:i]
			switch {
			case start > 0 && strings.TrimSpace(lines[start-1]) != "":
				t.Errorf("%s:%d: a table must follow a blank line", path, start+1)
			case len(block) < 3 || !separator.MatchString(block[1]):
				t.Errorf("%s:%d: %d table line(s) without a header and separator row: %.60s", path, start+1, len(block), block[0])
			}
			cells := strings.Count(strings.Trim(block[0], "|"), "|")
			for j, row := range block {
				if n := strings.Count(strings.Trim(row, "|"), "|"); n != cells {
					t.Errorf("%s:%d: %d cells, the header has %d", path, start+j+1, n+1, cells+1)
				}
			}
		}
	}
}

// TestDocFeedNonFinite: an entry with a correct checksum but a NaN is
// dropped with ERR_FORMAT, as wasm/ABI.md says of feed.
func TestDocFeedNonFinite(t *testing.T) {
	ctx := context.Background()
	file := tinyFile(t, weights.Random(weights.TinyConfig(), 7))
	h, err := weights.ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte(nil), file[h.DataStart:]...)
	bad := &h.Entries[2]
	copy(data[bad.Offset+8:], []byte{0x00, 0x00, 0xc0, 0x7f}) // a quiet NaN
	bad.CRC32C = weights.Checksum(data[bad.Offset : bad.Offset+bad.Length])
	crafted, err := weights.EncodeHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	dataStart := int64(len(crafted))
	crafted = append(crafted, data...)

	m := startWith(t, Config{GPU: webgpuhost.NoGPU})
	if _, err := m.ReadHeader(ctx, bytes.NewReader(crafted), int64(len(crafted))); err != nil {
		t.Fatal(err)
	}
	if err := m.Feed(ctx, dataStart, data); !errors.Is(err, ErrFormat) {
		t.Fatalf("feed of an entry holding a NaN = %v; want ERR_FORMAT", err)
	}
	mi, err := m.SetMix(ctx, "XL")
	if err != nil {
		t.Fatal(err)
	}
	if want := []weights.Range{{Offset: dataStart + bad.Offset, Length: bad.Length}}; !slices.Equal(mi.Missing, want) {
		t.Errorf("after a NaN, missing = %v; want only %s's bytes %v", mi.Missing, bad.Tensor, want)
	}
}
