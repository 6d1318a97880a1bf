// The runtime's pure parts in Node, without a browser: the range arithmetic
// of the loader, the `webgpu` imports' checks and error codes (against a
// stand-in GPUDevice, with the codes and messages host/webgpuhost gives), and
// the micro-benchmark's time budget (on a fake clock).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { benchmark, decodeWork } from '../src/caps.js';
import { cover, intersect, mergeAdjacent, subtract } from '../src/loader.js';
import { CODE, WebGPUHost, noGPU } from '../src/webgpu.js';

const r = (offset, length) => ({ offset, length });

describe('range arithmetic', () => {
  it('cover splits ranges into cached hits and gaps', () => {
    const blocks = [{ ...r(10, 20), key: 'a' }, { ...r(25, 30), key: 'b' }, { ...r(90, 50), key: 'c' }];
    const { hits, gaps } = cover([r(0, 100), r(200, 10)], blocks);
    assert.deepEqual(hits.map((h) => [h.block.key, h.offset, h.length]), [['a', 10, 20], ['b', 30, 25], ['c', 90, 10]]);
    assert.deepEqual(gaps, [r(0, 10), r(55, 35), r(200, 10)]);
  });

  it('cover reads overlapping blocks from the one reaching furthest', () => {
    const { hits, gaps } = cover([r(0, 100)], [{ ...r(0, 40), key: 'short' }, { ...r(0, 80), key: 'long' }, { ...r(60, 40), key: 'tail' }]);
    assert.deepEqual(hits.map((h) => [h.block.key, h.offset, h.length]), [['long', 0, 80], ['tail', 80, 20]]);
    assert.deepEqual(gaps, []);
  });

  const cases = [
    ['mergeAdjacent joins touching and overlapping ranges', () => mergeAdjacent([r(20, 5), r(0, 10), r(10, 5), r(22, 10)]), [r(0, 15), r(20, 12)]],
    ['mergeAdjacent keeps a gap of one byte', () => mergeAdjacent([r(0, 10), r(11, 5)]), [r(0, 10), r(11, 5)]],
    ['subtract cuts holes', () => subtract([r(0, 100)], [r(10, 5), r(50, 100)]), [r(0, 10), r(15, 35)]],
    ['subtract of nothing', () => subtract([r(0, 10)], []), [r(0, 10)]],
    ['intersect keeps the common parts', () => intersect([r(0, 100)], [r(90, 20), r(10, 5)]), [r(10, 5), r(90, 10)]],
  ];
  for (const [name, got, want] of cases) it(name, () => assert.deepEqual(got(), want));
});

// fakeGPU is the least of a GPUDevice that WebGPUHost calls, recording what
// reaches the queue. Reads map when `map()` is called.
function fakeGPU() {
  globalThis.GPUBufferUsage ??= { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 };
  globalThis.GPUMapMode ??= { READ: 1 };
  const pendingMaps = [];
  const submitted = [];
  const buffer = (size) => {
    const data = new Uint8Array(size);
    return {
      size, data,
      destroy() {},
      unmap() {},
      getMappedRange: () => data.buffer,
      mapAsync: () => new Promise((resolve) => pendingMaps.push(resolve)),
    };
  };
  const device = {
    limits: {
      maxBufferSize: 1 << 20, maxStorageBufferBindingSize: 1 << 16, maxStorageBuffersPerShaderStage: 8,
      minStorageBufferOffsetAlignment: 256, maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256,
      maxComputeWorkgroupSizeX: 256, maxComputeWorkgroupsPerDimension: 65535,
    },
    features: new Set(),
    lost: new Promise(() => {}),
    addEventListener() {},
    pushErrorScope() {},
    popErrorScope: () => Promise.resolve(null),
    createBuffer: ({ size }) => buffer(size),
    createShaderModule: () => ({}),
    createComputePipeline: () => ({ getBindGroupLayout: () => ({}) }),
    createBindGroup: (d) => d,
    createCommandEncoder: () => {
      const commands = [];
      return {
        beginComputePass: () => ({ setPipeline() {}, setBindGroup() {}, dispatchWorkgroups: (...g) => commands.push(['dispatch', ...g]), end() {} }),
        copyBufferToBuffer: (src, so, dst, dO, size) => { dst.data.set(src.data.subarray(so, so + size), dO); commands.push(['copy', size]); },
        finish: () => commands,
      };
    },
    queue: {
      writeBuffer: (b, offset, data, dataOffset = 0, size) => {
        const bytes = data instanceof ArrayBuffer ? new Uint8Array(data, dataOffset, size) : data;
        b.data.set(bytes, offset);
      },
      submit: (list) => submitted.push(...list),
    },
  };
  const adapter = { info: { vendor: 'test', architecture: 'fake', isFallbackAdapter: true }, limits: device.limits, features: new Set() };
  return { host: new WebGPUHost({ adapter, device }), submitted, map: () => pendingMaps.splice(0).forEach((f) => f()) };
}

