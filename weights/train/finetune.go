package train

import (
	"fmt"
	"slices"

	"github.com/matedge/matedge/model"
)

// FineTune starts a run from existing weights (an imported dense model, say)
// instead of a random initialisation: the options are New's, the step
// counter and AdamW's moments start fresh, and opts.Config must be w's. The
// joint MatFormer loss over every granularity of the config is what induces
// nesting in a model that was trained dense. Checkpoints resume it like any
// run (Resume restores the weights).
func FineTune(opts Options, w *model.Weights, tok model.Tokenizer, trainIDs, validIDs []int) (*Trainer, error) {
	c := w.Config
	if o := opts.Config; o.Vocab != c.Vocab || o.Dim != c.Dim || o.Layers != c.Layers || o.Heads != c.Heads ||
		o.Context != c.Context || o.RopeTheta != c.RopeTheta || o.NormEps != c.NormEps || !slices.Equal(o.FFNWidths, c.FFNWidths) {
		return nil, fmt.Errorf("train: fine-tune: options describe %+v, the weights are %+v", opts.Config, c)
	}
	for l, rows := range w.NestedRows {
		if rows != c.Hidden() {
			return nil, fmt.Errorf("train: fine-tune: layer %d holds %d of its %d FFN rows", l, rows, c.Hidden())
		}
	}
	t, err := New(opts, tok, trainIDs, validIDs)
	if err != nil {
		return nil, err
	}
	copy(t.Weights.Data, w.Data)
	return t, nil
}
