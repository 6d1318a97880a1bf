package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/matedge/matedge/host/internal/testmodule"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

var (
	buildOnce sync.Once
	bin       string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bin != "" {
		os.RemoveAll(filepath.Dir(bin))
	}
	testmodule.Cleanup()
	os.Exit(code)
}

// matedge builds this command once per test process and returns a function
// that runs it with the module under test.
func matedge(t *testing.T) func(args ...string) (stdout, stderr string, code int) {
	t.Helper()
	wasm := testmodule.Path(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "matedge-cli-")
		if err != nil {
			buildErr = err
			return
		}
		bin = filepath.Join(dir, "matedge")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		// A cache of the test binary's own, so stored benchmarks neither
		// come from nor go to the user's.
		cmd.Env = append(os.Environ(), "MATEDGE_WASM="+wasm, "XDG_CACHE_HOME="+filepath.Join(filepath.Dir(bin), "cache"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}
}

func tinyFile(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := weights.Write(&buf, weights.Random(weights.TinyConfig(), 7), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGenerateJSON(t *testing.T) {
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	stdout, stderr, code := run("generate", "-model", path, "-prompt", "Once", "-n", "5", "-mix", "S,M,XL", "-temperature", "0", "-backend", "cpu", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Tokens  []int    `json:"tokens"`
		Text    string   `json:"text"`
		Mix     []string `json:"mix"`
		Backend string   `json:"backend"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if len(out.Tokens) != 5 || strings.Join(out.Mix, ",") != "S,M,XL" || out.Backend != "cpu" {
		t.Fatalf("generate -json = %+v", out)
	}
}

// TestGenerateDraft: -draft changes how tokens are computed, not which:
// greedy, the mix's own tokens on either backend; sampled, the same tokens
// on the gpu as on the cpu for a seed.
func TestGenerateDraft(t *testing.T) {
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	args := []string{"generate", "-model", path, "-prompt", "Once upon", "-n", "16", "-mix", "XL", "-temperature", "0", "-json"}
	tokens := func(extra ...string) string {
		stdout, stderr, code := run(append(slices.Clone(args), extra...)...)
		if code != 0 {
			t.Fatalf("generate %v: exit %d: %s", extra, code, stderr)
		}
		var out struct {
			Tokens []int `json:"tokens"`
		}
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, stdout)
		}
		return fmt.Sprint(out.Tokens)
	}
	want := tokens("-backend", "cpu")
	for _, extra := range [][]string{{"-draft", "S"}, {"-draft", "M", "-k", "2"}} {
		if got := tokens(extra...); got != want {
			t.Errorf("generate %v = %s; without a draft %s", extra, got, want)
		}
	}
	if _, stderr, code := run(append(slices.Clone(args), "-draft", "S", "-backend", "gpu")...); code != 0 && strings.Contains(stderr, "no GPU") {
		t.Skipf("needs a WebGPU adapter (lavapipe: mesa-vulkan-drivers): %s", lastLine(stderr))
	}
	if got := tokens("-draft", "S", "-backend", "gpu"); got != want {
		t.Errorf("generate -draft S -backend gpu = %s; without a draft %s", got, want)
	}
	sampled := []string{"-draft", "S", "-k", "2", "-temperature", "0.8", "-seed", "5"}
	onCPU := tokens(append(slices.Clone(sampled), "-backend", "cpu")...)
	if onGPU := tokens(append(slices.Clone(sampled), "-backend", "gpu")...); onGPU != onCPU || onCPU == want {
		t.Errorf("generate %v: -backend gpu %s, cpu %s (greedy %s); want the same sampled tokens", sampled, onGPU, onCPU, want)
	}
}

// TestBadInput: every broken weights file makes generate exit non-zero with
// one line on stderr that names the problem, never a panic trace (-q: no
// progress lines before it).
func TestBadInput(t *testing.T) {
	run := matedge(t)
	good := tinyFile(t)
	h, err := weights.ParseHeader(good, int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newer := bytes.Clone(good)
	binary.LittleEndian.PutUint32(newer[4:], weights.Version+1)
	flipped := bytes.Clone(good)
	flipped[h.DataStart+10] ^= 0xff
	past := bytes.Clone(good)
	binary.LittleEndian.PutUint32(past[8:], binary.LittleEndian.Uint32(past[8:])+1<<20)

	tests := []struct {
		name, file string
		args       []string
		want       string
	}{
		{"truncated", write("truncated.matw", good[:len(good)/2]), nil, "truncated"},
		{"wrong magic", write("magic.matw", append([]byte("PK\x03\x04"), good[4:]...)), nil, "bad magic"},
		{"newer version", write("newer.matw", newer), nil, "newer matedge"},
		{"header past end", write("past.matw", past), nil, "truncated"},
		{"checksum", write("flipped.matw", flipped), nil, "checksum mismatch"},
		{"not there", filepath.Join(dir, "nope.matw"), nil, "no such file"},
		{"bad mix", write("good.matw", good), []string{"-mix", "S,Q,M"}, "unknown granularity"},
		{"bad backend", write("good2.matw", good), []string{"-backend", "tpu"}, "backend"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"generate", "-q", "-model", tt.file, "-n", "2", "-mix", "S"}, tt.args...)
			_, stderr, code := run(args...)
			if code == 0 {
				t.Fatal("exit code 0")
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || strings.Contains(stderr, "goroutine") {
				t.Fatalf("stderr is not one line:\n%s", stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr %q does not say %q", stderr, tt.want)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	stdout, stderr, code := run("inspect", path, "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Granularities []struct {
			Name  string `json:"name"`
			Bytes int64  `json:"bytes"`
		} `json:"granularities"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Granularities) != 4 || out.Granularities[0].Name != "S" || out.Granularities[0].Bytes >= out.Granularities[3].Bytes {
		t.Fatalf("inspect -json granularities = %+v", out.Granularities)
	}
}

// TestGenerateChecksFirst: options the module would refuse are refused before
// anything is printed; the prompt was echoed first (issue 15, defect 22).
func TestGenerateChecksFirst(t *testing.T) {
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	for _, bad := range [][]string{
		{"-temperature", "NaN"}, {"-temperature", "1e39"}, {"-top-p", "2"}, {"-top-k", "-1"},
		{"-precision", "f8"}, {"-backend", "tpu"}, {"-mix", ""}, {"-budget", "cheap"}, {"-draft", "S", "-k", "-1"}, {"-draft", "S", "-k", "65"},
	} {
		args := append([]string{"generate", "-model", path, "-prompt", "ECHOED", "-n", "2", "-mix", "S"}, bad...)
		stdout, stderr, code := run(args...)
		if code == 0 || stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("generate %v: exit %d, stdout %q, stderr %q; want exit 1, nothing on stdout, one line on stderr", bad, code, stdout, stderr)
		}
	}
}

// TestGenerateContextLimit: text mode says when generation stopped at the
// context limit rather than after -n tokens (issue 15, defect 22).
func TestGenerateContextLimit(t *testing.T) {
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	context := weights.TinyConfig().Context
	stdout, stderr, code := run("generate", "-model", path, "-prompt", "Once", "-n", fmt.Sprint(2*context), "-mix", "S", "-backend", "cpu")
	if code != 0 || !strings.HasPrefix(stdout, "Once") || !strings.Contains(stderr, fmt.Sprintf("context limit of %d tokens", context)) {
		t.Fatalf("generate past the context: exit %d, stdout %.40q, stderr %q", code, stdout, stderr)
	}
	if _, stderr, _ := run("generate", "-model", path, "-prompt", "Once", "-n", "3", "-mix", "S", "-backend", "cpu", "-q"); stderr != "" {
		t.Errorf("generate -q within the context: stderr %q; want nothing", stderr)
	}
}

// TestGenerateJSONBytes: -json keeps the generated bytes exactly
// (text_base64) where text, a JSON string, cannot: with the tiny model's
// byte-level tokenizer every token is one byte, many of them not UTF-8
// (issue 15, defect 22).
func TestGenerateJSONBytes(t *testing.T) {
	run := matedge(t)
	path := filepath.Join(t.TempDir(), "tiny.matw")
	os.WriteFile(path, tinyFile(t), 0o644)
	stdout, stderr, code := run("generate", "-model", path, "-prompt", "Once", "-n", "32", "-mix", "S", "-backend", "cpu", "-temperature", "1", "-top-k", "0", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Tokens     []int  `json:"tokens"`
		Text       string `json:"text"`
		TextBase64 []byte `json:"text_base64"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(out.Tokens))
	for i, id := range out.Tokens {
		want[i] = byte(id)
	}
	if utf8.Valid(want) {
		t.Fatalf("the sample %q is valid UTF-8: pick a seed whose tokens are not", want)
	}
	if !bytes.Equal(out.TextBase64, want) {
		t.Errorf("text_base64 = %q; the tokens' bytes are %q", out.TextBase64, want)
	}
}

// TestInspectVersion1: inspect reads a version-1 file with a warning on
// stderr, and -upgrade writes it as the current version with the same data.
func TestInspectVersion1(t *testing.T) {
	run := matedge(t)
	file := tinyFile(t)
	h, err := weights.ParseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	// Version 1: the same preamble and document, no header checksum.
	docEnd := weights.Preamble + int64(binary.LittleEndian.Uint32(file[8:]))
	v1 := bytes.Clone(file[:docEnd])
	binary.LittleEndian.PutUint32(v1[4:], 1)
	v1 = append(v1, make([]byte, (docEnd+255)/256*256-docEnd)...)
	v1 = append(v1, file[h.DataStart:]...)
	dir := t.TempDir()
	old, upgraded := filepath.Join(dir, "old.matw"), filepath.Join(dir, "new.matw")
	os.WriteFile(old, v1, 0o644)
	stdout, stderr, code := run("inspect", old, "-upgrade", upgraded)
	if code != 0 || !strings.Contains(stdout, "weights v1,") || !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "no checksum") {
		t.Fatalf("inspect version 1: exit %d, stdout %.80q, stderr %q", code, stdout, stderr)
	}
	got, err := os.ReadFile(upgraded)
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("inspect -upgrade wrote %d bytes (%v); want Write's %d-byte file", len(got), err, len(file))
	}
	stdout, stderr, code = run("inspect", upgraded)
	if code != 0 || stderr != "" || !strings.Contains(stdout, fmt.Sprintf("weights v%d,", weights.Version)) {
		t.Fatalf("inspect the upgraded file: exit %d, stdout %.80q, stderr %q", code, stdout, stderr)
	}
}

// TestEvalDefaultModel checks that eval without -model measures the embedded
// default model, the same file as weights/defaultmodel/default.matw.
func TestEvalDefaultModel(t *testing.T) {
	run := matedge(t)
	text := filepath.Join(t.TempDir(), "text.txt")
	os.WriteFile(text, []byte("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."), 0o644)
	embedded, stderr, code := run("eval", "-text", text, "-mix", "S", "-json")
	if code != 0 {
		t.Fatalf("eval without -model: exit %d: %s", code, stderr)
	}
	file, stderr, code := run("eval", "-model", filepath.Join("..", "..", "..", "weights", "defaultmodel", "default.matw"), "-text", text, "-mix", "S", "-json")
	if code != 0 {
		t.Fatalf("eval -model default.matw: exit %d: %s", code, stderr)
	}
	if embedded != file {
		t.Fatalf("eval without -model = %s; with the default file = %s", embedded, file)
	}
	if !strings.Contains(embedded, `"tokens":`) {
		t.Fatalf("eval -json = %q", embedded)
	}
}