describe('the webgpu imports', () => {
  const memory = new WebAssembly.Memory({ initial: 1 }); // 64 KiB of "guest" memory
  const bytes = new Uint8Array(memory.buffer);
  const text = (ptr, n) => new TextDecoder().decode(bytes.subarray(ptr, ptr + n));
  const setup = () => {
    const gpu = fakeGPU();
    const imports = gpu.host.imports(() => memory);
    const lastError = () => text(60000, imports.last_error(60000, 512));
    return { ...gpu, imports, lastError };
  };

  it('without a device: open answers -1 with the reason, everything else -2', () => {
    const imports = noGPU('no navigator.gpu').imports(() => memory);
    assert.equal(imports.abi_version(), 1);
    assert.equal(imports.open(), CODE.NO_ADAPTER);
    assert.equal(text(0, imports.last_error(0, 100)), 'webgpu: no adapter: no navigator.gpu');
    assert.equal(imports.buffer_create(16n), CODE.HANDLE);
    assert.equal(text(0, imports.last_error(0, 100)), 'webgpu: bad handle: the device is not open');
  });

  it('returns Go\'s codes and messages for bad calls', () => {
    const { imports, lastError } = setup();
    assert.equal(imports.open(), 0);
    const b = imports.buffer_create(1024n);
    assert.ok(b > 0);
    const far = 0xfffffff0 | 0;
    // [call, code, message] — the message host/webgpuhost over webgpu/native.go gives.
    const cases = [
      [() => imports.buffer_create(0n), CODE.ARGUMENT, 'webgpu: bad argument: create buffer of 0 bytes (want a positive multiple of 4, at most 1048576)'],
      [() => imports.buffer_create(6n), CODE.ARGUMENT, 'webgpu: bad argument: create buffer of 6 bytes (want a positive multiple of 4, at most 1048576)'],
      [() => imports.buffer_write(b, 0n, far, 16), CODE.RANGE, `webgpu: out of range: guest memory [${far >>> 0}, ${(far >>> 0) + 16})`],
      [() => imports.buffer_write(b, 0n, 16, -1), CODE.RANGE, 'webgpu: out of range: guest memory [16, 4294967311)'],
      [() => imports.buffer_write(12345, 0n, 0, 4), CODE.HANDLE, 'webgpu: bad handle: buffer 12345'],
      [() => imports.buffer_write(b, -4n, 0, 4), CODE.RANGE, 'webgpu: out of range: write buffer: bytes [18446744073709552000, 18446744073709552000) of a 1024-byte buffer'],
      [() => imports.buffer_write(b, 2n, 0, 4), CODE.ARGUMENT, 'webgpu: bad argument: write buffer: offset 2 and size 4 must be multiples of 4'],
      [() => imports.buffer_write(b, 1024n, 0, 4), CODE.RANGE, 'webgpu: out of range: write buffer: bytes [1024, 1028) of a 1024-byte buffer'],
      [() => imports.pipeline_create(far, 100, 1), CODE.RANGE, `webgpu: out of range: guest memory [${far >>> 0}, ${(far >>> 0) + 100})`],
      [() => imports.pipeline_create(0, 4, 9), CODE.ARGUMENT, 'webgpu: bad argument: 9 storage bindings (the device allows 8)'],
      [() => imports.dispatch(1, far, 16, 0, 0, 1, 1, 1), CODE.RANGE, `webgpu: out of range: guest memory [${far >>> 0}, ${(far >>> 0) + 16})`],
      [() => imports.dispatch(1, 0, 16, 0, 0x7fffffff, 1, 1, 1), CODE.ARGUMENT, 'webgpu: bad argument: 2147483647 bindings'],
      [() => imports.dispatch(777, 0, 16, 0, 0, 1, 1, 1), CODE.HANDLE, 'webgpu: bad handle: pipeline 777'],
      [() => imports.copy(b, 0n, 999, 0n, 4n), CODE.HANDLE, 'copy destination: webgpu: bad handle: buffer 999'],
      [() => imports.copy(b, 0n, b, 4n, 8n), CODE.ARGUMENT, 'webgpu: bad argument: copy within buffer 1 overlaps'],
      [() => imports.read(b, 0n, 0n), CODE.ARGUMENT, 'webgpu: bad argument: read of 0 bytes'],
      [() => imports.read_result(4242, 0, 4), CODE.HANDLE, 'webgpu: bad handle: ticket 4242'],
      [() => imports.info(far, 4096), CODE.RANGE, `webgpu: out of range: guest memory [${far >>> 0}, ${(far >>> 0) + imports.info(0, 0)})`],
    ];
    for (const [call, code, message] of cases) {
      assert.equal(call(), code, `${call}`);
      assert.equal(lastError(), message, `${call}`);
    }
  });

  it('checks a dispatch\'s params, bindings and workgroups', () => {
    const { imports, lastError } = setup();
    imports.open();
    const b = imports.buffer_create(1024n);
    const p = imports.pipeline_create(0, 4, 1);
    const record = (buffer, offset, size) => {
      const v = new DataView(memory.buffer, 1000, 24);
      v.setUint32(0, buffer, true);
      v.setUint32(4, 0, true);
      v.setBigUint64(8, BigInt(offset), true);
      v.setBigUint64(16, BigInt(size), true);
      return 1000;
    };
    const cases = [
      [() => imports.dispatch(p, 0, 8, record(b, 0, 0), 1, 1, 1, 1), CODE.ARGUMENT, 'webgpu: bad argument: dispatch: 8 bytes of params (want a multiple of 16 up to 256)'],
      [() => imports.dispatch(p, 0, 16, record(b, 0, 0), 2, 1, 1, 1), CODE.ARGUMENT, 'webgpu: bad argument: dispatch: 2 bindings for a pipeline with 1'],
      [() => imports.dispatch(p, 0, 16, record(b, 0, 0), 1, 0, 1, 1), CODE.ARGUMENT, 'webgpu: bad argument: dispatch: workgroups [0 1 1] (each 1 to 65535)'],
      [() => imports.dispatch(p, 0, 16, record(99, 0, 0), 1, 1, 1, 1), CODE.HANDLE, 'dispatch binding 1: webgpu: bad handle: buffer 99'],
      [() => imports.dispatch(p, 0, 16, record(b, 512, 1024), 1, 1, 1, 1), CODE.RANGE, 'webgpu: out of range: dispatch binding 1: bytes [512, 1536) of a 1024-byte buffer'],
      [() => imports.dispatch(p, 0, 16, record(b, 4, 0), 1, 1, 1, 1), CODE.ARGUMENT, 'webgpu: bad argument: dispatch binding 1: 1020 bytes at offset 4 (limit 65536 bytes, alignment 256)'],
    ];
    for (const [call, code, message] of cases) {
      assert.equal(call(), code, `${call}`);
      assert.equal(lastError(), message, `${call}`);
    }
    assert.equal(imports.dispatch(p, 0, 16, record(b, 256, 0), 1, 2, 1, 1), 0);
  });

  it('read: a ticket, 0 while the map is pending, then the bytes; params get a slot per dispatch', async () => {
    const { host, imports, submitted, map } = setup();
    imports.open();
    const b = imports.buffer_create(16n);
    bytes.set([1, 2, 3, 4, 5, 6, 7, 8], 2000);
    assert.equal(imports.buffer_write(b, 8n, 2000, 8), 0);
    const p = imports.pipeline_create(0, 4, 0);
    bytes.fill(7, 3000, 3016);
    assert.equal(imports.dispatch(p, 3000, 16, 0, 0, 1, 1, 1), 0);
    bytes.fill(9, 3000, 3016);
    assert.equal(imports.dispatch(p, 3000, 16, 0, 0, 3, 1, 1), 0);
    const t = imports.read(b, 8n, 8n);
    assert.ok(t > b);
    assert.deepEqual(submitted.flat(), [['dispatch', 1, 1, 1], ['dispatch', 3, 1, 1], ['copy', 8]], 'read submits what was recorded, then copies');
    assert.deepEqual([...host.uniform.data.subarray(0, 2)], [7, 7], 'the first dispatch kept its own params');
    assert.deepEqual([...host.uniform.data.subarray(256, 258)], [9, 9], 'the second has the next 256-byte slot');
    assert.equal(imports.read_result(t, 4000, 4), CODE.ARGUMENT);
    assert.equal(imports.read_result(t, 4000, 8), 0, 'pending until mapped');
    const settled = host.settled();
    assert.ok(settled, 'something is in flight to wait for');
    map();
    await settled;
    assert.equal(host.settled(), null);
    assert.equal(imports.read_result(t, 4000, 8), 1);
    assert.deepEqual([...bytes.subarray(4000, 4008)], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(imports.read_result(t, 4000, 8), CODE.HANDLE, 'the ticket is freed');
  });

  it('an asynchronous GPU error fails every later call, read_result included', async () => {
    const { host, imports, lastError, map } = setup();
    imports.open();
    host.device.popErrorScope = () => Promise.resolve({ message: 'shader does not compile\n' });
    const p = imports.pipeline_create(0, 4, 0);
    assert.ok(p > 0, 'the error arrives later');
    const b = imports.buffer_create(16n);
    const t = imports.read(b, 0n, 4n);
    map();
    await host.settled();
    assert.equal(imports.read_result(t, 0, 4), CODE.GPU);
    assert.equal(lastError(), 'webgpu: GPU error: compile WGSL: shader does not compile');
    assert.equal(imports.submit(), CODE.GPU);
  });
});

describe('the micro-benchmark', () => {
  const info = {
    granularities: ['S', 'M'],
    header: { config: { vocab: 256, dim: 64, layers: 4, heads: 4, ffn_widths: [32, 64], context: 256 } },
  };

  it('decodeWork is planner.DecodeWork', () => {
    // S of the default model at position 0: non-embedding 90688 (matedge inspect), + the head.
    assert.deepEqual(decodeWork(info.header.config, [0, 0, 0, 0], 0), { bytes: 4 * (90688 + 256 * 64 + 64 + 2 * 4 * 64), flops: 2 * (90688 + 256 * 64) + 2 * 2 * 4 * 64 });
  });

  it('spends at most its budget across backends, at least one step each', async () => {
    for (const [gpuStep, cpuStep] of [[30, 2], [170, 2], [250, 2], [1, 1]]) {
      let clock = 0;
      let backend = null;
      let ended = 0;
      const mod = {
        benchStart: (o) => { backend = o.backend; },
        benchNext: async () => { clock += backend === 'gpu' ? gpuStep : cpuStep; return 0; },
        benchEnd: () => { ended++; },
      };
      const got = await benchmark(mod, info, ['gpu', 'cpu'], { limitMs: 200, now: () => clock });
      const spent = got.reduce((n, b) => n + b.durationMillis, 0);
      const steps = got.map((b) => Number(/^(\d+) /.exec(b.method)[1]));
      assert.ok(steps.every((n) => n >= 1), `steps ${steps}`);
      // Over budget only by the steps that must run: the first of each backend.
      assert.ok(spent <= Math.max(200, gpuStep + cpuStep), `${gpuStep}/${cpuStep} ms steps: spent ${spent} ms`);
      assert.equal(ended, 1, 'the synthetic model is dropped once measured');
    }
  });
});
