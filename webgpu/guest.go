//go:build wasip1

package webgpu

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"unsafe"
)

// The "webgpu" import module, as ABI.md draws it. Pointers are offsets into
// this module's memory; the host bounds-checks every one.

//go:wasmimport webgpu abi_version
func importABIVersion() int32

//go:wasmimport webgpu open
func importOpen() int32

//go:wasmimport webgpu info
func importInfo(ptr unsafe.Pointer, capacity int32) int32

//go:wasmimport webgpu last_error
func importLastError(ptr unsafe.Pointer, capacity int32) int32

//go:wasmimport webgpu buffer_create
func importBufferCreate(size int64) int32

//go:wasmimport webgpu buffer_write
func importBufferWrite(buffer int32, offset int64, ptr unsafe.Pointer, length int32) int32

//go:wasmimport webgpu buffer_destroy
func importBufferDestroy(buffer int32) int32

//go:wasmimport webgpu pipeline_create
func importPipelineCreate(code unsafe.Pointer, codeLength int32, bindings int32) int32

//go:wasmimport webgpu dispatch
func importDispatch(pipeline int32, params unsafe.Pointer, paramsLength int32, bindings unsafe.Pointer, bindingCount int32, x, y, z int32) int32

//go:wasmimport webgpu copy
func importCopy(src int32, srcOffset int64, dst int32, dstOffset int64, size int64) int32

//go:wasmimport webgpu submit
func importSubmit() int32

//go:wasmimport webgpu read
func importRead(buffer int32, offset int64, size int64) int32

//go:wasmimport webgpu read_result
func importReadResult(ticket int32, ptr unsafe.Pointer, length int32) int32

//go:wasmimport webgpu close
func importClose() int32

// Open returns the host's GPU through the "webgpu" imports. It returns an
// error wrapping ErrNoAdapter when the host has none, and ErrVersion when the
// host speaks another ABI version.
func Open() (Device, error) {
	if v := importABIVersion(); v != ABIVersion {
		return nil, fmt.Errorf("%w: host has ABI %d, module has %d", ErrVersion, v, ABIVersion)
	}
	if err := check(importOpen()); err != nil {
		return nil, err
	}
	g := &guest{}
	buf := make([]byte, 1024)
	for {
		n := importInfo(pointer(buf), int32(len(buf)))
		if err := check(n); err != nil {
			return nil, err
		}
		if int(n) <= len(buf) {
			if err := json.Unmarshal(buf[:n], &g.info); err != nil {
				return nil, fmt.Errorf("%w: adapter info: %v", ErrGPU, err)
			}
			return g, nil
		}
		buf = make([]byte, n)
	}
}

type guest struct{ info Info }

// pointer is the address of b's first byte, or nil for an empty b.
func pointer(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// check turns a negative status into an error carrying the host's message.
func check(status int32) error {
	if status >= 0 {
		return nil
	}
	msg := make([]byte, 512)
	n := importLastError(pointer(msg), int32(len(msg)))
	return CodeError(status, string(msg[:max(0, min(int(n), len(msg)))]))
}

func (g *guest) Info() Info { return g.info }

func (g *guest) CreateBuffer(size uint64) (Buffer, error) {
	h := importBufferCreate(int64(size))
	return Buffer(max(h, 0)), check(h)
}

func (g *guest) WriteBuffer(b Buffer, offset uint64, data []byte) error {
	return check(importBufferWrite(int32(b), int64(offset), pointer(data), int32(len(data))))
}

func (g *guest) DestroyBuffer(b Buffer) error {
	return check(importBufferDestroy(int32(b)))
}

func (g *guest) CreatePipeline(wgsl string, bindings int) (Pipeline, error) {
	code := []byte(wgsl)
	h := importPipelineCreate(pointer(code), int32(len(code)), int32(bindings))
	return Pipeline(max(h, 0)), check(h)
}

func (g *guest) Dispatch(p Pipeline, params []byte, bindings []Binding, groups [3]uint32) error {
	records := make([]byte, BindingSize*len(bindings))
	for i, b := range bindings {
		r := records[BindingSize*i:]
		binary.LittleEndian.PutUint32(r[0:], uint32(b.Buffer))
		binary.LittleEndian.PutUint64(r[8:], b.Offset)
		binary.LittleEndian.PutUint64(r[16:], b.Size)
	}
	return check(importDispatch(int32(p), pointer(params), int32(len(params)), pointer(records), int32(len(bindings)),
		int32(groups[0]), int32(groups[1]), int32(groups[2])))
}

func (g *guest) Copy(src Buffer, srcOffset uint64, dst Buffer, dstOffset, size uint64) error {
	return check(importCopy(int32(src), int64(srcOffset), int32(dst), int64(dstOffset), int64(size)))
}

func (g *guest) Submit() error { return check(importSubmit()) }

func (g *guest) Read(b Buffer, offset, size uint64) (Ticket, error) {
	t := importRead(int32(b), int64(offset), int64(size))
	return Ticket(max(t, 0)), check(t)
}

func (g *guest) ReadResult(t Ticket, dst []byte) (bool, error) {
	status := importReadResult(int32(t), pointer(dst), int32(len(dst)))
	return status == 1, check(status)
}

func (g *guest) Close() error { return check(importClose()) }
