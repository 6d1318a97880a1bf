package host

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
)

func TestStopScanner(t *testing.T) {
	for _, tt := range []struct {
		name    string
		stops   []string
		pieces  []string
		want    []string // released after each piece, then the flush unless stopped
		stopped bool
	}{
		{"held back, then cut", []string{"END"}, []string{"Hello E", "N", "D more"}, []string{"Hello ", "", ""}, true},
		{"a false start is released", []string{"END"}, []string{"Hello E", "Nx"}, []string{"Hello ", "ENx", ""}, false},
		{"earliest of several in one piece", []string{"b", "xy"}, []string{"axyb"}, []string{"a"}, true},
		{"empty stops are ignored", []string{""}, []string{"ab"}, []string{"ab", ""}, false},
		{"no stops", nil, []string{"a", "b"}, []string{"a", "b", ""}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStopScanner(tt.stops)
			var got []string
			stopped := false
			for _, p := range tt.pieces {
				out, done := s.push([]byte(p))
				got = append(got, string(out))
				if done {
					stopped = true
					break
				}
			}
			if !stopped {
				got = append(got, string(s.flush()))
			}
			if !slices.Equal(got, tt.want) || stopped != tt.stopped {
				t.Errorf("pieces %q: released %q, stopped %v; want %q, %v", tt.pieces, got, stopped, tt.want, tt.stopped)
			}
		})
	}
}

// TestGenerateTextOptions: stop strings and the context policies through
// Module.Generate, on a tiny model whose tokenizer is bytes (one token per
// byte), so every count is exact.
func TestGenerateTextOptions(t *testing.T) {
	w := weights.Random(weights.TinyConfig(), 7)
	file := tinyFile(t, w)
	ctx := context.Background()
	m := start(t)
	if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "S"); err != nil {
		t.Fatal(err)
	}
	greedy := abi.Options{Backend: "cpu"}
	run := func(req Request) (*Result, string, error) {
		var streamed []byte
		res, err := m.Generate(ctx, req, func(b []byte) { streamed = append(streamed, b...) })
		return res, string(streamed), err
	}

	plain, _, err := run(Request{Prompt: testPrompt, MaxTokens: 24, Options: greedy})
	if err != nil {
		t.Fatal(err)
	}
	stop := plain.Text[12:14]
	first := strings.Index(plain.Text, stop)
	res, streamed, err := run(Request{Prompt: testPrompt, MaxTokens: 24, Options: greedy, Stop: []string{"\xff\xfe\xfd", stop}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != plain.Text[:first] || streamed != res.Text || res.Reason != "stop" || !slices.Equal(res.Tokens, plain.Tokens[:first+len(stop)]) {
		t.Errorf("stop %q: text %q streamed %q reason %s tokens %d; want %q, stop, %d tokens", stop, res.Text, streamed, res.Reason, len(res.Tokens), plain.Text[:first], first+len(stop))
	}

	context := w.Config.Context
	long := strings.Repeat("abcdefghij", 10) // 100 tokens > context 64
	if _, _, err := run(Request{Prompt: long, MaxTokens: 8, Options: greedy}); !errors.Is(err, ErrArg) {
		t.Errorf("a %d-token prompt with context %d: %v; want ErrArg", len(long), context, err)
	}
	cut, _, err := run(Request{Prompt: long, MaxTokens: 8, Options: greedy, Context: ContextTruncateLeft})
	if err != nil {
		t.Fatal(err)
	}
	if kept := len(long) - cut.DroppedChars; len(cut.PromptTokens) != kept || kept > context-1-8 || kept < context/2 || len(cut.Tokens) != 8 {
		t.Errorf("truncate-left: kept %d characters, %d prompt tokens, %d generated; want ≤ %d, > %d, 8 generated", kept, len(cut.PromptTokens), len(cut.Tokens), context-9, context/2)
	}
	same, _, err := run(Request{Prompt: long[cut.DroppedChars:], MaxTokens: 8, Options: greedy})
	if err != nil || !slices.Equal(same.Tokens, cut.Tokens) {
		t.Errorf("the kept prompt alone gave %v (%v); truncate-left gave %v", same.Tokens, err, cut.Tokens)
	}

	// A prompt short enough that slide does not cut it at the start.
	n, short := context+20, "It is a"
	ended, _, err := run(Request{Prompt: short, MaxTokens: n, Options: greedy})
	if err != nil || ended.Reason != "context" || !ended.Done {
		t.Fatalf("refuse: %v, reason %q; want the context to end it", err, ended.Reason)
	}
	slid, _, err := run(Request{Prompt: short, MaxTokens: n, Options: greedy, Context: ContextSlide})
	if err != nil {
		t.Fatal(err)
	}
	if len(slid.Tokens) != n || slid.Slides < 1 || slid.Reason != "length" || !slices.Equal(slid.Tokens[:len(ended.Tokens)], ended.Tokens) {
		t.Errorf("slide: %d tokens, %d slides, reason %q; want %d, ≥ 1, length, and the refused run's tokens first", len(slid.Tokens), slid.Slides, slid.Reason, n)
	}
	if _, _, err := run(Request{Prompt: testPrompt, MaxTokens: 2, Options: greedy, Context: "wrap"}); !errors.Is(err, ErrArg) {
		t.Errorf("context wrap: %v; want ErrArg", err)
	}
}
