//go:build cgo && !wasip1

package webgpu

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cogentcore/webgpu/wgpu"
)

// Open returns the native device: the first high-performance adapter that
// wgpu-native finds (on a CPU-only Linux box, Mesa's lavapipe). Without one
// it returns an error wrapping ErrNoAdapter.
//
// It works around cogentcore/webgpu v0.23.0 (ARCHITECTURE.md): the adapter's
// MaxPushConstantSize is garbage and is zeroed before RequestDevice; waits
// poll without blocking (Poll(true) gives up after 5 s and frees resources
// in flight); compute passes are released before Finish; and every argument
// is validated here, because an error inside Queue.Submit aborts the process.
func Open() (Device, error) {
	wgpu.SetLogLevel(wgpu.LogLevelOff) // errors come back as values; warnings are noise
	quietMesa()
	instance := wgpu.CreateInstance(nil)
	adapter, err := instance.RequestAdapter(&wgpu.RequestAdapterOptions{PowerPreference: wgpu.PowerPreferenceHighPerformance})
	if err != nil {
		instance.Release()
		return nil, fmt.Errorf("%w: %v", ErrNoAdapter, err)
	}
	limits := adapter.GetLimits()
	limits.Limits.MaxPushConstantSize = 0
	device, err := adapter.RequestDevice(&wgpu.DeviceDescriptor{RequiredLimits: &wgpu.RequiredLimits{Limits: limits.Limits}})
	if err != nil {
		adapter.Release()
		instance.Release()
		return nil, fmt.Errorf("%w: %v", ErrNoAdapter, err)
	}
	d := &native{
		instance:  instance,
		adapter:   adapter,
		device:    device,
		queue:     device.GetQueue(),
		buffers:   map[Buffer]*nativeBuffer{},
		pipelines: map[Pipeline]*nativePipeline{},
		reads:     map[Ticket]*nativeRead{},
		groups:    bindGroups{byKey: map[string]cachedGroup{}},
	}
	d.info = nativeInfo(adapter, device)
	return d, nil
}

func nativeInfo(adapter *wgpu.Adapter, device *wgpu.Device) Info {
	ai := adapter.GetInfo()
	l := device.GetLimits().Limits
	name := ai.Name
	if name == "" || strings.HasPrefix(name, "0x") {
		// cogentcore/webgpu v0.23.0 fills Name with the device id on Vulkan;
		// the driver description holds the name ("llvmpipe (LLVM 15.0.6, 256 bits)").
		name = ai.DriverDescription
	}
	info := Info{
		Name:        name,
		Vendor:      ai.VendorName,
		Driver:      ai.DriverDescription,
		AdapterType: ai.AdapterType.String(),
		Backend:     ai.BackendType.String(),
		Limits: Limits{
			MaxBufferSize:                     l.MaxBufferSize,
			MaxStorageBufferBindingSize:       l.MaxStorageBufferBindingSize,
			MaxStorageBuffersPerShaderStage:   l.MaxStorageBuffersPerShaderStage,
			MinStorageBufferOffsetAlignment:   l.MinStorageBufferOffsetAlignment,
			MaxComputeWorkgroupStorageSize:    l.MaxComputeWorkgroupStorageSize,
			MaxComputeInvocationsPerWorkgroup: l.MaxComputeInvocationsPerWorkgroup,
			MaxComputeWorkgroupSizeX:          l.MaxComputeWorkgroupSizeX,
			MaxComputeWorkgroupsPerDimension:  l.MaxComputeWorkgroupsPerDimension,
		},
	}
	for _, f := range adapter.EnumerateFeatures() {
		info.Features = append(info.Features, f.String())
	}
	return info
}

var errClosed = fmt.Errorf("%w: the device is closed", ErrHandle)

// paramSlot is the space each dispatch's params take in the uniform buffer:
// the largest params allowed, and WebGPU's uniform offset alignment.
const paramSlot = 256

