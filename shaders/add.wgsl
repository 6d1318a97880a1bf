// add: x += y, the residual connection, as model.Add.

@group(0) @binding(1) var<storage, read> y: array<f32>;        // [n]
@group(0) @binding(2) var<storage, read_write> x: array<f32>;  // [n]

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&y) == 0u));
    let i = flat_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    x[i] += y[i];
}
