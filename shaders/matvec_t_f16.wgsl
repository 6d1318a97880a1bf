// matvec_t_f16: matvec_t with f16 weights packed two per u32 (columns 2i, 2i+1;
// cols is even). Each invocation computes the two outputs of one word column.
// Offsets into w count u32 words. It sums token_rows rows, as matvec_t.

@group(0) @binding(1) var<storage, read> w: array<u32>;          // [rows][cols/2] from w_offset
@group(0) @binding(2) var<storage, read> x: array<f32>;          // [rows] from x_offset
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [cols] from out_offset

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&w) == 0u));
    let i = flat_index(gid, nwg);
    let half = p.cols / 2u;
    if (i >= half) {
        return;
    }
    let rows = token_rows(p, 0u);
    var acc = vec2<f32>(0.0, 0.0);
    for (var j = 0u; j < rows; j++) {
        acc += x[p.x_offset + j] * unpack2x16float(w[p.w_offset + j * half + i]);
    }
    out[p.out_offset + 2u * i] = acc.x;
    out[p.out_offset + 2u * i + 1u] = acc.y;
}
