// webgpu-none: the `webgpu` import module (webgpu/ABI.md) for a runtime that
// offers the module no GPU. `open` answers ErrNoAdapter, so the engine runs
// its CPU backend — the same answer host/webgpuhost.NoGPU gives under wazero.
// The WebGPU implementation over navigator.gpu replaces this table.

/** WEBGPU_ABI_VERSION is the version of webgpu/ABI.md these imports speak. */
export const WEBGPU_ABI_VERSION = 1;

const ERR_NO_ADAPTER = -1;
const MESSAGE = new TextEncoder().encode('webgpu: no adapter: this runtime offers no GPU');

/** noGPU returns the import object; memory() gives the module's memory once it exists. */
export function noGPU(memory) {
  const none = () => ERR_NO_ADAPTER;
  return {
    abi_version: () => WEBGPU_ABI_VERSION,
    open: none,
    info: none,
    last_error: (ptr, cap) => {
      const n = Math.min(cap >>> 0, MESSAGE.length);
      new Uint8Array(memory().buffer, ptr >>> 0, n).set(MESSAGE.subarray(0, n));
      return n;
    },
    buffer_create: none,
    buffer_write: none,
    buffer_destroy: none,
    pipeline_create: none,
    dispatch: none,
    copy: none,
    submit: none,
    read: none,
    read_result: none,
    close: none,
  };
}
