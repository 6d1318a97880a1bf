// webgpu: the `webgpu` import module (webgpu/ABI.md) over navigator.gpu — the
// browser twin of host/webgpuhost over webgpu/native.go, with the same checks
// in the same order, the same error codes and the same messages.
//
// Requesting an adapter and a device is asynchronous, but the module's `open`
// import is synchronous: so requestGPU() asks for them before the module is
// instantiated, and `open` only reports what it got (0, or -1 with the reason
// in last_error). Everything else is synchronous in WebGPU too, except two
// things, which the host keeps track of and the worker awaits (settled()):
//
//   * reads: `read` copies into a MAP_READ staging buffer, submits and starts
//     mapAsync; `read_result` answers 0 until that promise has resolved, and
//     the module's `step` then returns PENDING;
//   * errors: WebGPU reports validation and out-of-memory errors
//     asynchronously, so each call that can raise one runs inside error
//     scopes. The first error is kept, and every later call, read_result
//     included, fails with it — so a broken shader gives an error, not
//     wrong tokens. read_result waits for the scopes opened before it.
//
// A lost device (GPUDevice.lost) makes every later call fail with code -2
// (the device is gone, as if closed); `lost` says why, and `onLost` is called.
//
// The module imports this table even when it runs on the CPU: noGPU(reason)
// gives a host whose `open` answers -1, as host/webgpuhost.NoGPU does.

/** WEBGPU_ABI_VERSION is the version of webgpu/ABI.md these imports speak. */
export const WEBGPU_ABI_VERSION = 1;

/** Status codes of webgpu/ABI.md ("Error codes"). */
export const CODE = Object.freeze({ NO_ADAPTER: -1, HANDLE: -2, RANGE: -3, ARGUMENT: -4, GPU: -5, VERSION: -6 });

// Go's sentinel messages (webgpu/webgpu.go), which every message starts with.
const SENTINEL = {
  [CODE.NO_ADAPTER]: 'webgpu: no adapter',
  [CODE.HANDLE]: 'webgpu: bad handle',
  [CODE.RANGE]: 'webgpu: out of range',
  [CODE.ARGUMENT]: 'webgpu: bad argument',
  [CODE.GPU]: 'webgpu: GPU error',
};

/** BINDING_SIZE is the size of one binding record of `dispatch` (ABI.md). */
const BINDING_SIZE = 24;

/** PARAM_SLOT is the uniform space of one dispatch's params: the most params allowed, and WebGPU's uniform offset alignment. */
const PARAM_SLOT = 256;

/**
 * BIND_GROUP_CAP bounds the bind group cache (webgpu/native.go's
 * bindGroupCap): a decode step binds a group per dispatch (56 on the default
 * model), and a long-running page that meets ever new shapes must not grow
 * the cache without limit. A submit that finds it full clears it first.
 */
export const BIND_GROUP_CAP = 4096;

/** LIMITS are the device limits Info reports (webgpu.Limits), in its order. */
const LIMITS = ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage',
  'minStorageBufferOffsetAlignment', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension'];

// AbiError is an import's failure: the status code and last_error's message.
class AbiError extends Error {
  constructor(code, detail) {
    super(detail ? `${SENTINEL[code]}: ${detail}` : SENTINEL[code]);
    this.code = code;
  }
}

const utf8 = new TextEncoder();
const text = new TextDecoder();

/**
 * requestGPU asks navigator.gpu for an adapter and a device with every limit
 * the adapter supports (and no optional features), and resolves with the
 * host for the module's `webgpu` imports. It never rejects: without WebGPU,
 * or when the adapter or device request fails, the host's `open` answers -1
 * and `reason` says why.
 */
