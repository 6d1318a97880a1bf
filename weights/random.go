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

// RandomRouted returns w with seeded random routers (model/route.go) and the
// budget table (0.3, 1), (0.6, 0), (0.9, −1), so that routed decoding picks
// different widths for different tokens: for tests.
func RandomRouted(w *model.Weights, seed uint64) *model.Weights {
	c := w.Config
	r := model.NewRNG(seed)
	routers := make([][]float32, c.Layers)
	for l := range routers {
		routers[l] = make([]float32, (c.Granularities()-1)*(c.Dim+1))
		for i := range routers[l] {
			routers[l][i] = 2*r.Float32() - 1
		}
	}
	routed, err := model.WithRouter(w, routers, []float32{0.3, 1, 0.6, 0, 0.9, -1})
	if err != nil {
		panic(err) // the table above is valid for any config with two granularities
	}
	return routed
}

// TinyVisionConfig is the MatViT tests use: 28×28 grey images (Fashion-MNIST's
// shape) in 16 patches of 7×7, ten classes, two layers, every granularity
// distinct.
func TinyVisionConfig() model.Config {
	return model.Config{
		Vocab: 10, Dim: 16, Layers: 2, Heads: 2, FFNWidths: model.NestedWidths(64),
		Context: 16, RopeTheta: 10000, NormEps: 1e-5,
		Image: &model.ImageConfig{Size: 28, Patch: 7, Channels: 1},
	}
}