type native struct {
	instance  *wgpu.Instance
	adapter   *wgpu.Adapter
	device    *wgpu.Device
	queue     *wgpu.Queue
	info      Info
	last      uint32 // the last handle given out, of any kind
	buffers   map[Buffer]*nativeBuffer
	pipelines map[Pipeline]*nativePipeline
	reads     map[Ticket]*nativeRead

	recorded []command // since the last Submit
	params   []byte    // [dispatches][paramSlot] uniform contents for recorded
	uniform  *wgpu.Buffer
	uniformN int // bytes in uniform

	groups bindGroups
	key    []byte // scratch for bind group keys
}

type nativeBuffer struct {
	buffer *wgpu.Buffer
	size   uint64
}

type nativePipeline struct {
	pipeline *wgpu.ComputePipeline
	layout   *wgpu.BindGroupLayout
	bindings int
}

type nativeRead struct {
	staging *wgpu.Buffer
	size    uint64
	done    bool
	status  wgpu.BufferMapAsyncStatus
}

// command is a recorded Dispatch (pipeline set) or Copy.
type command struct {
	pipeline   Pipeline // 0 for a copy
	paramsSize uint64
	bindings   []Binding // storage bindings 1…n, sizes resolved; the uniform (binding 0) is added at Submit
	groups     [3]uint32

	src, dst       *wgpu.Buffer
	srcOff, dstOff uint64
	size           uint64
}

func (d *native) handle() uint32 {
	d.last++
	return d.last
}

func (d *native) Info() Info { return d.info }

func (d *native) CreateBuffer(size uint64) (Buffer, error) {
	if d.device == nil {
		return 0, errClosed
	}
	if size == 0 || size%4 != 0 || size > d.info.Limits.MaxBufferSize {
		return 0, fmt.Errorf("%w: create buffer of %d bytes (want a positive multiple of 4, at most %d)", ErrArgument, size, d.info.Limits.MaxBufferSize)
	}
	b, err := d.device.CreateBuffer(&wgpu.BufferDescriptor{
		Size:  size,
		Usage: wgpu.BufferUsageStorage | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst,
	})
	if err != nil {
		return 0, fmt.Errorf("%w: create buffer: %v", ErrGPU, err)
	}
	h := Buffer(d.handle())
	d.buffers[h] = &nativeBuffer{buffer: b, size: size}
	return h, nil
}

func (d *native) buffer(b Buffer) (*nativeBuffer, error) {
	if d.device == nil {
		return nil, errClosed
	}
	nb, ok := d.buffers[b]
	if !ok {
		return nil, fmt.Errorf("%w: buffer %d", ErrHandle, b)
	}
	return nb, nil
}

// span checks that [offset, offset+size) lies in a buffer of n bytes with
// 4-byte alignment.
func span(what string, offset, size, n uint64) error {
	if offset%4 != 0 || size%4 != 0 {
		return fmt.Errorf("%w: %s: offset %d and size %d must be multiples of 4", ErrArgument, what, offset, size)
	}
	if offset > n || size > n-offset {
		return fmt.Errorf("%w: %s: bytes [%d, %d) of a %d-byte buffer", ErrRange, what, offset, offset+size, n)
	}
	return nil
}

func (d *native) WriteBuffer(b Buffer, offset uint64, data []byte) error {
	nb, err := d.buffer(b)
	if err != nil {
		return err
	}
	if err := span("write buffer", offset, uint64(len(data)), nb.size); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if err := d.queue.WriteBuffer(nb.buffer, offset, data); err != nil {
		return fmt.Errorf("%w: write buffer: %v", ErrGPU, err)
	}
	return nil
}

func (d *native) DestroyBuffer(b Buffer) error {
	nb, err := d.buffer(b)
	if err != nil {
		return err
	}
	if err := d.Submit(); err != nil { // recorded commands hold the buffer
		return err
	}
	delete(d.buffers, b)
	d.groups.drop(b)
	nb.buffer.Release() // wgpu keeps it alive until submitted work is done with it
	return nil
}