export async function requestGPU({ gpu = globalThis.navigator?.gpu } = {}) {
  if (!gpu) return noGPU('this browser offers no WebGPU (navigator.gpu is undefined)');
  let adapter;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    return noGPU(`requestAdapter failed: ${err.message}`);
  }
  if (!adapter) return noGPU('navigator.gpu.requestAdapter() returned null');
  const requiredLimits = {};
  for (const name in adapter.limits) {
    if (typeof adapter.limits[name] === 'number') requiredLimits[name] = adapter.limits[name];
  }
  let device;
  try {
    device = await adapter.requestDevice({ requiredLimits });
  } catch {
    // An adapter may advertise a limit its device then refuses: fall back to the defaults.
    try {
      device = await adapter.requestDevice();
    } catch (err) {
      return noGPU(`requestDevice failed: ${err.message}`);
    }
  }
  return new WebGPUHost({ adapter, device });
}

/** noGPU returns a host that offers the module no GPU: `open` answers -1 with reason. */
export function noGPU(reason = 'this runtime offers no GPU') {
  return new WebGPUHost({ reason });
}

/**
 * adapterInfo describes a GPUAdapter the way the planner's Capabilities.adapter
 * does (wasm/planner/capabilities.go): names, the fallback flag, the adapter's
 * limits (what a device may request) and its features.
 */
export function adapterInfo(adapter) {
  const info = adapter.info ?? {};
  const limits = {};
  for (const name of LIMITS) if (name !== 'minStorageBufferOffsetAlignment') limits[name] = adapter.limits[name] ?? 0;
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    description: info.description ?? '',
    isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
    limits,
    features: [...adapter.features].sort(),
  };
}

/** WebGPUHost is the state behind one module's `webgpu` imports. */
export class WebGPUHost {
  constructor({ adapter = null, device = null, reason = '' }) {
    this.adapter = adapter;
    this.device = device;
    /** Why there is no device ('' when there is one). */
    this.reason = reason;
    /** Why the device was lost, once it was; null before. */
    this.lost = null;
    /** Called with the loss message when the device is lost. */
    this.onLost = null;
    this.opened = false;
    this.last = 0; // the last handle given out, of any kind
    this.buffers = new Map(); // handle → {buffer, size}
    this.pipelines = new Map(); // handle → {pipeline, layout, bindings}
    this.reads = new Map(); // ticket → {staging, size, done, error}
    this.recorded = []; // dispatches and copies since the last submit
    this.params = []; // [dispatches] 256-byte params slots for recorded dispatches
    this.uniform = null;
    this.uniformSize = 0;
    // Bind groups by what they bind (bindGroup): a decode step records the
    // same dispatches over the same buffers at every token, so a step after
    // the first creates none. key → {group, buffers: the storage buffer handles}.
    this.groups = new Map();
    /** How many bind groups this host has created, cached or not: for tests. */
    this.bindGroupsCreated = 0;
    this.waits = new Set(); // promises of reads and error scopes not settled yet
    this.failure = null; // the first asynchronous GPU error, as an AbiError
    this.lastError = '';
    this.memory = null; // () => the guest's WebAssembly.Memory
    this.info = null;
    if (device) {
      this.info = deviceInfo(adapter, device);
      device.lost.then((info) => {
        this.lost = `the device was lost (${info.reason}): ${info.message || 'no message'}`;
        this.onLost?.(this.lost);
      });
      device.addEventListener('uncapturederror', (e) => this.fail('uncaptured', e.error));
    }
  }

  /**
   * settled resolves when every read and error scope in flight has settled,
   * so a PENDING step can be retried; it returns null when nothing is in
   * flight (then waiting cannot help).
   */
  settled() {
    if (this.waits.size === 0) return null;
    return Promise.allSettled([...this.waits]).then(() => {});
  }

  /** destroy frees the device; the module is unusable with this host afterwards. */
  destroy() {
    this.freeAll();
    this.device?.destroy();
  }

