package host

import (
	"bytes"
	"context"
	"math"
	"slices"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
)

// classifyTol bounds |gpu − cpu| / (1 + |cpu|) for a tiny MatViT's logits
// and unit embedding: the GPU sums in other orders than the CPU (register
// tiles, tree reductions, an online softmax), a few float32 ulps per term
// through two blocks of width ≤ 64 — wasm/engine's TestGPUClassify measures
// 1.6e-7 — while a wrong index, mask or width moves values by O(1).
const classifyTol = 1e-5

// TestGPUClassify: the module's classify on the gpu backend (wazero, the
// webgpu imports, the native device) gives model.Classify's class, and its
// logits, probabilities and unit embedding within classifyTol, for every
// uniform granularity and two Mix'n'Match mixes on one module; auto runs on
// the GPU too.
func TestGPUClassify(t *testing.T) {
	shareModule(t)
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		ctx := context.Background()
		w, file, _ := visionFile(t, 3)
		c := w.Config
		m := gpuModule(t, d)
		if _, _, err := m.Load(ctx, bytes.NewReader(file), int64(len(file)), "XL"); err != nil {
			t.Fatal(err)
		}
		images := randomImages(c, 2, 17)
		specs := []string{"S", "M", "L", "XL", "S,XL", "XL,M"}
		for i, spec := range specs {
			if _, err := m.SetMix(ctx, spec); err != nil {
				t.Fatal(err)
			}
			mix, err := c.ParseMix(spec)
			if err != nil {
				t.Fatal(err)
			}
			backend := "gpu"
			if i == len(specs)-1 {
				backend = "auto"
			}
			for j, px := range images {
				res, err := m.Classify(ctx, px, backend, 0)
				if err != nil {
					t.Fatalf("%s image %d: %v", spec, j, err)
				}
				logits, emb := model.Classify(w, mix, px)
				model.Normalize(emb)
				probs := slices.Clone(logits)
				model.Softmax(probs)
				if res.Backend != "gpu" || res.Class != model.Argmax(logits) {
					t.Errorf("%s image %d, backend %s: class %d on %q; model.Classify's class %d on the gpu", spec, j, backend, res.Class, res.Backend, model.Argmax(logits))
				}
				for what, pair := range map[string][2][]float32{"logits": {res.Logits, logits}, "probs": {res.Probs, probs}, "embedding": {res.Embedding, emb}} {
					if k := farFrom(pair[0], pair[1], classifyTol); k >= 0 {
						t.Errorf("%s image %d: gpu %s %v; model.Classify %v (first apart at %d)", spec, j, what, pair[0], pair[1], k)
					}
				}
			}
		}
	})
}

// farFrom is the first index where got and want differ by more than
// tol·(1 + |want|), or where their lengths differ; -1 if none.
func farFrom(got, want []float32, tol float64) int {
	if len(got) != len(want) {
		return min(len(got), len(want))
	}
	for i := range want {
		if !(math.Abs(float64(got[i])-float64(want[i])) <= tol*(1+math.Abs(float64(want[i])))) {
			return i
		}
	}
	return -1
}
