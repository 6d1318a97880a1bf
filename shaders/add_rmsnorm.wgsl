// add_rmsnorm: x[r] += y[r], then out[r] = x[r] / rms(x[r]) · gain, for each
// of rows rows of length n: the residual connection and the next norm in one
// dispatch, as model.Add then model.RMSNorm. One workgroup per row; each
// invocation normalizes the elements it added, so no storage barrier is needed.

@group(0) @binding(1) var<storage, read> y: array<f32>;          // [rows][n]
@group(0) @binding(2) var<storage, read> gain: array<f32>;       // [n]
@group(0) @binding(3) var<storage, read_write> x: array<f32>;    // [rows][n]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // [rows][n]

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&y) == 0u));
    let row = flat_group(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var ss = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i] + y[base + i];
        x[base + i] = v;
        ss += v * v;
    }
    let inv = 1.0 / sqrt(reduce_sum(ss, lid) / f32(p.n) + p.eps);
    for (var i = lid; i < p.n; i += WG) {
        out[base + i] = x[base + i] * inv * gain[i];
    }
}
