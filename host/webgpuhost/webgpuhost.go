// Package webgpuhost serves the "webgpu" import module (webgpu/ABI.md) to wasm
// guests under wazero, on a webgpu.Device: natively, the implementation on
// cogentcore/webgpu.
//
// Every pointer and length a guest passes is checked against its memory, and
// every handle, offset and size against the device, so a bad call returns an
// error code to the guest and never crashes the host. Reads complete at once:
// read waits for the GPU before it returns, so the guest's first read_result
// finds the bytes there.
package webgpuhost

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/matedge/matedge/webgpu"
)

// Host is the state behind one instantiated "webgpu" module.
type Host struct {
	open      func() (webgpu.Device, error)
	device    webgpu.Device
	reads     map[webgpu.Ticket][]byte // completed reads not yet collected
	lastError string
}

// Instantiate defines and instantiates the "webgpu" host module in r. The
// device is opened when the guest calls open, with the given function (nil
// means webgpu.Open); to offer a guest no GPU, pass one that returns
// webgpu.ErrNoAdapter.
func Instantiate(ctx context.Context, r wazero.Runtime, open func() (webgpu.Device, error)) (*Host, error) {
	if open == nil {
		open = webgpu.Open
	}
	h := &Host{open: open, reads: map[webgpu.Ticket][]byte{}}
	b := r.NewHostModuleBuilder(webgpu.ImportModule)
	export := func(name string, fn any) { b.NewFunctionBuilder().WithFunc(fn).Export(name) }
	export("abi_version", func() int32 { return webgpu.ABIVersion })
	export("open", h.openDevice)
	export("info", h.info)
	export("last_error", h.lastErrorMessage)
	export("buffer_create", h.bufferCreate)
	export("buffer_write", h.bufferWrite)
	export("buffer_destroy", h.bufferDestroy)
	export("pipeline_create", h.pipelineCreate)
	export("dispatch", h.dispatch)
	export("copy", h.copyBuffer)
	export("submit", h.submit)
	export("read", h.read)
	export("read_result", h.readResult)
	export("close", h.closeDevice)
	if _, err := b.Instantiate(ctx); err != nil {
		return nil, fmt.Errorf("webgpuhost: %w", err)
	}
	return h, nil
}

// Close frees the device, if the guest opened one and did not close it.
func (h *Host) Close() error {
	if h.device == nil {
		return nil
	}
	err := h.device.Close()
	h.device = nil
	return err
}

// status records err for last_error and returns its ABI code, or ok when err is nil.
func (h *Host) status(ok int32, err error) int32 {
	if err == nil {
		return ok
	}
	h.lastError = err.Error()
	return webgpu.ErrorCode(err)
}

func (h *Host) fail(err error) int32 { return h.status(0, err) }

// guestBytes is length bytes of the guest's memory at ptr, aliasing it.
func guestBytes(m api.Module, ptr, length uint32) ([]byte, error) {
	if length == 0 {
		return nil, nil
	}
	if mem := m.Memory(); mem != nil {
		if b, ok := mem.Read(ptr, length); ok {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: guest memory [%d, %d)", webgpu.ErrRange, ptr, uint64(ptr)+uint64(length))
}

var errNotOpen = fmt.Errorf("%w: the device is not open", webgpu.ErrHandle)

func (h *Host) openDevice() int32 {
	if h.device != nil {
		return 0
	}
	d, err := h.open()
	if err != nil {
		return h.fail(err)
	}
	h.device = d
	return 0
}

func (h *Host) info(_ context.Context, m api.Module, ptr, capacity uint32) int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	js, err := json.Marshal(h.device.Info())
	if err != nil {
		return h.fail(err)
	}
	if len(js) <= int(capacity) {
		dst, err := guestBytes(m, ptr, uint32(len(js)))
		if err != nil {
			return h.fail(err)
		}
		copy(dst, js)
	}
	return int32(len(js))
}

func (h *Host) lastErrorMessage(_ context.Context, m api.Module, ptr, capacity uint32) int32 {
	msg := h.lastError
	dst, err := guestBytes(m, ptr, min(capacity, uint32(len(msg))))
	if err != nil {
		return webgpu.CodeRange // do not overwrite the message being asked for
	}
	return int32(copy(dst, msg))
}

func (h *Host) bufferCreate(size uint64) int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	b, err := h.device.CreateBuffer(size)
	return h.status(int32(b), err)
}

