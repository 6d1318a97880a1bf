// Command gpukernels prints, as JSON, the GPU backend's matrix kernels at
// onnxruntime-web's MatMul shapes, exactly as wasm/engine's gpu backend would
// dispatch them: each case's WGSL program (shaders.Kernel.Program), its
// packed uniform and its workgroup grid (the shaders table's grid rule), and
// the sizes of its buffers. web/bench/gpu.mjs runs it and times the
// dispatches in Chromium's WebGPU, so that the browser times the same
// programs the module compiles, not a copy of them.
package main

import (
	"encoding/json"
	"os"

	"github.com/matedge/matedge/shaders"
)

// Case is one kernel dispatch at one of the peer's shapes.
type Case struct {
	Name     string    `json:"name"`   // e.g. "matvec4"
	MKN      [3]int    `json:"mkn"`    // the peer's M×K×N: C [M][N] = A [M][K] · B [K][N]
	Key      string    `json:"key"`    // the program's key
	Source   string    `json:"source"` // WGSL, entry point main
	Params   []byte    `json:"params"` // the uniform at binding 0 (base64 in JSON)
	Groups   [3]uint32 `json:"groups"`
	Buffers  []int     `json:"buffers"`  // f32 elements of bindings 1…, inputs first; the last is the output
	Weights  int       `json:"weights"`  // which binding (1-based) holds the weights
	FLOPs    int64     `json:"flops"`    // 2·M·K·N
	Explains string    `json:"explains"` // how the module uses this kernel
}

func main() {
	var cases []Case
	add := func(name, explains string, mkn [3]int, d shaders.Dispatch, buffers []int, weights int) {
		p := d.Kernel.Program(nil)
		cases = append(cases, Case{Name: name, MKN: mkn, Key: p.Key, Source: p.Source, Params: d.Params, Groups: d.Groups,
			Buffers: buffers, Weights: weights, FLOPs: 2 * int64(mkn[0]) * int64(mkn[1]) * int64(mkn[2]), Explains: explains})
	}
	for _, kn := range [][2]int{{1024, 4096}, {4096, 1024}} {
		k, n := kn[0], kn[1]
		// Decode: W [n][k] (the module stores a layer's output rows), one token.
		add("matvec4", "decode: q, k, v, o, gate, up, the LM head", [3]int{1, k, n},
			shaders.MatVec4.Call(shaders.MatVecArgs{Rows: n, Cols: k}), []int{n * k, k, n}, 1)
		// Decode's down projection: W [k][n] used transposed, as B is stored.
		add("matvec_t", "decode: the FFN's down projection", [3]int{1, k, n},
			shaders.MatVecT.Call(shaders.MatVecArgs{Rows: k, Cols: n}), []int{k * n, k, n}, 1)
	}
	for _, s := range []int{512, 1024} {
		add("matmul", "prefill: every projection of a prompt", [3]int{s, s, s},
			shaders.MatMul.Call(shaders.MatMulArgs{Rows: s, Cols: s, Tokens: s}), []int{s * s, s * s, s * s}, 1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(cases); err != nil {
		os.Stderr.WriteString("gpukernels: " + err.Error() + "\n")
		os.Exit(1)
	}
}
