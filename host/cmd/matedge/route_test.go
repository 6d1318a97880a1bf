package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// TestGenerateRoute: -route runs the routers (widths in the JSON, below the
// mix), route 1 is the mix's own output, and a file without routers or
// -backend gpu is refused with one line.
func TestGenerateRoute(t *testing.T) {
	run := matedge(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := weights.Write(&buf, weights.RandomRouted(weights.Random(weights.TinyConfig(), 7), 3), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	routed := filepath.Join(dir, "routed.matw")
	plain := filepath.Join(dir, "plain.matw")
	os.WriteFile(routed, buf.Bytes(), 0o644)
	os.WriteFile(plain, tinyFile(t), 0o644)
	type result struct {
		Tokens []int   `json:"tokens"`
		Widths [][]int `json:"widths"`
	}
	gen := func(file string, extra ...string) (result, string, int) {
		args := append([]string{"generate", "-model", file, "-prompt", "Once upon", "-n", "12", "-temperature", "0", "-json", "-q"}, extra...)
		stdout, stderr, code := run(args...)
		var out result
		if code == 0 {
			if err := json.Unmarshal([]byte(stdout), &out); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout)
			}
		}
		return out, stderr, code
	}
	r, stderr, code := gen(routed, "-route", "0.6", "-mix", "S,XL,XL")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if len(r.Widths) != len(r.Tokens) || len(r.Tokens) != 12 {
		t.Fatalf("%d tokens, %d widths", len(r.Tokens), len(r.Widths))
	}
	seen := map[int]bool{}
	for _, w := range r.Widths {
		if w[0] != 0 {
			t.Fatalf("widths %v: layer 0 ran above the mix's S", w)
		}
		for _, g := range w[1:] {
			seen[g] = true
		}
	}
	if len(seen) < 2 {
		t.Errorf("layers 1 and 2 always ran %v", seen)
	}
	// The GPU's router kernel picks as the CPU does: the same tokens.
	onGPU, stderr, code := gen(routed, "-route", "0.5", "-backend", "gpu")
	if code != 0 {
		t.Fatalf("-route -backend gpu: exit %d: %s", code, stderr)
	}
	onCPU, _, _ := gen(routed, "-route", "0.5", "-backend", "cpu")
	if !slices.Equal(onGPU.Tokens, onCPU.Tokens) || fmt.Sprint(onGPU.Widths) != fmt.Sprint(onCPU.Widths) {
		t.Errorf("-route 0.5 on the gpu: tokens %v widths %v; on the cpu %v %v", onGPU.Tokens, onGPU.Widths, onCPU.Tokens, onCPU.Widths)
	}
	full, _, _ := gen(routed, "-route", "1", "-mix", "XL")
	mix, _, _ := gen(routed, "-mix", "XL", "-backend", "cpu")
	if !slices.Equal(full.Tokens, mix.Tokens) {
		t.Errorf("-route 1 tokens %v; -mix XL alone %v", full.Tokens, mix.Tokens)
	}
	for _, tt := range []struct {
		file string
		args []string
		want string
	}{
		{plain, []string{"-route", "0.5"}, "no router"},
		{routed, []string{"-route", "2"}, "-route 2"},
	} {
		if _, stderr, code := gen(tt.file, tt.args...); code == 0 || !strings.Contains(stderr, tt.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("generate %v: exit %d, stderr %q; want one line saying %q", tt.args, code, stderr, tt.want)
		}
	}
}
