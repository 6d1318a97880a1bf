// matvec: out[out_offset + r] = Σ_c w[w_offset + r·cols + c] · x[x_offset + c]
// for r < rows, as model.MatVec. A nested FFN width is a smaller rows; a
// routed variant stops at the token's own (token_rows: rows.wgsl or
// routed.wgsl). One invocation per output row, summing left to right like
// model.Dot.

@group(0) @binding(1) var<storage, read> w: array<f32>;          // [rows][cols] from w_offset
@group(0) @binding(2) var<storage, read> x: array<f32>;          // [cols] from x_offset
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [rows] from out_offset

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&w) == 0u));
    let r = flat_index(gid, nwg);
    if (r >= token_rows(p, 0u)) {
        return;
    }
    let base = p.w_offset + r * p.cols;
    var acc = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        acc += w[base + c] * x[p.x_offset + c];
    }
    out[p.out_offset + r] = acc;
}
