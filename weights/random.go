package weights

import "github.com/matedge/matedge/model"

// TinyConfig is the network tests use: three layers, byte vocabulary, every
// granularity distinct, small enough to run in milliseconds anywhere.
func TinyConfig() model.Config {
	return model.Config{
		Vocab: 256, Dim: 32, Layers: 3, Heads: 4, FFNWidths: model.NestedWidths(128),
		Context: 64, RopeTheta: 10000, NormEps: 1e-5,
	}
}

// Random returns weights for c drawn from a seeded generator: the same seed
// gives the same bytes on every platform.
func Random(c model.Config, seed uint64) *model.Weights {
	w := model.NewWeights(c)
	w.InitRandom(seed)
	return w
}
