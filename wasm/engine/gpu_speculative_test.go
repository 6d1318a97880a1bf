package engine

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
	"github.com/matedge/matedge/weights"
)

// sampledReference is model.Speculator as the cpu backend runs it (one
// shared cache) on the prompt's ids, with the given k round by round: the
// tokens a gpu sequence whose rounds proposed those k must emit for o's
// seed and temperature.
func sampledReference(w *model.Weights, draft, verify model.Mix, prompt []int, o Options, ks []int) []int {
	sp := model.Speculator{Weights: w, Draft: draft, Verify: verify, Shared: true, Temperature: o.Temperature, RNG: model.NewRNG(o.Seed)}
	v, d := sp.NewStates()
	sp.Prefill(v, d, prompt[:len(prompt)-1], 0)
	pos, cur := len(prompt)-1, prompt[len(prompt)-1]
	var out []int
	for _, k := range ks {
		tokens, _, _ := sp.Round(v, d, cur, pos, k)
		out = append(out, tokens...)
		pos, cur = pos+len(tokens), tokens[len(tokens)-1]
	}
	return out
}

// TestGPUSpeculativeSampling: speculative sampling on the gpu backend
// emits the cpu backend's tokens for the same seed, at temperatures 0.8 and
// 1.2, for k = 1 and 2 (against the cpu backend's sequence) and k auto
// (against model.Speculator run with the k the gpu chose each round, which
// depends on the rounds' times), with one shared cache, until the context
// is full, with a readback that is pending once per round as in a browser.
//
// What is compared: token ids. The device computes the logits (which
// TestGPUMatchesCPU finds give the cpu's argmax) and draws the draft's
// proposals with the sample kernel, which sums probabilities in another
// order than the CPU; the module reads the logits back and does the rest —
// the distributions, the acceptance test, the residual and the verifier's
// own draws — with the cpu backend's code. So a token could legitimately
// differ where a draw falls within rounding of a boundary between two tokens
// (TestSample allows that once in 100 draws), and a sequence would then go
// its own way; on these seeds none does. The module draws every proposal
// again from the rows read back, and the test checks that it drew what the
// device drew (redrawn), so a failure says whether the draft's draws or the
// test parted.
func TestGPUSpeculativeSampling(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		w := weights.Random(weights.TinyConfig(), 7)
		c := w.Config
		file := weightsFile(t, w)
		dev := &roundDevice{counting: &counting{Device: d, pendingOnce: true}}
		e, cpu := loaded(t, file, dev), loaded(t, file, nil)
		// Rounds whose times make drafting pay, so that k auto drafts
		// once it has learned them.
		costs := &roundCosts{dev: dev, plain: 10 * time.Millisecond, perDraft: time.Millisecond, sampledVocab: c.Vocab}
		e.roundClock = costs.clock
		prompt := (&model.Tokenizer{}).Encode([]byte(gpuPrompt))
		redrawn, proposed, accepted := 0, 0, 0
		autoKs := map[int]int{}
		var sequences [][]int
		for _, temperature := range []float32{0.8, 1.2} {
			for _, seed := range []uint64{1, 2, 3} {
				for _, k := range []int{1, 2} {
					o := Options{Backend: "cpu", Draft: "S", DraftTokens: k, Temperature: temperature, Seed: seed}
					want := untilFull(t, cpu, "XL", o, gpuPrompt)
					o.Backend = "gpu"
					dev.reads = 0
					got := untilFull(t, e, "XL", o, gpuPrompt)
					if !slices.Equal(got, want) {
						t.Errorf("%+v: gpu %v\ncpu %v", o, got, want)
					}
					s := e.backend.(*gpuSpeculative)
					redrawn += s.redrawn
					if dev.reads != s.stats.Rounds {
						t.Errorf("%+v: %d reads for %d rounds; want one each", o, dev.reads, s.stats.Rounds)
					}
					proposed, accepted = proposed+s.stats.Proposed, accepted+s.stats.Accepted
					sequences = append(sequences, got)
				}
				o := Options{Backend: "gpu", Draft: "S", Temperature: temperature, Seed: seed}
				steps := recordSteps(t, e, dev, "XL", o)
				var ks []int
				for _, s := range steps {
					if s.dispatches > 0 { // the step that ran the round; the others return its tokens
						ks = append(ks, s.k)
						autoKs[s.k]++
					}
				}
				got := recordTokens(steps)
				want := sampledReference(w, c.Uniform(0), c.Uniform(3), prompt, o, ks)
				if len(got) == 0 || len(want) < len(got) || !slices.Equal(got, want[:len(got)]) {
					t.Errorf("%+v, k auto %v: gpu %v\ncpu %v", o, ks, got, want)
				}
				redrawn += e.backend.(*gpuSpeculative).redrawn
			}
		}
		if accepted == 0 || accepted == proposed {
			t.Errorf("fixed k: %d of %d proposals kept; want the test to keep some and reject some", accepted, proposed)
		}
		if redrawn != 0 {
			t.Errorf("the module drew %d proposals otherwise than the device from the draft's rows", redrawn)
		}
		if autoKs[0] == 0 || autoKs[1] == 0 || len(autoKs) < 3 {
			t.Errorf("k auto ran rounds of k %v; want plain rounds, k = 1 and more", autoKs)
		}
		// The seeds and temperatures matter: no two sequences are the same.
		for i := range sequences {
			for j := range i {
				if slices.Equal(sequences[i], sequences[j]) {
					t.Errorf("sequences %d and %d are the same: %v", j, i, sequences[i])
				}
			}
		}
	})
}

