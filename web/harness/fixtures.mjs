// fixtures: tiny hand-assembled wasm modules for the runtime's error paths.

const section = (id, body) => [id, body.length, ...body];
const name = (s) => [s.length, ...new TextEncoder().encode(s)];

/**
 * wrongABIModule is a 79-byte module that looks like a matedge reactor from
 * outside — memory, _initialize, abi_version — but reports ABI `version`.
 */
export function wrongABIModule(version) {
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    ...section(1, [2, 0x60, 0, 1, 0x7f, 0x60, 0, 0]), // types: () → i32, () → ()
    ...section(3, [2, 0, 1]), // functions: abi_version, _initialize
    ...section(5, [1, 0, 1]), // one memory, 1 page
    ...section(7, [3, ...name('abi_version'), 0, 0, ...name('_initialize'), 0, 1, ...name('memory'), 2, 0]),
    ...section(10, [2, 4, 0, 0x41, version, 0x0b, 2, 0, 0x0b]), // i32.const version; (empty)
  ]);
}
