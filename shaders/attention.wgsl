// attention: causal scaled dot-product attention of rows queries against the
// KV cache, as the loop in model.Forward. Query r is at position start + r and
// attends to cache positions 0…start+r. Decode is rows = 1, start = pos.
// With CAUSAL = 0 (the kernel attention_bidirectional, a vision model's
// encoder) every query attends to all positions 0…start+rows-1 instead: a
// constant, so each variant compiles to its own loop bounds.
// The caller writes this step's keys and values into the cache first (a
// matvec with out_offset into the cache, then rope). One workgroup per
// (head, query); scores are kept in a scratch buffer.
//
// Three barriers, no tree reductions: on a CPU driver (lavapipe, SwiftShader)
// every barrier splits the kernel into another pass over the workgroup's
// invocations, and the tree reductions this kernel had cost 17 of them.
// Invocation lid owns positions lid, lid+WG, …: it scores them, keeps their
// running max and sum (online softmax), and after one barrier every
// invocation combines the WG partial (max, sum) pairs itself. It then turns
// its own scores into weights (no barrier: it reads only what it wrote). The
// weighted sum of values splits positions into WG/head_dim chunks so that
// every invocation works, and one more barrier adds the chunks.
//
// Params: kv_offset is this layer's cache, in elements; scores_stride ≥
// start + rows is the scratch per (query, head); scale is 1/√head_dim.

@group(0) @binding(1) var<storage, read> q: array<f32>;               // [rows][heads·head_dim]
@group(0) @binding(2) var<storage, read> keys: array<f32>;            // [context][heads·head_dim] from kv_offset
@group(0) @binding(3) var<storage, read> values: array<f32>;          // [context][heads·head_dim] from kv_offset
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;    // [rows][heads][scores_stride]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;       // [rows][heads·head_dim]

var<workgroup> part_max: array<f32, WG>;
var<workgroup> part_sum: array<f32, WG>;
var<workgroup> part_out: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let p = load_params(u32(arrayLength(&q) == 0u));
    let head = wid.x;
    let row = wid.y;
    // Uniform per workgroup, so the barriers below are in uniform control flow.
    let live = head < p.heads && row < p.rows;
    let dim = p.heads * p.head_dim;
    let qb = row * dim + head * p.head_dim;
    let sb = (row * p.heads + head) * p.scores_stride;
    let kb = p.kv_offset + head * p.head_dim;
    var len = 0u;
    if (live) {
        if (CAUSAL == 1u) {
            len = p.start + row + 1u;
        } else {
            len = p.start + p.rows;
        }
    }

    // Scores of this invocation's positions, their max and Σ exp(s − max).
    var m = LOWEST;
    var sum = 0.0;
    for (var t = lid; t < len; t += WG) {
        let base = kb + t * dim;
        var s = 0.0;
        for (var i = 0u; i < p.head_dim; i++) {
            s += q[qb + i] * keys[base + i];
        }
        s *= p.scale;
        scores[sb + t] = s;
        let next = max(m, s);
        sum = sum * exp(m - next) + exp(s - next);
        m = next;
    }
    part_max[lid] = m;
    part_sum[lid] = sum;
    workgroupBarrier();
    var gmax = LOWEST;
    for (var j = 0u; j < WG; j++) {
        gmax = max(gmax, part_max[j]);
    }
    var total = 0.0;
    for (var j = 0u; j < WG; j++) {
        total += part_sum[j] * exp(part_max[j] - gmax);
    }
    for (var t = lid; t < len; t += WG) {
        scores[sb + t] = exp(scores[sb + t] - gmax) / total;
    }
    storageBarrier();
    workgroupBarrier();

    // out[i] = Σ_t weight_t · values[t][i], positions split into chunks.
    if (p.head_dim <= WG) {
        let chunks = WG / p.head_dim;
        let i = lid % p.head_dim;
        let chunk = lid / p.head_dim;
        var acc = 0.0;
        if (chunk < chunks) {
            for (var t = chunk; t < len; t += chunks) {
                acc += scores[sb + t] * values[kb + t * dim + i];
            }
        }
        part_out[lid] = acc;
        workgroupBarrier();
        if (live && lid < p.head_dim) {
            var o = 0.0;
            for (var j = 0u; j < chunks; j++) {
                o += part_out[j * p.head_dim + lid];
            }
            out[qb + lid] = o;
        }
    } else if (live) {
        for (var i = lid; i < p.head_dim; i += WG) {
            var acc = 0.0;
            for (var t = 0u; t < len; t++) {
                acc += scores[sb + t] * values[kb + t * dim + i];
            }
            out[qb + i] = acc;
        }
    }
}
