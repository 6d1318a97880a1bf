// matmul: out[t][r] = Σ_c w[r][c] · x[t][c] for tokens t < tokens and rows
// r < rows: matvec for a batch of tokens (prefill). Register blocked: each
// invocation computes TILE rows × TILE tokens, which beat shared-memory tiles
// on lavapipe and SwiftShader (ARCHITECTURE.md). Sums run over c in order, like
// model.Dot. Token t's rows stop at token_rows(p, t): all rows, or in a
// routed variant the token's own FFN width (routed.wgsl); out keeps the
// stride rows either way.

const TILE_AREA: u32 = TILE * TILE;

@group(0) @binding(1) var<storage, read> w: array<f32>;          // [rows][cols] from w_offset
@group(0) @binding(2) var<storage, read> x: array<f32>;          // [tokens][cols] from x_offset
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [tokens][rows] from out_offset

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = load_params(u32(arrayLength(&w) == 0u));
    let r0 = gid.x * TILE;
    let t0 = gid.y * TILE;
    if (r0 >= p.rows || t0 >= p.tokens) {
        return;
    }
    // Each token runs token_rows rows: skip a tile whose tokens all stop
    // before its rows (a routed variant's narrow tokens).
    var most = 0u;
    for (var j = 0u; j < TILE; j++) {
        most = max(most, token_rows(p, min(t0 + j, p.tokens - 1u)));
    }
    if (r0 >= most) {
        return;
    }
    var wb: array<u32, TILE>;
    var xb: array<u32, TILE>;
    for (var i = 0u; i < TILE; i++) {
        wb[i] = p.w_offset + min(r0 + i, p.rows - 1u) * p.cols;
        xb[i] = p.x_offset + min(t0 + i, p.tokens - 1u) * p.cols;
    }
    var acc: array<f32, TILE_AREA>;
    for (var c = 0u; c < p.cols; c++) {
        var wv: array<f32, TILE>;
        for (var i = 0u; i < TILE; i++) {
            wv[i] = w[wb[i] + c];
        }
        for (var j = 0u; j < TILE; j++) {
            let xv = x[xb[j] + c];
            for (var i = 0u; i < TILE; i++) {
                acc[j * TILE + i] += wv[i] * xv;
            }
        }
    }
    for (var j = 0u; j < TILE; j++) {
        for (var i = 0u; i < TILE; i++) {
            if (t0 + j < p.tokens && r0 + i < token_rows(p, t0 + j)) {
                out[p.out_offset + (t0 + j) * p.rows + r0 + i] = acc[j * TILE + i];
            }
        }
    }
}
