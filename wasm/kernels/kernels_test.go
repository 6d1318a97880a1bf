package kernels

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/matedge/matedge/model"
)

// TestWasmUpToDate assembles kernels.wat and compares it with the committed
// kernels.wasm. The module is committed, not built, so that `go build` and
// `go test` need no wabt; this test keeps the two from drifting.
func TestWasmUpToDate(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("needs wat2wasm (Debian package wabt; ./build.sh test installs it)")
	}
	out := filepath.Join(t.TempDir(), "kernels.wasm")
	if msg, err := exec.Command(wat2wasm, "kernels.wat", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm kernels.wat: %v\n%s", err, msg)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, Wasm) {
		t.Fatal("kernels.wasm is not what kernels.wat assembles to: run `wat2wasm kernels.wat -o kernels.wasm` in wasm/kernels")
	}
}

// TestCheckNative runs Check on every kernel set of this build natively (the
// reference against itself, and avx2 where the CPU has it). The simd set is
// checked inside the module, under wazero (host) and in Chromium (web/test).
func TestCheckNative(t *testing.T) {
	defer model.UseKernels(model.ActiveKernels().Name)
	for _, name := range model.AvailableKernels() {
		if err := model.UseKernels(name); err != nil {
			t.Fatal(err)
		}
		set := model.ActiveKernels()
		if name == "avx2" {
			// avx2's softmax (training) agrees with the reference to
			// rounding, not bit for bit: model's TestKernelsMatchReference.
			// Its attention uses that softmax, so it is left out too (its
			// products are checked on their own).
			set.Softmax = model.GoKernels.Softmax
			set.Attention = model.GoKernels.Attention
		}
		if err := Check(set, 1); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCheckFails shows that Check tells the reference's summation order from
// another: a MatVec that sums each row left to right differs in some bit.
func TestCheckFails(t *testing.T) {
	set := model.GoKernels
	set.MatVec = func(out, w, x []float32, stride int) {
		for r := range out {
			var s float32
			for i, v := range x {
				s += float32(w[r*stride+i] * v)
			}
			out[r] = s
		}
	}
	if err := Check(set, 1); err == nil {
		t.Fatal("Check accepted a MatVec that sums in another order")
	}
}

// TestCheckFailsGlue shows that Check tells the glue's references from near
// misses: an Argmax that keeps the highest index on ties, a Rope that fuses
// nothing but rounds the sum first, an RMSNorm that sums its squares in
// dot4's lanes.
func TestCheckFailsGlue(t *testing.T) {
	argmaxLast := model.GoKernels
	argmaxLast.Argmax = func(x []float32) int {
		best := 0
		for i, v := range x {
			if v >= x[best] {
				best = i
			}
		}
		return best
	}
	ropeOther := model.GoKernels
	ropeOther.Rope = func(x, cos, sin []float32, headDim int) {
		half := headDim / 2
		rows := len(cos) / half
		d := len(x) / rows
		for r := range rows {
			c, s := cos[r*half:], sin[r*half:]
			for h := r * d; h < (r+1)*d; h += headDim {
				for i := range half {
					a, b := x[h+2*i], x[h+2*i+1]
					x[h+2*i] = a*c[i] - b*s[i]
					x[h+2*i+1] = float32(float64(a)*float64(s[i]) + float64(b)*float64(c[i]))
				}
			}
		}
	}
	normLanes := model.GoKernels
	normLanes.RMSNorm = func(out, x, gain []float32, eps float32) {
		d := len(gain)
		for r := 0; r+d <= len(x); r += d {
			row := x[r : r+d]
			var ss [1]float32
			model.GoKernels.MatVec(ss[:], row, row, d)
			inv := 1 / float32(math.Sqrt(float64(ss[0]/float32(d)+eps)))
			for i, v := range row {
				out[r+i] = v * inv * gain[i]
			}
		}
	}
	for name, set := range map[string]model.Kernels{"argmax": argmaxLast, "rope": ropeOther, "rmsnorm": normLanes} {
		if err := Check(set, 1); err == nil {
			t.Errorf("Check accepted a wrong %s", name)
		}
	}
}
