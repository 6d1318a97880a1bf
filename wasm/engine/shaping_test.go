package engine

import (
	"errors"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
)

// shapingPrompt leaves room for 40 tokens in the tiny config's context.
const shapingPrompt = "It is a"

// shapedReference is the plain-Go reference for penalties and min_p:
// model.Forward, model.Penalize and model.PenalizePresence over the last
// window tokens fed, then model.Sampler with MinP.
func shapedReference(w *model.Weights, mix model.Mix, prompt string, n int, o Options) []int {
	window := o.PenaltyWindow
	if window == 0 {
		window = abi.DefaultPenaltyWindow
	}
	sampler := model.Sampler{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, MinP: o.MinP, RNG: model.NewRNG(o.Seed)}
	s := model.NewState(w.Config)
	tok := model.Tokenizer{}
	history := tok.Encode([]byte(prompt))
	var logits []float32
	for pos, t := range history {
		logits = model.Forward(w, s, mix, t, pos)
	}
	var out []int
	for len(out) < n {
		recent := history[max(0, len(history)-window):]
		model.Penalize(logits, recent, o.RepetitionPenalty)
		model.PenalizePresence(logits, recent, o.PresencePenalty)
		next := sampler.Sample(logits)
		out = append(out, next)
		history = append(history, next)
		if len(out) < n {
			logits = model.Forward(w, s, mix, next, len(history)-1)
		}
	}
	return out
}

// shapingCases are the penalty and min-p option sets the shaping tests run,
// on the CPU (TestShaping) and against it on the GPU (TestGPUShaping).
var shapingCases = []Options{
	{RepetitionPenalty: 1.5},
	{PresencePenalty: 1.2, PenaltyWindow: 8},
	{RepetitionPenalty: 2, PresencePenalty: -0.5, PenaltyWindow: 64},
	{Temperature: 0.9, Seed: 5, MinP: 0.2},
	{Temperature: 1.2, Seed: 9, MinP: 0.05, TopK: 30, RepetitionPenalty: 1.3},
}

// TestShaping: penalties and min_p give the reference's tokens, change what
// greedy and sampled decoding pick, and are refused with a draft and out of
// range. (TestGPUShaping checks the gpu backend, and auto.)
func TestShaping(t *testing.T) {
	w := weights.Random(weights.TinyConfig(), 3)
	file := weightsFile(t, w)
	e := loaded(t, file, nil)
	mix := w.Config.Uniform(3)
	const n = 40 // after shapingPrompt, within the context of 64
	for _, o := range shapingCases {
		got := tokens(t, e, "XL", o, shapingPrompt, n)
		if want := shapedReference(w, mix, shapingPrompt, n, o); !slices.Equal(got, want) {
			t.Errorf("%+v: engine %v\nreference %v", o, got, want)
		}
		plain := o
		plain.RepetitionPenalty, plain.PresencePenalty, plain.MinP = 0, 0, 0
		if slices.Equal(got, tokens(t, e, "XL", plain, shapingPrompt, n)) {
			t.Errorf("%+v gives the tokens of %+v: the option changed nothing", o, plain)
		}
	}

	for _, tt := range []struct {
		o    Options
		want error
	}{
		{Options{Draft: "S", PresencePenalty: 0.5}, ErrArg},
		{Options{RepetitionPenalty: 0.5}, ErrArg},
		{Options{RepetitionPenalty: 11}, ErrArg},
		{Options{PresencePenalty: 2.5}, ErrArg},
		{Options{MinP: 1.5}, ErrArg},
		{Options{PenaltyWindow: -1}, ErrArg},
		{Options{PenaltyWindow: w.Config.Context + 1}, ErrArg},
	} {
		if err := e.Reset(tt.o); !errors.Is(err, tt.want) {
			t.Errorf("Reset(%+v) = %v; want %v", tt.o, err, tt.want)
		}
	}
}