  /** imports returns the `webgpu` import object; memory() gives the guest's memory once it exists. */
  imports(memory) {
    this.memory = memory;
    const table = {
      abi_version: () => WEBGPU_ABI_VERSION,
      open: () => this.open(),
      info: (ptr, cap) => this.infoJSON(ptr >>> 0, cap >>> 0),
      last_error: (ptr, cap) => this.lastErrorMessage(ptr >>> 0, cap >>> 0),
      buffer_create: (size) => this.bufferCreate(u64(size)),
      buffer_write: (buffer, offset, ptr, len) => this.bufferWrite(buffer >>> 0, u64(offset), ptr >>> 0, len >>> 0),
      buffer_destroy: (buffer) => this.bufferDestroy(buffer >>> 0),
      pipeline_create: (ptr, len, bindings) => this.pipelineCreate(ptr >>> 0, len >>> 0, bindings >>> 0),
      dispatch: (pipeline, paramsPtr, paramsLen, bindingsPtr, count, x, y, z) =>
        this.dispatch(pipeline >>> 0, paramsPtr >>> 0, paramsLen >>> 0, bindingsPtr >>> 0, count >>> 0, [x >>> 0, y >>> 0, z >>> 0]),
      copy: (src, srcOffset, dst, dstOffset, size) => this.copy(src >>> 0, u64(srcOffset), dst >>> 0, u64(dstOffset), u64(size)),
      submit: () => this.submit(),
      read: (buffer, offset, size) => this.read(buffer >>> 0, u64(offset), u64(size)),
      read_result: (ticket, ptr, len) => this.readResult(ticket >>> 0, ptr >>> 0, len >>> 0),
      close: () => this.close(),
    };
    // Every import returns a status: an AbiError becomes its code, anything
    // else the WebGPU implementation threw becomes -5. None ever throws into
    // the module.
    for (const [name, fn] of Object.entries(table)) {
      if (name === 'abi_version' || name === 'last_error') continue;
      table[name] = (...args) => {
        try {
          return fn(...args);
        } catch (err) {
          const e = err instanceof AbiError ? err : new AbiError(CODE.GPU, `${name}: ${err.message}`);
          this.lastError = e.message;
          return e.code;
        }
      };
    }
    return table;
  }

  // --- the imports, in ABI.md's order ---

  open() {
    if (!this.device) throw new AbiError(CODE.NO_ADAPTER, this.reason);
    if (this.lost) throw new AbiError(CODE.NO_ADAPTER, this.lost);
    this.opened = true;
    return 0;
  }

  infoJSON(ptr, cap) {
    this.check();
    const json = utf8.encode(JSON.stringify(this.info));
    if (json.length <= cap) this.guest(ptr, json.length).set(json);
    return json.length;
  }

  lastErrorMessage(ptr, cap) {
    const msg = utf8.encode(this.lastError);
    const n = Math.min(cap, msg.length);
    let dst;
    try {
      dst = this.guest(ptr, n);
    } catch {
      return CODE.RANGE; // do not overwrite the message being asked for
    }
    dst.set(msg.subarray(0, n));
    return n;
  }

  bufferCreate(size) {
    this.check();
    const max = this.info.limits.maxBufferSize;
    if (size === 0 || size % 4 !== 0 || size > max) {
      throw new AbiError(CODE.ARGUMENT, `create buffer of ${size} bytes (want a positive multiple of 4, at most ${max})`);
    }
    const buffer = this.scoped('create buffer', () => this.device.createBuffer({
      size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    }));
    const h = ++this.last;
    this.buffers.set(h, { buffer, size });
    return h;
  }

  bufferWrite(handle, offset, ptr, len) {
    this.check();
    const data = this.guest(ptr, len);
    const b = this.buffer(handle);
    span('write buffer', offset, len, b.size);
    if (len > 0) this.device.queue.writeBuffer(b.buffer, offset, data.buffer, data.byteOffset, len);
    return 0;
  }

  bufferDestroy(handle) {
    this.check();
    const b = this.buffer(handle);
    this.submit(); // recorded commands hold the buffer
    this.buffers.delete(handle);
    for (const [key, g] of this.groups) if (g.buffers.includes(handle)) this.groups.delete(key);
    b.buffer.destroy(); // work already submitted keeps it until it is done
    return 0;
  }

