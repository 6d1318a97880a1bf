// kernels: the `kernels` import module of matedge.wasm (wasm/ABI.md, Imports),
// served by the SIMD128 companion module kernels.wasm (wasm/kernels). The
// companion imports the matedge module's memory as env.memory; each import
// of the matedge module is a trampoline to the companion's export of the same
// name. Without the companion (an engine without SIMD128, or on request) the
// `version` import answers 0 and the module runs its plain-Go kernels: the
// same tokens, slower.

/** KERNELS_VERSION is what kernels.wasm's version export returns (wasm/kernels.Version). */
export const KERNELS_VERSION = 2;

/** KERNEL_FUNCTIONS are the imports forwarded to kernels.wasm, besides version. */
export const KERNEL_FUNCTIONS = ['matvec', 'matvec_t', 'matmul', 'matmul_t', 'softmax', 'swiglu', 'rmsnorm', 'rope', 'add', 'scale', 'argmax', 'attention'];

/**
 * fetchKernels downloads and compiles kernels.wasm; it resolves to null when
 * this engine cannot compile SIMD128 (the module then runs its Go kernels).
 * A failed download is an error: a server that serves matedge.wasm serves
 * kernels.wasm next to it. So is a kernels.wasm that lacks one of
 * KERNEL_FUNCTIONS (an older one, from a stale cache): the module would call
 * a kernel it does not have.
 */
export async function fetchKernels(url, { fetch = globalThis.fetch } = {}) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`matedge: GET ${url}: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  if (!WebAssembly.validate(bytes)) return null;
  const compiled = await WebAssembly.compile(bytes);
  const exported = new Set(WebAssembly.Module.exports(compiled).map((e) => e.name));
  const missing = ['version', ...KERNEL_FUNCTIONS].filter((name) => !exported.has(name));
  if (missing.length > 0) {
    throw new Error(`matedge: ${url} exports no ${missing.join(', ')}: it is older than this runtime (kernels version ${KERNELS_VERSION}); serve the kernels.wasm built with it`);
  }
  return compiled;
}

/**
 * KernelHost is the `kernels` import module for one matedge instance.
 * `compiled` is kernels.wasm (from fetchKernels), or null for the Go kernels.
 */
export class KernelHost {
  constructor(compiled = null) {
    this.compiled = compiled;
    /** The kernel set the module will run: 'simd' or 'go'. */
    this.name = compiled ? 'simd' : 'go';
    /** Kernel calls forwarded so far (tests check the module uses them). */
    this.calls = 0;
    this.exports = null;
  }

  /** imports returns the import object; link must run before the module's first kernel call. */
  imports() {
    const version = this.compiled ? KERNELS_VERSION : 0;
    const imports = { version: () => version };
    for (const name of KERNEL_FUNCTIONS) {
      imports[name] = (...args) => {
        if (!this.exports) throw new Error(`matedge: kernels.${name} called, but kernels.wasm is not linked`);
        this.calls++;
        this.exports[name](...args);
      };
    }
    return imports;
  }

  /** link instantiates kernels.wasm on the matedge module's memory. */
  link(memory) {
    if (!this.compiled) return;
    this.exports = new WebAssembly.Instance(this.compiled, { env: { memory } }).exports;
  }
}
