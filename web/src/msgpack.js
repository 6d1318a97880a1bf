// msgpack: the subset of MessagePack (https://msgpack.org/) that the matedge
// ABI documents use — nil, bool, ints up to 64 bits, float32/64, str, bin,
// array, map. Extension types are refused. No dependencies.
//
// Integers decode to Number when they fit in 2^53, else to BigInt. Maps decode
// to plain objects (the module's maps have string keys). Encoding picks the
// shortest form; wrap a number in `float32(x)` for a field the Go side
// declares float32 (msgpack/v5 refuses a float64 there).

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Float32 marks a number to encode as a msgpack float32. */
export class Float32 {
  constructor(value) { this.value = value; }
}

/** float32(x) encodes x as a msgpack float32 (0xca). */
export const float32 = (value) => new Float32(value);

/** encode returns the msgpack bytes of value. */
export function encode(value) {
  const out = new Writer();
  write(out, value);
  return out.bytes();
}

/** decode reads one msgpack value that spans all of bytes. */
export function decode(bytes) {
  const r = new Reader(bytes);
  const value = read(r);
  if (r.pos !== bytes.length) {
    throw new Error(`msgpack: ${bytes.length - r.pos} trailing bytes after the value`);
  }
  return value;
}

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  reserve(n) {
    if (this.pos + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
  u8(v) { this.reserve(1); this.buf[this.pos++] = v; }
  u16(v) { this.reserve(2); this.view.setUint16(this.pos, v); this.pos += 2; }
  u32(v) { this.reserve(4); this.view.setUint32(this.pos, v); this.pos += 4; }
  raw(b) { this.reserve(b.length); this.buf.set(b, this.pos); this.pos += b.length; }
  bytes() { return this.buf.slice(0, this.pos); }
}

function write(w, v) {
  if (v === null || v === undefined) return w.u8(0xc0);
  switch (typeof v) {
    case 'boolean': return w.u8(v ? 0xc3 : 0xc2);
    case 'number':
      if (Number.isSafeInteger(v)) return writeInt(w, BigInt(v));
      w.u8(0xcb); w.reserve(8); w.view.setFloat64(w.pos, v); w.pos += 8;
      return;
    case 'bigint': return writeInt(w, v);
    case 'string': {
      const b = textEncoder.encode(v);
      if (b.length < 32) w.u8(0xa0 | b.length);
      else if (b.length < 0x100) { w.u8(0xd9); w.u8(b.length); }
      else if (b.length < 0x10000) { w.u8(0xda); w.u16(b.length); }
      else { w.u8(0xdb); w.u32(b.length); }
      return w.raw(b);
    }
  }
  if (v instanceof Float32) {
    w.u8(0xca); w.reserve(4); w.view.setFloat32(w.pos, v.value); w.pos += 4;
    return;
  }
  if (v instanceof Uint8Array) {
    if (v.length < 0x100) { w.u8(0xc4); w.u8(v.length); }
    else if (v.length < 0x10000) { w.u8(0xc5); w.u16(v.length); }
    else { w.u8(0xc6); w.u32(v.length); }
    return w.raw(v);
  }
  if (Array.isArray(v)) {
    writeLength(w, v.length, 0x90, 0xdc);
    for (const item of v) write(w, item);
    return;
  }
  if (typeof v === 'object') {
    const entries = (v instanceof Map ? [...v] : Object.entries(v)).filter(([, x]) => x !== undefined);
    writeLength(w, entries.length, 0x80, 0xde);
    for (const [k, x] of entries) { write(w, k); write(w, x); }
    return;
  }
  throw new TypeError(`msgpack: cannot encode a ${typeof v}`);
}

// writeLength writes an array (fix 0x90, 0xdc) or map (fix 0x80, 0xde) header.
function writeLength(w, n, fix, code16) {
  if (n < 16) w.u8(fix | n);
  else if (n < 0x10000) { w.u8(code16); w.u16(n); }
  else { w.u8(code16 + 1); w.u32(n); }
}

function writeInt(w, n) {
  if (n >= 0n) {
    if (n < 0x80n) return w.u8(Number(n));
    if (n < 0x100n) { w.u8(0xcc); return w.u8(Number(n)); }
    if (n < 0x10000n) { w.u8(0xcd); return w.u16(Number(n)); }
    if (n < 0x100000000n) { w.u8(0xce); return w.u32(Number(n)); }
    if (n >= 1n << 64n) throw new RangeError(`msgpack: ${n} does not fit in 64 bits`);
    w.u8(0xcf); w.reserve(8); w.view.setBigUint64(w.pos, n); w.pos += 8;
    return;
  }
  if (n >= -32n) return w.u8(Number(n) & 0xff);
  if (n >= -0x80n) { w.u8(0xd0); w.reserve(1); w.view.setInt8(w.pos++, Number(n)); return; }
  if (n >= -0x8000n) { w.u8(0xd1); w.reserve(2); w.view.setInt16(w.pos, Number(n)); w.pos += 2; return; }
  if (n >= -0x80000000n) { w.u8(0xd2); w.reserve(4); w.view.setInt32(w.pos, Number(n)); w.pos += 4; return; }
  if (n < -(1n << 63n)) throw new RangeError(`msgpack: ${n} does not fit in 64 bits`);
  w.u8(0xd3); w.reserve(8); w.view.setBigInt64(w.pos, n); w.pos += 8;
}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }
  need(n) {
    if (this.pos + n > this.bytes.length) {
      throw new Error(`msgpack: truncated at byte ${this.pos} (need ${n} more)`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8() { return this.view.getUint8(this.need(1)); }
  u16() { return this.view.getUint16(this.need(2)); }
  u32() { return this.view.getUint32(this.need(4)); }
  take(n) { const at = this.need(n); return this.bytes.subarray(at, at + n); }
}

// small turns a 64-bit BigInt into a Number when no precision is lost.
const small = (n) => (n >= -BigInt(Number.MAX_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);

function read(r) {
  const c = r.u8();
  if (c < 0x80) return c;
  if (c >= 0xe0) return c - 0x100;
  if (c < 0x90) return readMap(r, c & 0x0f);
  if (c < 0xa0) return readArray(r, c & 0x0f);
  if (c < 0xc0) return textDecoder.decode(r.take(c & 0x1f));
  switch (c) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return r.take(r.u8()).slice();
    case 0xc5: return r.take(r.u16()).slice();
    case 0xc6: return r.take(r.u32()).slice();
    case 0xca: return r.view.getFloat32(r.need(4));
    case 0xcb: return r.view.getFloat64(r.need(8));
    case 0xcc: return r.u8();
    case 0xcd: return r.u16();
    case 0xce: return r.u32();
    case 0xcf: return small(r.view.getBigUint64(r.need(8)));
    case 0xd0: return r.view.getInt8(r.need(1));
    case 0xd1: return r.view.getInt16(r.need(2));
    case 0xd2: return r.view.getInt32(r.need(4));
    case 0xd3: return small(r.view.getBigInt64(r.need(8)));
    case 0xd9: return textDecoder.decode(r.take(r.u8()));
    case 0xda: return textDecoder.decode(r.take(r.u16()));
    case 0xdb: return textDecoder.decode(r.take(r.u32()));
    case 0xdc: return readArray(r, r.u16());
    case 0xdd: return readArray(r, r.u32());
    case 0xde: return readMap(r, r.u16());
    case 0xdf: return readMap(r, r.u32());
  }
  throw new Error(`msgpack: unsupported type byte 0x${c.toString(16)} at byte ${r.pos - 1}`);
}

function readArray(r, n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = read(r);
  return out;
}

function readMap(r, n) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const key = read(r);
    Object.defineProperty(out, String(key), { value: read(r), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