// TestGPUSpeculativeSamplingDistribution is model's
// TestSpeculativeSamplingDistribution on the gpu backend: many seeded
// two-token continuations, each emitted token checked to follow the
// verifier's distribution at the temperature, not the draft's. Each draw is
// a sequence of rounds on the device (lavapipe: milliseconds each), so there
// are fewer draws than there (800 per k), on a model whose distributions
// are peaked enough for that: the bound is three times ½·Σ√(p/n), which
// bounds the expected distance of n draws from p, and the draft's first
// token is far enough from the verifier's (checked) that a wrong rule
// fails: accepting every proposal (the first token 0.46–0.49 from the
// verifier's, against a bound of 0.12), or resampling a rejected one from
// the verifier's distribution rather than the residual (0.23).
func TestGPUSpeculativeSamplingDistribution(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		// A tiny model whose FFN matters, as model's specWeights, with the
		// byte vocabulary a weights file needs and one layer, for speed.
		c := model.Config{Vocab: 256, Dim: 16, Layers: 1, Heads: 2, FFNWidths: model.NestedWidths(64), Context: 8, RopeTheta: 10000, NormEps: 1e-5}
		w := weights.Random(c, 10)
		for l := range w.Layers {
			for i := range w.Layers[l].Down {
				w.Layers[l].Down[i] *= 8
			}
		}
		for i := range w.Head {
			w.Head[i] *= 12
		}
		const temperature, draws = 0.8, 800
		e := loaded(t, weightsFile(t, w), d)
		const promptText = "a" // one token: each draw starts with a round
		prompt := (&model.Tokenizer{}).Encode([]byte(promptText))
		verify, draft := c.Uniform(3), c.Uniform(0)
		dist := func(mix model.Mix, tokens []int) []float64 {
			s := model.NewState(c)
			var logits []float32
			for pos, tok := range tokens {
				logits = model.Forward(w, s, mix, tok, pos)
			}
			p := slices.Clone(logits)
			for i := range p {
				p[i] /= temperature
			}
			model.Softmax(p)
			out := make([]float64, len(p))
			for i, v := range p {
				out[i] = float64(v)
			}
			return out
		}
		p1 := dist(verify, prompt)
		if tv := totalVariation(p1, dist(draft, prompt)); tv < 0.3 || tv > 0.8 {
			t.Fatalf("draft and verifier %.3f apart (TV); want 0.3 to 0.8: apart enough for the test to tell them apart, close enough that proposals are kept", tv)
		}
		p2 := make([]float64, c.Vocab) // P(second token) = Σ_a p1(a)·p(·|a)
		for a, pa := range p1 {
			for b, pb := range dist(verify, append(slices.Clone(prompt), a)) {
				p2[b] += pa * pb
			}
		}
		bound := func(p []float64) float64 {
			var s float64
			for _, v := range p {
				s += math.Sqrt(v / draws)
			}
			return 3 * s / 2
		}
		m, _ := e.ParseMix("XL")
		if err := e.SetMix(m); err != nil {
			t.Fatal(err)
		}
		n1, n2 := make([]float64, c.Vocab), make([]float64, c.Vocab)
		for _, k := range []int{1, 2} {
			clear(n1)
			clear(n2)
			for i := range draws {
				o := Options{Backend: "gpu", Draft: "S", DraftTokens: k, Temperature: temperature, Seed: uint64(1000*k + i)}
				if err := e.Reset(o); err != nil {
					t.Fatal(err)
				}
				if _, err := e.Prompt([]byte(promptText)); err != nil {
					t.Fatal(err)
				}
				var out []int
				for len(out) < 2 {
					tok, err := e.Step()
					if errors.Is(err, ErrPending) {
						continue
					}
					if err != nil {
						t.Fatalf("k %d draw %d: %v", k, i, err)
					}
					out = append(out, tok)
				}
				n1[out[0]]++
				n2[out[1]]++
			}
			for i := range n1 {
				n1[i] /= draws
				n2[i] /= draws
			}
			for j, pair := range [][2][]float64{{n1, p1}, {n2, p2}} {
				if tv, most := totalVariation(pair[0], pair[1]), bound(pair[1]); tv > most {
					t.Errorf("k %d, token %d: sampled distribution is %.3f (TV) from the verifier's; want at most %.3f", k, j+1, tv, most)
				}
			}
		}
	})
}

func totalVariation(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += math.Abs(a[i] - b[i])
	}
	return s / 2
}