func (d *native) CreatePipeline(wgsl string, bindings int) (Pipeline, error) {
	if d.device == nil {
		return 0, errClosed
	}
	if bindings < 0 || bindings > int(d.info.Limits.MaxStorageBuffersPerShaderStage) {
		return 0, fmt.Errorf("%w: %d storage bindings (the device allows %d)", ErrArgument, bindings, d.info.Limits.MaxStorageBuffersPerShaderStage)
	}
	module, err := d.device.CreateShaderModule(&wgpu.ShaderModuleDescriptor{
		WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: wgsl},
	})
	if err != nil {
		return 0, fmt.Errorf("%w: compile WGSL: %v", ErrGPU, err)
	}
	defer module.Release()
	pipeline, err := d.device.CreateComputePipeline(&wgpu.ComputePipelineDescriptor{
		Compute: wgpu.ProgrammableStageDescriptor{Module: module, EntryPoint: "main"},
	})
	if err != nil {
		return 0, fmt.Errorf("%w: create pipeline: %v", ErrGPU, err)
	}
	h := Pipeline(d.handle())
	d.pipelines[h] = &nativePipeline{pipeline: pipeline, layout: pipeline.GetBindGroupLayout(0), bindings: bindings}
	return h, nil
}

func (d *native) Dispatch(p Pipeline, params []byte, bindings []Binding, groups [3]uint32) error {
	np, ok := d.pipelines[p]
	if !ok {
		return fmt.Errorf("%w: pipeline %d", ErrHandle, p)
	}
	if len(params) == 0 || len(params)%16 != 0 || len(params) > paramSlot {
		return fmt.Errorf("%w: dispatch: %d bytes of params (want a multiple of 16 up to %d)", ErrArgument, len(params), paramSlot)
	}
	if len(bindings) != np.bindings {
		return fmt.Errorf("%w: dispatch: %d bindings for a pipeline with %d", ErrArgument, len(bindings), np.bindings)
	}
	for _, g := range groups {
		if g == 0 || g > d.info.Limits.MaxComputeWorkgroupsPerDimension {
			return fmt.Errorf("%w: dispatch: workgroups %v (each 1 to %d)", ErrArgument, groups, d.info.Limits.MaxComputeWorkgroupsPerDimension)
		}
	}
	c := command{pipeline: p, paramsSize: uint64(len(params)), groups: groups}
	for i, bind := range bindings {
		nb, err := d.buffer(bind.Buffer)
		if err != nil {
			return fmt.Errorf("dispatch binding %d: %w", i+1, err)
		}
		size := bind.Size
		if size == 0 && bind.Offset < nb.size {
			size = nb.size - bind.Offset
		}
		what := fmt.Sprintf("dispatch binding %d", i+1)
		if err := span(what, bind.Offset, size, nb.size); err != nil {
			return err
		}
		if size == 0 || size > d.info.Limits.MaxStorageBufferBindingSize || bind.Offset%uint64(d.info.Limits.MinStorageBufferOffsetAlignment) != 0 {
			return fmt.Errorf("%w: %s: %d bytes at offset %d (limit %d bytes, alignment %d)", ErrArgument, what, size, bind.Offset,
				d.info.Limits.MaxStorageBufferBindingSize, d.info.Limits.MinStorageBufferOffsetAlignment)
		}
		c.bindings = append(c.bindings, Binding{Buffer: bind.Buffer, Offset: bind.Offset, Size: size})
	}
	slot := make([]byte, paramSlot)
	copy(slot, params)
	d.params = append(d.params, slot...)
	d.recorded = append(d.recorded, c)
	return nil
}

func (d *native) Copy(src Buffer, srcOffset uint64, dst Buffer, dstOffset, size uint64) error {
	s, err := d.buffer(src)
	if err != nil {
		return fmt.Errorf("copy source: %w", err)
	}
	t, err := d.buffer(dst)
	if err != nil {
		return fmt.Errorf("copy destination: %w", err)
	}
	if err := span("copy source", srcOffset, size, s.size); err != nil {
		return err
	}
	if err := span("copy destination", dstOffset, size, t.size); err != nil {
		return err
	}
	if src == dst && srcOffset < dstOffset+size && dstOffset < srcOffset+size {
		return fmt.Errorf("%w: copy within buffer %d overlaps", ErrArgument, src)
	}
	if size > 0 {
		d.recorded = append(d.recorded, command{src: s.buffer, srcOff: srcOffset, dst: t.buffer, dstOff: dstOffset, size: size})
	}
	return nil
}

