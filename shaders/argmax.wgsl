// argmax: out[out_index] = the index of the largest of x[x_offset …
// x_offset+n), the lowest index on ties, as model.Argmax. One workgroup; out
// is the token buffer that the next
// step's embed reads, so greedy decoding never leaves the GPU.

@group(0) @binding(1) var<storage, read> x: array<f32>;          // [x_offset + n]
@group(0) @binding(2) var<storage, read_write> out: array<u32>;  // [out_index + 1]

var<workgroup> best_value: array<f32, WG>;
var<workgroup> best_index: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    let p = load_params(u32(arrayLength(&x) == 0u));
    var v = LOWEST;
    var at = 0xffffffffu;
    for (var i = lid; i < p.n; i += WG) {
        let xi = x[p.x_offset + i];
        if (at == 0xffffffffu || xi > v) {
            v = xi;
            at = i;
        }
    }
    best_value[lid] = v;
    best_index[lid] = at;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let ov = best_value[lid + s];
            let oi = best_index[lid + s];
            let mine = best_index[lid];
            if (oi != 0xffffffffu && (mine == 0xffffffffu || ov > best_value[lid] || (ov == best_value[lid] && oi < mine))) {
                best_value[lid] = ov;
                best_index[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[p.out_index] = min(best_index[0], p.n - 1u);
    }
}
