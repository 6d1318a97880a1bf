// matmul_t: out[out_offset + t·cols + i] = Σ_j<rows x[x_offset + t·rows + j] ·
// w[w_offset + j·cols + i] for tokens t < tokens and i < cols: matvec_t (the
// FFN down projection, neuron-major [hidden][dim]) for a batch of tokens, in
// one dispatch instead of one per token. Each invocation computes one column
// for TILE tokens, reading each weight once for all of them; every sum runs
// over neurons in order, as matvec_t's.

@group(0) @binding(1) var<storage, read> w: array<f32>;          // [rows][cols] from w_offset
@group(0) @binding(2) var<storage, read> x: array<f32>;          // [tokens][rows] from x_offset
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [tokens][cols] from out_offset

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&w) == 0u));
    let f = flat_index(gid, nwg);
    let i = f % p.cols;
    let t0 = (f / p.cols) * TILE;
    if (t0 >= p.tokens) {
        return;
    }
    var xb: array<u32, TILE>;
    for (var k = 0u; k < TILE; k++) {
        xb[k] = p.x_offset + min(t0 + k, p.tokens - 1u) * p.rows;
    }
    var acc: array<f32, TILE>;
    for (var j = 0u; j < p.rows; j++) {
        let wv = w[p.w_offset + j * p.cols + i];
        for (var k = 0u; k < TILE; k++) {
            acc[k] += x[xb[k] + j] * wv;
        }
    }
    for (var k = 0u; k < TILE; k++) {
        if (t0 + k < p.tokens) {
            out[p.out_offset + (t0 + k) * p.cols + i] = acc[k];
        }
    }
}