  pipelineCreate(ptr, len, bindings) {
    this.check();
    const code = text.decode(this.guest(ptr, len));
    const most = this.info.limits.maxStorageBuffersPerShaderStage;
    if (bindings > most) throw new AbiError(CODE.ARGUMENT, `${bindings} storage bindings (the device allows ${most})`);
    const pipeline = this.scoped('compile WGSL', () => this.device.createComputePipeline({
      layout: 'auto',
      compute: { module: this.device.createShaderModule({ code }), entryPoint: 'main' },
    }));
    const h = ++this.last;
    this.pipelines.set(h, { pipeline, layout: pipeline.getBindGroupLayout(0), bindings });
    return h;
  }

  dispatch(handle, paramsPtr, paramsLen, bindingsPtr, count, groups) {
    this.check();
    const params = this.guest(paramsPtr, paramsLen);
    if (count * BINDING_SIZE > 1 << 20) throw new AbiError(CODE.ARGUMENT, `${count} bindings`);
    const records = this.guest(bindingsPtr, count * BINDING_SIZE);
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
    const p = this.pipelines.get(handle);
    if (!p) throw new AbiError(CODE.HANDLE, `pipeline ${handle}`);
    if (paramsLen === 0 || paramsLen % 16 !== 0 || paramsLen > PARAM_SLOT) {
      throw new AbiError(CODE.ARGUMENT, `dispatch: ${paramsLen} bytes of params (want a multiple of 16 up to ${PARAM_SLOT})`);
    }
    if (count !== p.bindings) throw new AbiError(CODE.ARGUMENT, `dispatch: ${count} bindings for a pipeline with ${p.bindings}`);
    const most = this.info.limits.maxComputeWorkgroupsPerDimension;
    if (groups.some((g) => g === 0 || g > most)) {
      throw new AbiError(CODE.ARGUMENT, `dispatch: workgroups [${groups.join(' ')}] (each 1 to ${most})`);
    }
    const { maxStorageBufferBindingSize: limit, minStorageBufferOffsetAlignment: align } = this.info.limits;
    const entries = [];
    const buffers = [];
    // The bind group's key: the pipeline, the uniform slot and params size, and each binding.
    const key = [handle, this.params.length * PARAM_SLOT, paramsLen];
    for (let i = 0; i < count; i++) {
      const handleAt = view.getUint32(BINDING_SIZE * i, true);
      const offset = u64(view.getBigUint64(BINDING_SIZE * i + 8, true));
      let size = u64(view.getBigUint64(BINDING_SIZE * i + 16, true));
      const b = this.buffers.get(handleAt);
      if (!b) throw prefixed(`dispatch binding ${i + 1}`, new AbiError(CODE.HANDLE, `buffer ${handleAt}`));
      if (size === 0 && offset < b.size) size = b.size - offset;
      const what = `dispatch binding ${i + 1}`;
      span(what, offset, size, b.size);
      if (size === 0 || size > limit || offset % align !== 0) {
        throw new AbiError(CODE.ARGUMENT, `${what}: ${size} bytes at offset ${offset} (limit ${limit} bytes, alignment ${align})`);
      }
      entries.push({ binding: i + 1, resource: { buffer: b.buffer, offset, size } });
      buffers.push(handleAt);
      key.push(handleAt, offset, size);
    }
    const slot = new Uint8Array(PARAM_SLOT);
    slot.set(params);
    this.params.push(slot);
    this.recorded.push({ pipeline: p, paramsSize: paramsLen, entries, buffers, key: key.join(' '), groups });
    return 0;
  }

  copy(src, srcOffset, dst, dstOffset, size) {
    this.check();
    const s = this.buffers.get(src);
    if (!s) throw prefixed('copy source', new AbiError(CODE.HANDLE, `buffer ${src}`));
    const t = this.buffers.get(dst);
    if (!t) throw prefixed('copy destination', new AbiError(CODE.HANDLE, `buffer ${dst}`));
    span('copy source', srcOffset, size, s.size);
    span('copy destination', dstOffset, size, t.size);
    if (src === dst && srcOffset < dstOffset + size && dstOffset < srcOffset + size) {
      throw new AbiError(CODE.ARGUMENT, `copy within buffer ${src} overlaps`);
    }
    if (size > 0) this.recorded.push({ src: s.buffer, srcOffset, dst: t.buffer, dstOffset, size });
    return 0;
  }