func (d *native) Submit() error {
	if d.device == nil {
		return errClosed
	}
	if len(d.recorded) == 0 {
		return nil
	}
	recorded, params := d.recorded, d.params
	d.recorded, d.params = nil, nil
	if len(d.groups.byKey) >= bindGroupCap {
		d.groups.clear() // nothing recorded holds them yet
	}
	if len(params) > 0 {
		if err := d.growUniform(len(params)); err != nil {
			return err
		}
		if err := d.queue.WriteBuffer(d.uniform, 0, params); err != nil {
			return fmt.Errorf("%w: write params: %v", ErrGPU, err)
		}
	}
	encoder, err := d.device.CreateCommandEncoder(nil)
	if err != nil {
		return fmt.Errorf("%w: submit: %v", ErrGPU, err)
	}
	defer encoder.Release()
	var uncached []*wgpu.BindGroup // created with the cache full: released after this submit
	defer func() {
		for _, g := range uncached {
			g.Release()
		}
	}()
	var pass *wgpu.ComputePassEncoder
	endPass := func() error {
		if pass == nil {
			return nil
		}
		err := pass.End()
		pass.Release() // before Finish: cogentcore/webgpu needs it
		pass = nil
		return err
	}
	slot := uint64(0)
	for _, c := range recorded {
		if c.pipeline == 0 {
			if err := endPass(); err != nil {
				return fmt.Errorf("%w: submit: %v", ErrGPU, err)
			}
			if err := encoder.CopyBufferToBuffer(c.src, c.srcOff, c.dst, c.dstOff, c.size); err != nil {
				return fmt.Errorf("%w: submit: %v", ErrGPU, err)
			}
			continue
		}
		np := d.pipelines[c.pipeline]
		group, cached, err := d.bindGroup(np, c, slot)
		slot++
		if err != nil {
			endPass()
			return fmt.Errorf("%w: submit: %v", ErrGPU, err)
		}
		if !cached {
			uncached = append(uncached, group)
		}
		if pass == nil {
			pass = encoder.BeginComputePass(nil)
		}
		pass.SetPipeline(np.pipeline)
		pass.SetBindGroup(0, group, nil)
		pass.DispatchWorkgroups(c.groups[0], c.groups[1], c.groups[2])
	}
	if err := endPass(); err != nil {
		return fmt.Errorf("%w: submit: %v", ErrGPU, err)
	}
	commands, err := encoder.Finish(nil)
	if err != nil {
		return fmt.Errorf("%w: submit: %v", ErrGPU, err)
	}
	defer commands.Release()
	d.queue.Submit(commands)
	return nil
}

// bindGroup returns the bind group of dispatch c with its params in uniform
// slot slot: the cached one, or a new one, which it caches unless the cache
// is full (cached false: the caller releases it after the submit).
func (d *native) bindGroup(np *nativePipeline, c command, slot uint64) (group *wgpu.BindGroup, cached bool, err error) {
	key := binary.LittleEndian.AppendUint32(d.key[:0], uint32(c.pipeline))
	key = binary.LittleEndian.AppendUint64(key, slot*paramSlot)
	key = binary.LittleEndian.AppendUint64(key, c.paramsSize)
	for _, b := range c.bindings {
		key = binary.LittleEndian.AppendUint32(key, uint32(b.Buffer))
		key = binary.LittleEndian.AppendUint64(key, b.Offset)
		key = binary.LittleEndian.AppendUint64(key, b.Size)
	}
	d.key = key
	if g, ok := d.groups.byKey[string(key)]; ok {
		return g.group, true, nil
	}
	entries := make([]wgpu.BindGroupEntry, 0, 1+len(c.bindings))
	entries = append(entries, wgpu.BindGroupEntry{Binding: 0, Buffer: d.uniform, Offset: slot * paramSlot, Size: c.paramsSize})
	for i, b := range c.bindings {
		// Destroying a buffer submits first, so every recorded binding's buffer is alive.
		entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(i + 1), Buffer: d.buffers[b.Buffer].buffer, Offset: b.Offset, Size: b.Size})
	}
	group, err = d.device.CreateBindGroup(&wgpu.BindGroupDescriptor{Layout: np.layout, Entries: entries})
	if err != nil {
		return nil, false, err
	}
	d.groups.created++
	if len(d.groups.byKey) >= bindGroupCap {
		return group, false, nil
	}
	buffers := make([]Buffer, len(c.bindings))
	for i, b := range c.bindings {
		buffers[i] = b.Buffer
	}
	d.groups.byKey[string(key)] = cachedGroup{group: group, buffers: buffers}
	return group, true, nil
}

