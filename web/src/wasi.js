// wasi: the WASI preview 1 imports (module "wasi_snapshot_preview1") that a Go
// wasip1 reactor links, and no more. The matedge module has no files, no
// arguments and no environment; it writes to stdout/stderr (logged to the
// console, one line at a time) and reads the clock. random_get returns zeros,
// as the Go host does: the module seeds its own sampler, and nothing it
// computes may depend on host randomness.
//
// Any other preview 1 function the module imports answers ENOSYS, so a Go
// upgrade that links one more never fails to instantiate; a call to it is
// logged once.

const SUCCESS = 0;
const EBADF = 8;
const EINVAL = 28;
const ENOSYS = 52;

const CLOCK_REALTIME = 0;
const CLOCK_MONOTONIC = 1;
const FILETYPE_CHARACTER_DEVICE = 2;
const EVENTTYPE_CLOCK = 0;

/** ProcExit is thrown by proc_exit to unwind the module; the instance is dead after it. */
export class ProcExit extends Error {
  constructor(code) {
    super(`matedge: module exited with code ${code}`);
    this.code = code;
  }
}

/**
 * WASI holds the imports for one instance. Create it, pass `wasi.imports` as
 * the `wasi_snapshot_preview1` import module, then call `wasi.initialize(instance)`.
 */
export class WASI {
  constructor({ stdout = (line) => console.log(line), stderr = (line) => console.error(line) } = {}) {
    this.memory = null;
    this.sinks = { 1: new LineSink(stdout), 2: new LineSink(stderr) };
    this.warned = new Set();
    const mem = () => new DataView(this.memory.buffer);
    const bytes = (ptr, len) => new Uint8Array(this.memory.buffer, ptr, len);
    const origin = performance.timeOrigin;

    this.imports = {
      args_sizes_get: (argc, bufSize) => { mem().setUint32(argc, 0, true); mem().setUint32(bufSize, 0, true); return SUCCESS; },
      args_get: () => SUCCESS,
      environ_sizes_get: (count, bufSize) => { mem().setUint32(count, 0, true); mem().setUint32(bufSize, 0, true); return SUCCESS; },
      environ_get: () => SUCCESS,

      // clock_time_get(id, precision u64, time *u64): nanoseconds.
      clock_time_get: (id, _precision, timePtr) => {
        let ms;
        if (id === CLOCK_REALTIME) ms = origin + performance.now();
        else if (id === CLOCK_MONOTONIC) ms = performance.now();
        else return EINVAL;
        mem().setBigUint64(timePtr, BigInt(Math.round(ms * 1e6)), true);
        return SUCCESS;
      },

      random_get: (ptr, len) => { bytes(ptr, len).fill(0); return SUCCESS; },

      // fd_write(fd, iovs *[ptr u32, len u32], iovsLen, nwritten *u32).
      fd_write: (fd, iovs, iovsLen, nwrittenPtr) => {
        const sink = this.sinks[fd];
        if (!sink) return EBADF;
        const view = mem();
        let n = 0;
        for (let i = 0; i < iovsLen; i++) {
          const ptr = view.getUint32(iovs + 8 * i, true);
          const len = view.getUint32(iovs + 8 * i + 4, true);
          sink.write(bytes(ptr, len));
          n += len;
        }
        view.setUint32(nwrittenPtr, n, true);
        return SUCCESS;
      },
      // stdin is empty; there are no other files.
      fd_read: (fd, _iovs, _iovsLen, nreadPtr) => {
        if (fd !== 0) return EBADF;
        mem().setUint32(nreadPtr, 0, true);
        return SUCCESS;
      },
      fd_close: (fd) => (fd <= 2 ? SUCCESS : EBADF),
      // fdstat: filetype u8 @0, flags u16 @2, rights_base u64 @8, rights_inheriting u64 @16.
      fd_fdstat_get: (fd, ptr) => {
        if (fd > 2) return EBADF;
        bytes(ptr, 24).fill(0);
        const view = mem();
        view.setUint8(ptr, FILETYPE_CHARACTER_DEVICE);
        view.setBigUint64(ptr + 8, 0xffffffffn, true);
        return SUCCESS;
      },
      fd_fdstat_set_flags: (fd) => (fd <= 2 ? SUCCESS : EBADF),
      // No preopened directories: EBADF tells the Go runtime the list has ended.
      fd_prestat_get: () => EBADF,
      fd_prestat_dir_name: () => EBADF,

      // poll_oneoff(in *[subscription 48 B], out *[event 32 B], n, nevents *u32).
      // A page cannot block, so every subscription is reported ready at once;
      // a Go timer that has not expired yet simply polls again.
      poll_oneoff: (inPtr, outPtr, n, neventsPtr) => {
        const view = mem();
        for (let i = 0; i < n; i++) {
          const sub = inPtr + 48 * i;
          const ev = outPtr + 32 * i;
          bytes(ev, 32).fill(0);
          view.setBigUint64(ev, view.getBigUint64(sub, true), true); // userdata
          const type = view.getUint8(sub + 8);
          view.setUint16(ev + 8, type === EVENTTYPE_CLOCK ? SUCCESS : EBADF, true); // error
          view.setUint8(ev + 10, type);
        }
        view.setUint32(neventsPtr, n, true);
        return SUCCESS;
      },
      sched_yield: () => SUCCESS,
      proc_exit: (code) => { throw new ProcExit(code); },
    };
  }

  /**
   * importsFor returns the preview 1 import object for a compiled module:
   * the functions above, and ENOSYS for any other it names.
   */
  importsFor(module) {
    const out = { ...this.imports };
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.module !== 'wasi_snapshot_preview1' || imp.kind !== 'function' || imp.name in out) continue;
      out[imp.name] = () => {
        if (!this.warned.has(imp.name)) {
          this.warned.add(imp.name);
          console.warn(`matedge: WASI ${imp.name} is not implemented (ENOSYS)`);
        }
        return ENOSYS;
      };
    }
    return out;
  }

  /** initialize binds the instance's memory and runs the reactor's _initialize. */
  initialize(instance) {
    this.memory = instance.exports.memory;
    instance.exports._initialize?.();
  }

  /** flush writes out a partial last line on stdout and stderr. */
  flush() {
    for (const sink of Object.values(this.sinks)) sink.flush();
  }
}

// LineSink turns fd_write's byte stream into whole UTF-8 lines.
class LineSink {
  constructor(emit) {
    this.emit = emit;
    this.decoder = new TextDecoder();
    this.pending = '';
  }
  write(b) {
    this.pending += this.decoder.decode(b, { stream: true });
    let nl;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      this.emit(this.pending.slice(0, nl));
      this.pending = this.pending.slice(nl + 1);
    }
  }
  flush() {
    this.pending += this.decoder.decode();
    if (this.pending) this.emit(this.pending);
    this.pending = '';
  }
}
