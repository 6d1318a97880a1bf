package engine

import "github.com/matedge/matedge/model"

// onGPU reports whether the GPU backend holds a tensor: every tensor but
// the routers' budget table (model/route.go), which only turns a budget
// into the price that the route kernel is given (Engine.resetRouted).
func onGPU(name string) bool { return name != model.RouterBudgetTensor }
