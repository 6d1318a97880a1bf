// matvec_f16: matvec with f16 weights packed two per u32 (column 2i in the low
// half, 2i+1 in the high half; cols is even). Offsets into w count u32 words.
// Rows stop at token_rows, as matvec's.

@group(0) @binding(1) var<storage, read> w: array<u32>;          // [rows][cols/2] from w_offset
@group(0) @binding(2) var<storage, read> x: array<f32>;          // [cols] from x_offset
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [rows] from out_offset

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&w) == 0u));
    let r = flat_index(gid, nwg);
    if (r >= token_rows(p, 0u)) {
        return;
    }
    let half = p.cols / 2u;
    let base = p.w_offset + r * half;
    var acc = 0.0;
    for (var c = 0u; c < half; c++) {
        let pair = unpack2x16float(w[base + c]);
        acc += pair.x * x[p.x_offset + 2u * c];
        acc += pair.y * x[p.x_offset + 2u * c + 1u];
    }
    out[p.out_offset + r] = acc;
}
