package train

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// WriteModel measures the quality table of w's preset mixes on the whole
// validation split (the corpus's, tokenized as validIDs), records it and
// the corpus in meta, and writes the model to path. It returns the table
// and the file's size.
func WriteModel(path string, w *model.Weights, tok model.Tokenizer, corpus *Corpus, seqLen, batch int, validIDs []int, meta map[string]string) ([]weights.Quality, int64, error) {
	meta["corpus"], meta["corpus_sha256"] = corpus.Name, corpus.SHA256
	quality := MeasureQuality(w, w.Config.PresetMixes(), validIDs, len(corpus.Validation), seqLen, batch)
	weights.SetQuality(meta, quality)
	n, err := weights.WriteFile(path, w, tok, meta)
	return quality, n, err
}

// WriteVisionModel measures each preset mix's loss and accuracy on the
// validation images, records them in meta, and writes the model to path.
// It returns the table and the file's size.
func WriteVisionModel(path string, w *model.Weights, valid *Images, batch int, meta map[string]string) ([]weights.Quality, int64, error) {
	var quality []weights.Quality
	for _, mix := range w.Config.PresetMixes() {
		loss, acc := EvaluateImages(w, mix, valid, batch)
		quality = append(quality, weights.Quality{Mix: w.Config.MixSpec(mix), NonEmbeddingParams: w.Config.NonEmbeddingParams(mix),
			LossNatsPerToken: loss, Tokens: valid.Len(), Accuracy: acc})
	}
	weights.SetQuality(meta, quality)
	n, err := weights.WriteFile(path, w, model.Tokenizer{}, meta)
	return quality, n, err
}

// HoldOut splits the last n images of a training set off for validation
// (the test set stays for the final results).
func HoldOut(all *Images, n int) (trainSet, valid *Images, err error) {
	if all.Len() <= n {
		return nil, nil, fmt.Errorf("%s: %d training images, need more than the %d held out", all.Name, all.Len(), n)
	}
	cut := all.Len() - n
	return all.Slice(0, cut), all.Slice(cut, all.Len()), nil
}

// ObjectiveName names what a run trains: "baseline" (one granularity) or
// "matformer" (nested), as the file's meta records it.
func (o Options) ObjectiveName() string {
	if o.Config.Granularities() == 1 {
		return "baseline"
	}
	return "matformer"
}

// BaselineConfig is c with the FFN of granularity g only: the standalone
// model a baseline run trains.
func BaselineConfig(c model.Config, g int) model.Config {
	c.FFNWidths = []int{c.FFNWidths[g]}
	return c
}

// ResumedCommand is the command meta of a resumed run: the command that
// started it, then now's.
func ResumedCommand(started, now string) string {
	if started == "" {
		return now + " (resumed from a checkpoint)"
	}
	return started + "; resumed with: " + now
}

// JoinClasses writes class names as the file's meta "classes" holds them.
func JoinClasses(classes []string) string { return strings.Join(classes, ",") }

// EvalText is the text an evaluation measures: the validation split of a
// named corpus (austen, opticks), or a file's bytes.
func EvalText(name, cache string) ([]byte, error) {
	switch name {
	case "austen", "opticks":
		c, err := LoadCorpus(name, cache)
		if err != nil {
			return nil, err
		}
		return c.Validation, nil
	}
	return os.ReadFile(name)
}

// EvalSeqLen is the window an evaluation cuts a text into: seq when it is
// not 0, else the sequence length the model was trained with (its meta
// "seq_len") when that fits the context, else the context.
func EvalSeqLen(seq int, c model.Config, meta map[string]string) int {
	if seq != 0 {
		return seq
	}
	if n, err := strconv.Atoi(meta["seq_len"]); err == nil && n > 0 && n <= c.Context {
		return n
	}
	return c.Context
}
