// softmax: x[r] = exp(x[r] - max) / Σ exp(x[r] - max) in place, for rows rows
// of length n, as model.Softmax. One workgroup per row.

@group(0) @binding(1) var<storage, read_write> x: array<f32>;  // [rows][n]

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&x) == 0u));
    let row = flat_group(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var m = LOWEST;
    for (var i = lid; i < p.n; i += WG) {
        m = max(m, x[base + i]);
    }
    m = reduce_max(m, lid);

    var sum = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let e = exp(x[base + i] - m);
        x[base + i] = e;
        sum += e;
    }
    sum = reduce_sum(sum, lid);
    for (var i = lid; i < p.n; i += WG) {
        x[base + i] /= sum;
    }
}
