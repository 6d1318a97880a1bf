package engine

import "github.com/matedge/matedge/model"

// onGPU reports whether the GPU backend holds a tensor: every tensor but the
// token routers' (model/route.go), which only the CPU backend runs — routing
// on the GPU (a router kernel writing widths that the FFN kernels read) is
// not written, and Reset refuses route with backend gpu.
func onGPU(name string) bool {
	_, part, _ := model.ParseLayerTensor(name)
	return part != model.Router && name != model.RouterBudgetTensor
}
