// rope: rotates each pair (x[2i], x[2i+1]) of every head, in place, as
// model.Rope. x holds rows rows of n = heads·head_dim values from x_offset;
// row r is at position pos + r, whose angles are row pos + r of the uploaded
// tables (model.RopeTable), so the GPU rotates by exactly the CPU's numbers.

@group(0) @binding(1) var<storage, read> cos_table: array<f32>;      // [context][head_dim/2]
@group(0) @binding(2) var<storage, read> sin_table: array<f32>;      // [context][head_dim/2]
@group(0) @binding(3) var<storage, read_write> x: array<f32>;  // [rows][n] from x_offset

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&cos_table) == 0u));
    let k = flat_index(gid, nwg);
    let pairs = p.n / 2u;
    if (k >= p.rows * pairs) {
        return;
    }
    let row = k / pairs;
    let half = p.head_dim / 2u;
    let angle = (p.pos + row) * half + (k % pairs) % half;
    let e = p.x_offset + 2u * k;
    let a = x[e];
    let b = x[e + 1u];
    x[e] = a * cos_table[angle] - b * sin_table[angle];
    x[e + 1u] = a * sin_table[angle] + b * cos_table[angle];
}
