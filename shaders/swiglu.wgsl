// swiglu: out[j] = silu(gate[j]) · up[j], silu(z) = z / (1 + e^-z), as model.SwiGLU.

@group(0) @binding(1) var<storage, read> gate: array<f32>;       // [n]
@group(0) @binding(2) var<storage, read> up: array<f32>;         // [n]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [n]

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&gate) == 0u));
    let j = flat_index(gid, nwg);
    if (j >= p.n) {
        return;
    }
    let g = gate[j];
    out[j] = g / (1.0 + exp(-g)) * up[j];
}
