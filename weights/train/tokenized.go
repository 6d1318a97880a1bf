package train

import "github.com/matedge/matedge/model"

// Tokenized is a corpus with a tokenizer trained on its training split and
// both splits encoded by it: what each of the paper's experiments starts
// from.
type Tokenized struct {
	Corpus             *Corpus
	Tokenizer          model.Tokenizer
	TrainIDs, ValidIDs []int
}

// LoadTokenized loads a corpus (LoadCorpus) and trains a byte-level BPE
// tokenizer of vocab ids on its training split.
func LoadTokenized(name, cache string, vocab int) (*Tokenized, error) {
	corpus, err := LoadCorpus(name, cache)
	if err != nil {
		return nil, err
	}
	tok := model.TrainBPE(corpus.Train, vocab)
	enc := tok.NewEncoder()
	return &Tokenized{Corpus: corpus, Tokenizer: tok, TrainIDs: enc.Encode(corpus.Train), ValidIDs: enc.Encode(corpus.Validation)}, nil
}
