package train

import (
	"context"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/matedge/matedge/model"
)

// opticksTokens is the Opticks corpus under a 512-id BPE trained on its
// training split, shared by the tests of this file.
var opticksTokens = sync.OnceValues(func() (tok model.Tokenizer, c *Corpus) {
	docs, err := ReadFile(OpticksPath(runtimeGOROOT()))
	if err != nil {
		return tok, nil
	}
	c = Split("opticks", docs)
	return model.TrainBPE(c.Train, 512), c
})

func tokenized(t *testing.T) (model.Tokenizer, []int, []int) {
	t.Helper()
	tok, c := opticksTokens()
	if c == nil {
		t.Skip("no Opticks fixture in this Go installation")
	}
	enc := tok.NewEncoder()
	return tok, enc.Encode(c.Train), enc.Encode(c.Validation)
}

func tinyOptions(steps int) Options {
	return Options{
		Config: model.Config{Vocab: 512, Dim: 32, Layers: 2, Heads: 2, FFNWidths: model.NestedWidths(128),
			Context: 32, RopeTheta: 10000, NormEps: 1e-5},
		Batch: 4, SeqLen: 32, Steps: steps, LR: 1e-2, Seed: 1, EvalEvery: 100, EvalTokens: 2048,
	}
}

// TestLossDecreases trains the tiny MatFormer on Opticks for 300 steps: the
// validation loss of every granularity must fall well below the ln(vocab)
// of an untrained model.
func TestLossDecreases(t *testing.T) {
	tok, trainIDs, validIDs := tokenized(t)
	tr, err := New(tinyOptions(300), tok, trainIDs, validIDs[:4097])
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background(), 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	final := tr.History[len(tr.History)-1]
	for g, loss := range final.Validation {
		if loss > 0.75*math.Log(512) {
			t.Errorf("granularity %s: validation loss %.3f after 300 steps; want < %.3f", tr.Options.Config.GranularityName(g), loss, 0.75*math.Log(512))
		}
	}
	t.Logf("validation loss per granularity after 300 steps: %.3f", final.Validation)
}

// TestResume: a run checkpointed and resumed half way ends with weights,
// optimizer state and history bit-identical to an uninterrupted run.
func TestResume(t *testing.T) {
	tok, trainIDs, validIDs := tokenized(t)
	opts := tinyOptions(12)
	opts.EvalEvery, opts.EvalTokens = 4, 256
	validIDs = validIDs[:1025]

	whole, err := New(opts, tok, trainIDs, validIDs)
	if err != nil {
		t.Fatal(err)
	}
	if err := whole.Run(context.Background(), 0, nil, nil); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "run.ckpt")
	first, _ := New(opts, tok, trainIDs, validIDs)
	first.Meta = map[string]string{"command": "test"}
	ctx, cancel := context.WithCancel(context.Background())
	save := func(tr *Trainer) error {
		if tr.Step == 6 {
			cancel() // the run is "killed" right after its step-6 checkpoint
		}
		return tr.Save(path)
	}
	if err := first.Run(ctx, 3, save, nil); err != context.Canceled {
		t.Fatalf("interrupted Run = %v; want context.Canceled", err)
	}
	resumed, err := Resume(path, func(model.Tokenizer) ([]int, []int) { return trainIDs, validIDs })
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Step != 6 || resumed.Meta["command"] != "test" {
		t.Fatalf("resumed at step %d with meta %v; want 6 and the first run's meta", resumed.Step, resumed.Meta)
	}
	if err := resumed.Run(context.Background(), 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2][]float32{
		"weights": {whole.Weights.Data, resumed.Weights.Data},
		"adam m":  {whole.Optimizer.M, resumed.Optimizer.M},
		"adam v":  {whole.Optimizer.V, resumed.Optimizer.V},
	} {
		for i := range pair[0] {
			if math.Float32bits(pair[0][i]) != math.Float32bits(pair[1][i]) {
				t.Fatalf("%s[%d] = %g uninterrupted, %g resumed", name, i, pair[0][i], pair[1][i])
			}
		}
	}
	if len(whole.History) != len(resumed.History) {
		t.Fatalf("history has %d points uninterrupted, %d resumed", len(whole.History), len(resumed.History))
	}
	for i, p := range whole.History {
		q := resumed.History[i]
		for g := range p.Validation {
			if p.Validation[g] != q.Validation[g] || p.Train[g] != q.Train[g] {
				t.Errorf("history point %d: %+v uninterrupted, %+v resumed", i, p, q)
			}
		}
	}
}

func TestEvaluate(t *testing.T) {
	tok, _, validIDs := tokenized(t)
	opts := tinyOptions(1)
	w := model.NewWeights(opts.Config)
	w.InitRandom(3)
	ids := validIDs[:100]
	// Windows of 32 with a 3-token tail, in batches of 2 with one half empty:
	// must equal one window at a time, to the bit (positions are summed in
	// order whatever the batch, so eval reproduces a header's table).
	got, n := Evaluate(w, opts.Config.Uniform(1), ids, 32, 2)
	want, m := Evaluate(w, opts.Config.Uniform(1), ids, 32, 1)
	if n != 99 || m != 99 || got != want {
		t.Errorf("Evaluate = %.6f over %d tokens in batches of 2, %.6f over %d one by one; want equal over 99", got, n, want, m)
	}
	if bpb := BitsPerByte(got, n, len(tok.Decode(ids[1:]))); !(bpb > 0) {
		t.Errorf("BitsPerByte = %g", bpb)
	}
}

// TestFineTuneStartsFromWeights: a fine-tune begins at the given weights
// (its first validation equals theirs) and lowers the loss.
func TestFineTuneStartsFromWeights(t *testing.T) {
	tok, trainIDs, validIDs := tokenized(t)
	base, err := New(tinyOptions(40), tok, trainIDs, validIDs)
	if err != nil {
		t.Fatal(err)
	}
	if err := base.Run(context.Background(), 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	opts := tinyOptions(20)
	opts.Seed, opts.LR, opts.Warmup = 2, 5e-4, 5
	ft, err := FineTune(opts, base.Weights, tok, trainIDs, validIDs)
	if err != nil {
		t.Fatal(err)
	}
	xl := opts.Config.Uniform(3)
	ids := validIDs[:2049]
	before, _ := Evaluate(base.Weights, xl, ids, 32, 4)
	if got, _ := Evaluate(ft.Weights, xl, ids, 32, 4); got != before {
		t.Fatalf("fine-tune starts at loss %g; the weights it was given have %g", got, before)
	}
	joint := func() (sum float64) {
		for g := range opts.Config.Granularities() {
			l, _ := Evaluate(ft.Weights, opts.Config.Uniform(g), ids, 32, 4)
			sum += l
		}
		return sum
	}
	start := joint()
	if err := ft.Run(context.Background(), 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	if end := joint(); !(end < start) {
		t.Errorf("joint validation loss %g after fine-tuning; was %g", end, start)
	}
	other := opts
	other.Config.Dim = 64
	if _, err := FineTune(other, base.Weights, tok, trainIDs, validIDs); err == nil {
		t.Error("FineTune accepted options for another config")
	}
}
