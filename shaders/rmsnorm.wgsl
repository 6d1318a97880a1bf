// rmsnorm: out[r] = x[r] / rms(x[r]) · gain for each of rows rows of length n,
// as model.RMSNorm. One workgroup per row; the sum of squares is a
// workgroup sum (reduce.wgsl).

@group(0) @binding(1) var<storage, read> x: array<f32>;          // [rows][n]
@group(0) @binding(2) var<storage, read> gain: array<f32>;       // [n]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [rows][n]

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&x) == 0u));
    let row = flat_group(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var ss = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[base + i];
        ss += v * v;
    }
    let inv = 1.0 / sqrt(reduce_sum(ss, lid) / f32(p.n) + p.eps);
    for (var i = lid; i < p.n; i += WG) {
        out[base + i] = x[base + i] * inv * gain[i];
    }
}
