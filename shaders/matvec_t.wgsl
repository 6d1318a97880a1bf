// matvec_t: out[out_offset + i] = Σ_j<rows x[x_offset + j] · w[w_offset + j·cols + i]
// for i < cols, as model.MatTVec: the FFN down projection, whose matrix is
// stored neuron-major [hidden][dim]. A nested width is a smaller rows; a
// routed variant sums the token's own (token_rows: rows.wgsl or
// routed.wgsl). One
// invocation per output, summing over neurons in order; neighbouring
// invocations read neighbouring weights.

@group(0) @binding(1) var<storage, read> w: array<f32>;          // [rows][cols] from w_offset
@group(0) @binding(2) var<storage, read> x: array<f32>;          // [rows] from x_offset
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [cols] from out_offset

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&w) == 0u));
    let i = flat_index(gid, nwg);
    if (i >= p.cols) {
        return;
    }
    let rows = token_rows(p, 0u);
    var acc = 0.0;
    for (var j = 0u; j < rows; j++) {
        acc += x[p.x_offset + j] * w[p.w_offset + j * p.cols + i];
    }
    out[p.out_offset + i] = acc;
}
