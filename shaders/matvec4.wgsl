// matvec4: matvec (out[out_offset + r] = Σ_c w[w_offset + r·cols + c] ·
// x[x_offset + c] for r < rows) register-blocked for decode: each invocation
// computes 4 rows, reading weights and input as vec4, so every x load serves
// 4 rows and every weight load 4 columns. On lavapipe it runs 2–6× faster
// than matvec (BenchmarkMatVec). cols, w_offset and x_offset are multiples
// of 4; the engine uses matvec otherwise. Each row sums 4 columns at a time
// (a dot product of vec4s), so it rounds differently from model.Dot's
// left-to-right sum by a few ulps. Rows stop at token_rows, as matvec's;
// a row's sum does not depend on how many rows are stored.

@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;    // [rows][cols/4] from w_offset/4
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;    // [cols/4] from x_offset/4
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [rows] from out_offset

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&w) == 0u));
    let r0 = flat_index(gid, nwg) * 4u;
    let rows = token_rows(p, 0u);
    if (r0 >= rows) {
        return;
    }
    let quads = p.cols / 4u;
    let wb = p.w_offset / 4u;
    // Rows past the end repeat the last one; their sums are not stored.
    let b0 = wb + r0 * quads;
    let b1 = wb + min(r0 + 1u, p.rows - 1u) * quads;
    let b2 = wb + min(r0 + 2u, p.rows - 1u) * quads;
    let b3 = wb + min(r0 + 3u, p.rows - 1u) * quads;
    let xb = p.x_offset / 4u;
    var acc = vec4<f32>(0.0);
    for (var c = 0u; c < quads; c++) {
        let xv = x[xb + c];
        acc += vec4<f32>(dot(w[b0 + c], xv), dot(w[b1 + c], xv), dot(w[b2 + c], xv), dot(w[b3 + c], xv));
    }
    for (var i = 0u; i < 4u; i++) {
        if (r0 + i < rows) {
            out[p.out_offset + r0 + i] = acc[i];
        }
    }
}
