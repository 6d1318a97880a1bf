package planner_test

import (
	"bytes"
	"fmt"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

func ExampleChoose() {
	var file bytes.Buffer
	if err := weights.Write(&file, weights.Random(weights.TinyConfig(), 1), model.Tokenizer{}, nil); err != nil {
		panic(err)
	}
	header, err := weights.ParseHeader(file.Bytes(), int64(file.Len()))
	if err != nil {
		panic(err)
	}
	browser := planner.Capabilities{
		LogicalCores: 4,
		Benchmarks: []planner.Benchmark{{Backend: "cpu", Method: "decode steps inside the wasm module",
			GBps: 0.5, GFLOPs: 0.25, StepOverheadMicros: 300}},
	}
	plan, err := planner.Choose(browser, header, planner.Budget{TargetTokensPerSecond: 1000, MaxDownloadBytes: 150_000})
	if err != nil {
		panic(err)
	}
	fmt.Println(plan.Spec, "on", plan.Backend)
	for _, r := range plan.Reasons {
		fmt.Println("-", r)
	}
	// Output:
	// S,M,M on cpu
	// - There is no WebGPU adapter, so the model runs on the CPU inside the module.
	// - Speed is predicted from a cpu benchmark on this device (decode steps inside the wasm module): 0.5 GB/s, 0.25 GFLOP/s, 0.3 ms per step overhead.
	// - The device does not report its memory, so only a wasm32 module's 4 GiB limits it.
	// - The download is limited to the budget's 146 KiB.
	// - The budget asks for at least 1000 tokens/s.
	// - Chose S,M,M on cpu: 143 KiB to download in 2 ranges, 228 KiB of memory, 1735 tokens/s predicted, 20,192 non-embedding parameters; no quality table in the model, so submodels are ranked by non-embedding parameters.
	// - XL in every layer needs a 257 KiB download; the limit is the budget's 146 KiB.
	// - L in every layer needs a 185 KiB download; the limit is the budget's 146 KiB.
	// - M in every layer needs a 149 KiB download; the limit is the budget's 146 KiB.
	// - So layer 0 uses S and layers 1–2 use M: the most that fits.
	// - Self-speculative decoding would not pay here (at best 0.66×, draft S, at an assumed 60 % acceptance; k auto drafts from 1.15×): a step of S,M,M is bound by arithmetic (0.276 ms, against 0.276 ms to read its 135 KiB), so checking k tokens in one pass costs about k steps; -draft auto measures it and keeps it off where it does not pay.
}