// BindGroups reports how many bind groups the device has created since Open,
// how many it holds cached, and the most it caches: the bind group cache as
// tests and benchmarks see it (through an interface assertion; Device has no
// such method, as the guest cannot see the host's cache).
func (d *native) BindGroups() (created, cached, limit int) {
	return d.groups.created, len(d.groups.byKey), bindGroupCap
}

// bindGroupCap bounds the bind group cache. A decode step binds a group per
// dispatch (planner.GPUDispatches: 56 on the default model, 108 on an
// 8-layer one); the cap leaves room for prefill's, drafts' and several
// mixes' besides, and keeps a long-running server that meets ever new
// shapes from growing the cache without limit.
const bindGroupCap = 4096

// bindGroups caches the bind groups Submit creates. A decode step records the
// same dispatches over the same buffers at every token, and creating a bind
// group per dispatch per submit was a cost of its own (a cgo call and a
// driver descriptor set each: 3–8 µs on lavapipe, against 20–60 ns for a
// lookup, BenchmarkBindGroup); cached, a step after the first creates none.
//
// A group is keyed by what it binds: the pipeline, the uniform slot's offset
// and size, and each storage binding's buffer handle, offset and size.
// Handles are never reused, so a key never names a freed buffer's
// successor; the uniform buffer is not in the key because growUniform
// replaces it only after clearing the cache. Groups go when a buffer they
// bind is destroyed (drop), and all at once when the uniform is replaced,
// on Close, and at the start of a submit that finds bindGroupCap groups
// cached (a full clear: simpler than an LRU, and a working set that fits
// is rebuilt within one step).
type bindGroups struct {
	byKey   map[string]cachedGroup
	created int // groups created since Open, cached or not
}

type cachedGroup struct {
	group   *wgpu.BindGroup
	buffers []Buffer // the storage buffers it binds
}

// drop releases the groups that bind buffer b. It scans the cache: destroys
// are rare (a buffer grown, a model's buffers freed), submits are not.
func (c *bindGroups) drop(b Buffer) {
	for key, g := range c.byKey {
		if slices.Contains(g.buffers, b) {
			g.group.Release()
			delete(c.byKey, key)
		}
	}
}

// clear releases every cached group. wgpu keeps a group alive until the
// submitted work that uses it is done.
func (c *bindGroups) clear() {
	for key, g := range c.byKey {
		g.group.Release()
		delete(c.byKey, key)
	}
}

// growUniform makes the params uniform buffer hold at least n bytes.
func (d *native) growUniform(n int) error {
	if d.uniformN >= n {
		return nil
	}
	size := max(d.uniformN, 16*paramSlot)
	for size < n {
		size *= 2
	}
	b, err := d.device.CreateBuffer(&wgpu.BufferDescriptor{Size: uint64(size), Usage: wgpu.BufferUsageUniform | wgpu.BufferUsageCopyDst})
	if err != nil {
		return fmt.Errorf("%w: params buffer: %v", ErrGPU, err)
	}
	d.groups.clear() // they bind the old uniform buffer
	if d.uniform != nil {
		d.uniform.Release() // submitted work keeps the old one alive
	}
	d.uniform, d.uniformN = b, size
	return nil
}

