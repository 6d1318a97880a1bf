package experiment

import (
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/train"
)

// RouteIDs encodes what Route needs of a corpus with a model's tokenizer:
// the first need training tokens (fit and calibration, plus a target) and
// the whole validation split. Only a prefix of the training split is
// encoded — about 4 bytes a token for these tokenizers, 8 to be safe — and
// all of it when that falls short.
func RouteIDs(tok *model.Tokenizer, corpus *train.Corpus, need int) (trainIDs, validIDs []int) {
	enc := tok.NewEncoder()
	trainIDs = enc.Encode(corpus.Train[:min(len(corpus.Train), 8*need)])
	if len(trainIDs) < need {
		trainIDs = enc.Encode(corpus.Train)
	}
	return trainIDs, enc.Encode(corpus.Validation)
}