  submit() {
    this.check();
    if (this.recorded.length === 0) return 0;
    const recorded = this.recorded;
    const params = this.params;
    this.recorded = [];
    this.params = [];
    if (this.groups.size >= BIND_GROUP_CAP) this.groups.clear();
    this.scoped('submit', () => {
      const device = this.device;
      if (params.length) {
        this.growUniform(params.length * PARAM_SLOT);
        const all = new Uint8Array(params.length * PARAM_SLOT);
        params.forEach((slot, i) => all.set(slot, i * PARAM_SLOT));
        // Queued now, so it lands before this submit and after every earlier one.
        device.queue.writeBuffer(this.uniform, 0, all);
      }
      const encoder = device.createCommandEncoder();
      let pass = null;
      let slot = 0;
      for (const c of recorded) {
        if (!c.pipeline) {
          pass?.end();
          pass = null;
          encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
          continue;
        }
        const group = this.bindGroup(c, slot);
        slot++;
        pass ??= encoder.beginComputePass();
        pass.setPipeline(c.pipeline.pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(...c.groups);
      }
      pass?.end();
      device.queue.submit([encoder.finish()]);
    });
    return 0;
  }

  // bindGroup returns the bind group of dispatch c with its params in
  // uniform slot `slot`: the cached one, or a new one, cached unless the
  // cache is full. The key leaves out the uniform buffer because growUniform
  // clears the cache when it replaces it, and a key never names a destroyed
  // buffer's successor because handles are never reused.
  bindGroup(c, slot) {
    const cached = this.groups.get(c.key);
    if (cached) return cached.group;
    const group = this.device.createBindGroup({
      layout: c.pipeline.layout,
      entries: [{ binding: 0, resource: { buffer: this.uniform, offset: slot * PARAM_SLOT, size: c.paramsSize } }, ...c.entries],
    });
    this.bindGroupsCreated++;
    if (this.groups.size < BIND_GROUP_CAP) this.groups.set(c.key, { group, buffers: c.buffers });
    return group;
  }

  // growUniform makes the params uniform buffer hold at least n bytes. The
  // old one is dropped, not destroyed: submitted work may still read it. So
  // are the bind groups, which bind the old one.
  growUniform(n) {
    if (this.uniformSize >= n) return;
    let size = Math.max(this.uniformSize, 16 * PARAM_SLOT);
    while (size < n) size *= 2;
    this.uniform = this.device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.uniformSize = size;
    this.groups.clear();
  }

  read(handle, offset, size) {
    this.check();
    const b = this.buffer(handle);
    span('read', offset, size, b.size);
    if (size === 0) throw new AbiError(CODE.ARGUMENT, 'read of 0 bytes');
    const staging = this.scoped('read', () => this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }));
    this.recorded.push({ src: b.buffer, srcOffset: offset, dst: staging, dstOffset: 0, size });
    this.submit();
    const r = { staging, size, done: false, error: null };
    const mapped = staging.mapAsync(GPUMapMode.READ).then(
      () => { r.done = true; },
      (err) => { r.done = true; r.error = err; },
    );
    this.track(mapped);
    const t = ++this.last;
    this.reads.set(t, r);
    return t;
  }

  readResult(ticket, ptr, len) {
    const r = this.reads.get(ticket);
    if (!r) throw new AbiError(CODE.HANDLE, `ticket ${ticket}`);
    if (len !== r.size) throw new AbiError(CODE.ARGUMENT, `read result into ${len} bytes, the read has ${r.size}`);
    const dst = this.guest(ptr, len);
    // Not done until the copy is mapped and every error scope opened before
    // it has reported: a failed dispatch must not pass for a result.
    if (!r.done || (this.waits.size > 0 && !this.failure && !this.lost)) return 0;
    this.reads.delete(ticket);
    try {
      this.check();
      if (r.error) throw new AbiError(CODE.GPU, `read: ${r.error.message}`);
      dst.set(new Uint8Array(r.staging.getMappedRange(0, r.size)));
      r.staging.unmap();
    } finally {
      r.staging.destroy();
    }
    return 1;
  }

  close() {
    this.freeAll();
    this.opened = false;
    return 0;
  }

  // --- helpers ---

  // check fails unless the device is open and healthy.
  check() {
    if (this.lost) throw new AbiError(CODE.HANDLE, this.lost);
    if (!this.opened) throw new AbiError(CODE.HANDLE, 'the device is not open');
    if (this.failure) throw this.failure;
  }

  buffer(handle) {
    const b = this.buffers.get(handle);
    if (!b) throw new AbiError(CODE.HANDLE, `buffer ${handle}`);
    return b;
  }

  // guest is len bytes of the guest's memory at ptr, aliasing it.
  guest(ptr, len) {
    const memory = this.memory().buffer;
    if (len === 0) return new Uint8Array(0);
    if (ptr + len > memory.byteLength) throw new AbiError(CODE.RANGE, `guest memory [${ptr}, ${ptr + len})`);
    return new Uint8Array(memory, ptr, len);
  }

  // scoped runs fn inside validation, out-of-memory and internal error
  // scopes; an error they report later becomes this.failure.
  scoped(what, fn) {
    const device = this.device;
    const kinds = ['validation', 'out-of-memory', 'internal'];
    for (const kind of kinds) device.pushErrorScope(kind);
    let result;
    try {
      result = fn();
    } finally {
      for (const _ of kinds) this.track(device.popErrorScope().then((err) => err && this.fail(what, err), () => {}));
    }
    return result;
  }

  fail(what, err) {
    this.failure ??= new AbiError(CODE.GPU, `${what}: ${err.message.trim()}`);
  }

  track(promise) {
    const p = promise.finally(() => this.waits.delete(p));
    this.waits.add(p);
  }

  freeAll() {
    for (const r of this.reads.values()) {
      if (r.done && !r.error) r.staging.unmap();
      r.staging.destroy();
    }
    for (const b of this.buffers.values()) b.buffer.destroy();
    this.reads.clear();
    this.buffers.clear();
    this.pipelines.clear();
    this.groups.clear();
    this.recorded = [];
    this.params = [];
  }
}