func (d *native) Read(b Buffer, offset, size uint64) (Ticket, error) {
	nb, err := d.buffer(b)
	if err != nil {
		return 0, err
	}
	if err := span("read", offset, size, nb.size); err != nil {
		return 0, err
	}
	if size == 0 {
		return 0, fmt.Errorf("%w: read of 0 bytes", ErrArgument)
	}
	staging, err := d.device.CreateBuffer(&wgpu.BufferDescriptor{Size: size, Usage: wgpu.BufferUsageMapRead | wgpu.BufferUsageCopyDst})
	if err != nil {
		return 0, fmt.Errorf("%w: read: %v", ErrGPU, err)
	}
	d.recorded = append(d.recorded, command{src: nb.buffer, srcOff: offset, dst: staging, size: size})
	if err := d.Submit(); err != nil {
		staging.Release()
		return 0, err
	}
	r := &nativeRead{staging: staging, size: size}
	err = staging.MapAsync(wgpu.MapModeRead, 0, size, func(status wgpu.BufferMapAsyncStatus) {
		r.done, r.status = true, status
	})
	if err != nil {
		staging.Release()
		return 0, fmt.Errorf("%w: read: %v", ErrGPU, err)
	}
	t := Ticket(d.handle())
	d.reads[t] = r
	return t, nil
}

func (d *native) ReadResult(t Ticket, dst []byte) (bool, error) {
	if d.device == nil {
		return false, errClosed
	}
	r, ok := d.reads[t]
	if !ok {
		return false, fmt.Errorf("%w: ticket %d", ErrHandle, t)
	}
	if uint64(len(dst)) != r.size {
		return false, fmt.Errorf("%w: read result into %d bytes, the read has %d", ErrArgument, len(dst), r.size)
	}
	if !r.done {
		d.device.Poll(false, nil) // runs the map callback once the copy is done; never Poll(true)
		if !r.done {
			return false, nil
		}
	}
	delete(d.reads, t)
	defer r.staging.Release()
	if r.status != wgpu.BufferMapAsyncStatusSuccess {
		return false, fmt.Errorf("%w: read: map status %v", ErrGPU, r.status)
	}
	copy(dst, r.staging.GetMappedRange(0, uint(r.size)))
	if err := r.staging.Unmap(); err != nil {
		return false, fmt.Errorf("%w: read: %v", ErrGPU, err)
	}
	return true, nil
}

// idle waits until the queue has finished all submitted work, with
// OnSubmittedWorkDone and non-blocking polls.
func (d *native) idle() {
	done := false
	d.queue.OnSubmittedWorkDone(func(wgpu.QueueWorkDoneStatus) { done = true })
	for spins := 0; !done; spins++ {
		d.device.Poll(false, nil)
		backoff(spins)
	}
}

func (d *native) Close() error {
	if d.device == nil {
		return nil
	}
	err := d.Submit()
	d.idle()
	for t, r := range d.reads {
		if r.done && r.status == wgpu.BufferMapAsyncStatusSuccess {
			r.staging.Unmap()
		}
		r.staging.Release()
		delete(d.reads, t)
	}
	d.groups.clear()
	for h, b := range d.buffers {
		b.buffer.Release()
		delete(d.buffers, h)
	}
	for h, p := range d.pipelines {
		p.layout.Release()
		p.pipeline.Release()
		delete(d.pipelines, h)
	}
	if d.uniform != nil {
		d.uniform.Release()
	}
	d.queue.Release()
	d.device.Release()
	d.adapter.Release()
	d.instance.Release()
	d.device = nil
	return err
}

// quietMesa gives Mesa's Vulkan loader the XDG_RUNTIME_DIR it wants when a
// headless process (a server, CI) has none; otherwise every device creation
// prints "error: XDG_RUNTIME_DIR is invalid" although compute needs no display.
func quietMesa() {
	if os.Getenv("XDG_RUNTIME_DIR") != "" {
		return
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("matedge-runtime-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err == nil {
		os.Setenv("XDG_RUNTIME_DIR", dir)
	}
}
