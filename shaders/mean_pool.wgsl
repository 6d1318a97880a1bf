// mean_pool: out[i] = (Σ_r x[r][i]) · scale, a vision model's pooling over
// its patches (model's meanPool, scale = 1/rows computed on the host): the
// sum runs over r in order and is scaled once, as there, so the two agree
// bit for bit.

@group(0) @binding(1) var<storage, read> x: array<f32>;          // [rows][n]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [n]

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&x) == 0u));
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        s += x[r * p.n + i];
    }
    out[i] = s * p.scale;
}