// deviceInfo is the ABI's Info document (webgpu.Info) for a browser device.
// Browsers do not say whether a GPU is discrete: adapterType is "cpu" for a
// fallback (software) adapter and "" otherwise.
function deviceInfo(adapter, device) {
  const info = adapter.info ?? {};
  const limits = {};
  for (const name of LIMITS) limits[name] = device.limits[name];
  const fallback = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
  return {
    name: info.description || [info.vendor, info.architecture].filter(Boolean).join(' ') || 'WebGPU adapter',
    vendor: info.vendor ?? '',
    driver: info.device ?? '',
    adapterType: fallback ? 'cpu' : '',
    backend: 'webgpu',
    limits,
    features: [...device.features].sort(),
  };
}

// span checks that [offset, offset+size) lies in a buffer of n bytes with
// 4-byte alignment (webgpu/native.go's span).
function span(what, offset, size, n) {
  if (offset % 4 !== 0 || size % 4 !== 0) {
    throw new AbiError(CODE.ARGUMENT, `${what}: offset ${offset} and size ${size} must be multiples of 4`);
  }
  if (offset > n || size > n - offset) {
    throw new AbiError(CODE.RANGE, `${what}: bytes [${offset}, ${offset + size}) of a ${n}-byte buffer`);
  }
}

// prefixed puts "what: " before an AbiError's message, as Go's
// fmt.Errorf("what: %w", err) does.
function prefixed(what, err) {
  err.message = `${what}: ${err.message}`;
  return err;
}

// u64 reads an i64 argument as unsigned, as Go's uint64 does. Past 2^53 no
// buffer is that large: an aligned value becomes 2^64 (out of range), a
// misaligned one NaN (fails the alignment check), so the checks give Go's codes.
function u64(value) {
  const n = BigInt.asUintN(64, BigInt(value));
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(n);
  return n % 4n === 0n ? 2 ** 64 : NaN;
}
