//go:build wasip1

// Command check is a test guest: a wasip1 reactor that links the simd kernel
// set exactly as the matedge module does and exports check, which runs
// kernels.Check on it. Hosts run it with the companion module linked
// (host/kernels_test.go under wazero, web/test/kernels.test.mjs in Chromium).
package main

import (
	"fmt"
	"os"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/wasm/kernels"
)

func main() {}

// check returns 0 when the simd set is active and bit-identical to the
// reference on every shape, 1 when it differs (the first difference on
// stderr), 2 when the host did not link the companion module.
//
//go:wasmexport check
func check(seed uint32) int32 {
	if model.ActiveKernels().Name != "simd" {
		fmt.Fprintf(os.Stderr, "check: the active kernel set is %q, not simd: the host did not link kernels.wasm\n", model.ActiveKernels().Name)
		return 2
	}
	if err := kernels.Check(model.ActiveKernels(), uint64(seed)); err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		return 1
	}
	return 0
}
