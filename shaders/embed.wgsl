// embed: out[r] = table[tokens[token_offset + r]] for r < count.
// Token ids past the vocabulary read the last row rather than out of bounds.

struct Params { dim: u32, count: u32, vocab: u32, token_offset: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;      // [vocab][dim]
@group(0) @binding(2) var<storage, read> tokens: array<u32>;     // [token_offset + count]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [count][dim]

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.count * p.dim) {
        return;
    }
    let row = i / p.dim;
    let token = min(tokens[p.token_offset + row], p.vocab - 1u);
    out[i] = table[token * p.dim + i % p.dim];
}
