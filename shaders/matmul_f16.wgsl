// matmul_f16: matmul with f16 weights packed two per u32 (column 2i in the low
// half, 2i+1 in the high half; cols is even). Offsets into w count u32 words.
// Rows stop at token_rows, as matmul's.

const TILE_AREA: u32 = TILE * TILE;

@group(0) @binding(1) var<storage, read> w: array<u32>;          // [rows][cols/2] from w_offset
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
    let half = p.cols / 2u;
    var wb: array<u32, TILE>;
    var xb: array<u32, TILE>;
    for (var i = 0u; i < TILE; i++) {
        wb[i] = p.w_offset + min(r0 + i, p.rows - 1u) * half;
        xb[i] = p.x_offset + min(t0 + i, p.tokens - 1u) * p.cols;
    }
    var acc: array<f32, TILE_AREA>;
    for (var c = 0u; c < half; c++) {
        var wv: array<vec2<f32>, TILE>;
        for (var i = 0u; i < TILE; i++) {
            wv[i] = unpack2x16float(w[wb[i] + c]);
        }
        for (var j = 0u; j < TILE; j++) {
            let x0 = x[xb[j] + 2u * c];
            let x1 = x[xb[j] + 2u * c + 1u];
            for (var i = 0u; i < TILE; i++) {
                acc[j * TILE + i] += wv[i].x * x0;
                acc[j * TILE + i] += wv[i].y * x1;
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
