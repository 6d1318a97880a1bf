// attention: causal scaled dot-product attention of rows queries against the
// KV cache, as the loop in model.Forward. Query r is at position start + r and
// attends to cache positions 0…start+r. Decode is rows = 1, start = pos.
// The caller writes this step's keys and values into the cache first (a
// matvec with out_offset into the cache, then rope). One workgroup per
// (head, query); scores are kept in a scratch buffer.

struct Params {
    head_dim: u32,
    heads: u32,
    rows: u32,
    start: u32,
    kv_offset: u32,     // this layer's cache, in elements
    scores_stride: u32, // ≥ start + rows: scratch per (query, head)
    scale: f32,         // 1/√head_dim
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;               // [rows][heads·head_dim]
@group(0) @binding(2) var<storage, read> keys: array<f32>;            // [context][heads·head_dim] from kv_offset
@group(0) @binding(3) var<storage, read> values: array<f32>;          // [context][heads·head_dim] from kv_offset
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;    // [rows][heads][scores_stride]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;       // [rows][heads·head_dim]

var<workgroup> partial: array<f32, WG>;

fn reduce_max(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] = max(partial[lid], partial[lid + s]);
        }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let head = wid.x;
    let row = wid.y;
    if (head >= p.heads || row >= p.rows) {
        return;
    }
    let dim = p.heads * p.head_dim;
    let qb = row * dim + head * p.head_dim;
    let sb = (row * p.heads + head) * p.scores_stride;
    let len = p.start + row + 1u;

    var local_max = LOWEST;
    for (var t = lid; t < len; t += WG) {
        let kb = p.kv_offset + t * dim + head * p.head_dim;
        var s = 0.0;
        for (var i = 0u; i < p.head_dim; i++) {
            s += q[qb + i] * keys[kb + i];
        }
        s *= p.scale;
        scores[sb + t] = s;
        local_max = max(local_max, s);
    }
    let m = reduce_max(local_max, lid);

    var local_sum = 0.0;
    for (var t = lid; t < len; t += WG) {
        let e = exp(scores[sb + t] - m);
        scores[sb + t] = e;
        local_sum += e;
    }
    let sum = reduce_sum(local_sum, lid);
    for (var t = lid; t < len; t += WG) {
        scores[sb + t] /= sum;
    }
    storageBarrier();

    for (var i = lid; i < p.head_dim; i += WG) {
        var acc = 0.0;
        for (var t = 0u; t < len; t++) {
            acc += scores[sb + t] * values[p.kv_offset + t * dim + head * p.head_dim + i];
        }
        out[qb + i] = acc;
    }
}
