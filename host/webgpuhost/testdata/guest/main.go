//go:build wasip1

// Command guest is a wasip1 reactor for webgpuhost's tests: it drives the GPU
// through the "webgpu" imports, the way the matedge module does. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o guest.wasm ./testdata/guest
//
// (the test does, into a temporary directory).
package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/shaders"
	"github.com/matedge/matedge/webgpu"
)

func main() {}

// openStatus is the ABI code of webgpu.Open's error, or 0.
//
//go:wasmexport open_status
func openStatus() int32 {
	d, err := webgpu.Open()
	if err != nil {
		return webgpu.ErrorCode(err)
	}
	d.Close()
	return 0
}

// matvec runs the matvec kernel on a rows×cols matrix and compares it with
// model.MatVec: 0 when they agree, else 1 (and a message on stderr).
//
//go:wasmexport matvec
func matvec(rows, cols int32) int32 {
	if err := runMatVec(int(rows), int(cols)); err != nil {
		fmt.Fprintln(os.Stderr, "guest matvec:", err)
		return 1
	}
	return 0
}

func runMatVec(rows, cols int) error {
	d, err := webgpu.Open()
	if err != nil {
		return err
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(uint64(rows), uint64(cols)))
	w, x := make([]float32, rows*cols), make([]float32, cols)
	for i := range w {
		w[i] = 2*rng.Float32() - 1
	}
	for i := range x {
		x[i] = 2*rng.Float32() - 1
	}
	wb, err := upload(d, w)
	if err != nil {
		return err
	}
	xb, err := upload(d, x)
	if err != nil {
		return err
	}
	out, err := d.CreateBuffer(uint64(4 * rows))
	if err != nil {
		return err
	}
	call := shaders.MatVec.Call(shaders.MatVecArgs{Rows: rows, Cols: cols, W: wb, X: xb, Out: out})
	if err := call.Record(d, webgpu.NewPipelines(d)); err != nil {
		return err
	}
	raw, err := webgpu.ReadNow(d, out, 0, uint64(4*rows))
	if err != nil {
		return err
	}
	want := make([]float32, rows)
	model.MatVec(want, w, x)
	for i, v := range want {
		got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if math.Abs(float64(got-v)) > 1e-5*(1+math.Abs(float64(v))) {
			return fmt.Errorf("out[%d] = %v; want %v", i, got, v)
		}
	}
	return nil
}

func upload(d webgpu.Device, v []float32) (webgpu.Buffer, error) {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	buf, err := d.CreateBuffer(uint64(len(b)))
	if err != nil {
		return 0, err
	}
	return buf, d.WriteBuffer(buf, 0, b)
}

// The same imports as package webgpu's, with raw addresses, to make bad calls.

//go:wasmimport webgpu buffer_write
func rawBufferWrite(buffer int32, offset int64, ptr uint32, length uint32) int32

//go:wasmimport webgpu pipeline_create
func rawPipelineCreate(ptr uint32, length uint32, bindings int32) int32

//go:wasmimport webgpu dispatch
func rawDispatch(pipeline int32, params uint32, paramsLength uint32, bindings uint32, count uint32, x, y, z int32) int32

//go:wasmimport webgpu read_result
func rawReadResult(ticket int32, ptr uint32, length uint32) int32

//go:wasmimport webgpu info
func rawInfo(ptr uint32, capacity uint32) int32

// badCalls makes calls with pointers and lengths outside this module's
// memory; each must come back as an error code. It returns 0 when all did.
//
//go:wasmexport bad_calls
func badCalls() int32 {
	d, err := webgpu.Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, "guest bad_calls:", err)
		return 1
	}
	defer d.Close()
	b, err := d.CreateBuffer(16)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guest bad_calls:", err)
		return 1
	}
	t, err := d.Read(b, 0, 16)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guest bad_calls:", err)
		return 1
	}
	const far = 0xfffffff0 // past the end of any wasm32 memory this module has
	calls := []struct {
		name      string
		got, want int32
	}{
		{"buffer_write far", rawBufferWrite(int32(b), 0, far, 16), webgpu.CodeRange},
		{"buffer_write wraps", rawBufferWrite(int32(b), 0, 16, 0xffffffff), webgpu.CodeRange},
		{"buffer_write bad handle", rawBufferWrite(12345, 0, 0, 4), webgpu.CodeHandle},
		{"buffer_write negative offset", rawBufferWrite(int32(b), -4, 0, 4), webgpu.CodeRange},
		{"pipeline_create far", rawPipelineCreate(far, 100, 1), webgpu.CodeRange},
		{"dispatch far params", rawDispatch(1, far, 16, 0, 0, 1, 1, 1), webgpu.CodeRange},
		{"dispatch many bindings", rawDispatch(1, 0, 16, 0, 0x7fffffff, 1, 1, 1), webgpu.CodeArgument},
		{"read_result far", rawReadResult(int32(t), far, 16), webgpu.CodeRange},
		{"info far", rawInfo(far, 4096), webgpu.CodeRange},
	}
	failed := int32(0)
	for _, c := range calls {
		if c.got != c.want {
			fmt.Fprintf(os.Stderr, "guest bad_calls: %s = %d; want %d\n", c.name, c.got, c.want)
			failed = 1
		}
	}
	// The ticket survived the bad read_result, and the device still works.
	dst := make([]byte, 16)
	err = webgpu.Wait(d, t, dst)
	if err == nil {
		err = d.WriteBuffer(b, 0, dst)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "guest bad_calls: device unusable after bad calls:", err)
		failed = 1
	}
	return failed
}