func (h *Host) bufferWrite(_ context.Context, m api.Module, buffer uint32, offset uint64, ptr, length uint32) int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	data, err := guestBytes(m, ptr, length)
	if err == nil {
		err = h.device.WriteBuffer(webgpu.Buffer(buffer), offset, data)
	}
	return h.fail(err)
}

func (h *Host) bufferDestroy(buffer uint32) int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	return h.fail(h.device.DestroyBuffer(webgpu.Buffer(buffer)))
}

func (h *Host) pipelineCreate(_ context.Context, m api.Module, ptr, length, bindings uint32) int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	code, err := guestBytes(m, ptr, length)
	if err != nil {
		return h.fail(err)
	}
	p, err := h.device.CreatePipeline(string(code), int(bindings))
	return h.status(int32(p), err)
}

func (h *Host) dispatch(_ context.Context, m api.Module, pipeline, paramsPtr, paramsLength, bindingsPtr, count, x, y, z uint32) int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	params, err := guestBytes(m, paramsPtr, paramsLength)
	if err != nil {
		return h.fail(err)
	}
	if uint64(count)*webgpu.BindingSize > 1<<20 {
		return h.fail(fmt.Errorf("%w: %d bindings", webgpu.ErrArgument, count))
	}
	records, err := guestBytes(m, bindingsPtr, count*webgpu.BindingSize)
	if err != nil {
		return h.fail(err)
	}
	bindings := make([]webgpu.Binding, count)
	for i := range bindings {
		r := records[webgpu.BindingSize*i:]
		bindings[i] = webgpu.Binding{
			Buffer: webgpu.Buffer(binary.LittleEndian.Uint32(r[0:])),
			Offset: binary.LittleEndian.Uint64(r[8:]),
			Size:   binary.LittleEndian.Uint64(r[16:]),
		}
	}
	return h.fail(h.device.Dispatch(webgpu.Pipeline(pipeline), params, bindings, [3]uint32{x, y, z}))
}

func (h *Host) copyBuffer(src uint32, srcOffset uint64, dst uint32, dstOffset, size uint64) int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	return h.fail(h.device.Copy(webgpu.Buffer(src), srcOffset, webgpu.Buffer(dst), dstOffset, size))
}

func (h *Host) submit() int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	return h.fail(h.device.Submit())
}

func (h *Host) read(buffer uint32, offset, size uint64) int32 {
	if h.device == nil {
		return h.fail(errNotOpen)
	}
	t, err := h.device.Read(webgpu.Buffer(buffer), offset, size)
	if err != nil {
		return h.fail(err)
	}
	data := make([]byte, size) // size was checked against the buffer by Read
	if err := webgpu.Wait(h.device, t, data); err != nil {
		return h.fail(err)
	}
	h.reads[t] = data
	return int32(t)
}

func (h *Host) readResult(_ context.Context, m api.Module, ticket, ptr, length uint32) int32 {
	data, ok := h.reads[webgpu.Ticket(ticket)]
	if !ok {
		return h.fail(fmt.Errorf("%w: ticket %d", webgpu.ErrHandle, ticket))
	}
	if int(length) != len(data) {
		return h.fail(fmt.Errorf("%w: read result into %d bytes, the read has %d", webgpu.ErrArgument, length, len(data)))
	}
	dst, err := guestBytes(m, ptr, length)
	if err != nil {
		return h.fail(err)
	}
	copy(dst, data)
	delete(h.reads, webgpu.Ticket(ticket))
	return 1
}

func (h *Host) closeDevice() int32 {
	clear(h.reads)
	return h.fail(h.Close())
}

// NoGPU is an open function for hosts that offer the guest no GPU.
func NoGPU() (webgpu.Device, error) {
	return nil, fmt.Errorf("%w: the host offers no GPU", webgpu.ErrNoAdapter)
}
