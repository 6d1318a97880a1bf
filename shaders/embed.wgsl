// embed: out[r] = table[tokens[token_offset + r]] for r < count, where the
// bound table holds rows [first_row, first_row + vocab) of the embedding. A
// table larger than one storage binding is gathered slab by slab: each
// dispatch writes only the rows whose token lies in its slab, so ids outside
// it (or past the vocabulary) are skipped, never read out of bounds.

@group(0) @binding(1) var<storage, read> table: array<f32>;      // [vocab][dim]: rows first_row…
@group(0) @binding(2) var<storage, read> tokens: array<u32>;     // [token_offset + count]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [count][dim]

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&table) == 0u));
    let i = flat_index(gid, nwg);
    if (i >= p.count * p.dim) {
        return;
    }
    let token = tokens[p.token_offset + i / p.dim];
    if (token < p.first_row || token - p.first_row >= p.vocab) {
        return;
    }
    out[i] = table[(token - p.first_row) * p.dim + i % p.dim];
}
