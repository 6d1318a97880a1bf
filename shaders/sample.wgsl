// sample: draws the next token from logits with temperature, min-p, top-k
// and top-p, as model.Sampler.Sample (temperature > 0; greedy decoding uses argmax), and
// writes it to out[out_index]. state is the model.RNG state word (see
// SamplerState in Go); it advances once per call, so the GPU draws the same
// uniform numbers as the CPU. Only sums are computed in a different order, so
// a token can differ from the CPU's when the draw falls within rounding of a
// boundary between two candidates.
//
// The CPU sorts candidates by (probability desc, id asc). Rather than sort,
// this kernel finds prefixes of that order by bisection: a prefix is named by
// its last element (value bits v, id), and holds every element with larger
// probability bits, or equal bits and a smaller or equal id. Probabilities are
// non-negative, so their bit patterns order like their values. One workgroup.

@group(0) @binding(1) var<storage, read_write> logits: array<f32>;  // [n]; overwritten with probabilities
@group(0) @binding(2) var<storage, read_write> state: array<u32>;   // [1] RNG state
@group(0) @binding(3) var<storage, read_write> out: array<u32>;     // [out_index + 1]

var<workgroup> shared_state: u32;

// in_prefix reports whether element i is in the prefix ending at (v, id).
fn in_prefix(i: u32, v: u32, id: u32) -> bool {
    let b = bitcast<u32>(logits[i]);
    return b > v || (b == v && i <= id);
}

// prefix_total sums over the prefix ending at (v, id) the probabilities
// (mass) or ones (count).
fn prefix_total(v: u32, id: u32, mass: bool, lid: u32) -> f32 {
    let n = load_params(u32(arrayLength(&logits) == 0u)).n;
    var s = 0.0;
    for (var i = lid; i < n; i += WG) {
        if (in_prefix(i, v, id)) {
            if (mass) {
                s += logits[i];
            } else {
                s += 1.0;
            }
        }
    }
    return reduce_sum(s, lid);
}

fn reaches(total: f32, goal: f32, strict: bool) -> bool {
    return total > goal || (!strict && total == goal);
}

struct Position { v: u32, id: u32, found: bool }

// first_reaching finds the shortest prefix whose total reaches goal (or
// exceeds it, when strict). Loop counts are fixed so that every invocation
// meets every barrier.
fn first_reaching(goal: f32, strict: bool, mass: bool, lid: u32) -> Position {
    if (!reaches(prefix_total(0u, 0xffffffffu, mass, lid), goal, strict)) {
        return Position(0u, 0u, false);
    }
    // The largest value level whose elements, with every larger one, reach it.
    var lo = 0u;
    var hi = 0x7f800000u;
    for (var step = 0u; step < 31u; step++) {
        let mid = lo + (hi - lo + 1u) / 2u;
        let ok = reaches(prefix_total(mid, 0xffffffffu, mass, lid), goal, strict);
        if (lo < hi) {
            if (ok) {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
    }
    // Within that level, the smallest id.
    var a = 0u;
    var b = load_params(u32(arrayLength(&logits) == 0u)).n - 1u;
    for (var step = 0u; step < 32u; step++) {
        let mid = a + (b - a) / 2u;
        let ok = reaches(prefix_total(lo, mid, mass, lid), goal, strict);
        if (a < b) {
            if (ok) {
                b = mid;
            } else {
                a = mid + 1u;
            }
        }
    }
    return Position(lo, a, true);
}

fn after(a: Position, b: Position) -> bool {
    return a.v < b.v || (a.v == b.v && a.id > b.id);
}

fn rng_next(s: u32) -> u32 {
    return s * 747796405u + 2891336453u;
}

fn rng_output(s: u32) -> u32 {
    let word = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (word >> 22u) ^ word;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    let p = load_params(u32(arrayLength(&logits) == 0u));
    // Probabilities, in place: softmax(logits / temperature).
    var m = LOWEST;
    for (var i = lid; i < p.n; i += WG) {
        let z = logits[i] / p.temperature;
        logits[i] = z;
        m = max(m, z);
    }
    m = reduce_max(m, lid);
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let e = exp(logits[i] - m);
        logits[i] = e;
        s += e;
    }
    s = reduce_sum(s, lid);
    var top = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let q = logits[i] / s;
        logits[i] = q;
        top = max(top, q);
    }
    storageBarrier();
    workgroupBarrier();

    // Top-k: the prefix of k elements.
    var k = p.n;
    if (p.top_k > 0u && p.top_k < p.n) {
        k = p.top_k;
    }
    var keep = first_reaching(f32(k), false, false, lid);

    // Min-p: the elements at least min_p times the largest probability (bits
    // ≥ the bits of that least probability), a prefix: the prefix of as
    // many elements as there are. The shorter of it and top-k's, as the CPU
    // cuts both from one sorted list.
    if (p.min_p > 0.0) {
        let least = bitcast<u32>(p.min_p * reduce_max(top, lid));
        let cut = first_reaching(prefix_total(least, 0xffffffffu, false, lid), false, false, lid);
        if (!after(cut, keep)) {
            keep = cut;
        }
    }

    // Top-p: the shortest prefix of those whose mass reaches top_p.
    var last = keep;
    if (p.top_p > 0.0 && p.top_p < 1.0) {
        let reach = first_reaching(p.top_p, false, true, lid);
        if (reach.found && !after(reach, keep)) {
            last = reach;
        }
    }
    let total = prefix_total(last.v, last.id, true, lid);

    // Draw u in [0, total) and take the first candidate whose prefix mass exceeds it.
    if (lid == 0u) {
        shared_state = state[0];
    }
    let next = rng_next(workgroupUniformLoad(&shared_state));
    let u = f32(rng_output(next) >> 8u) / 16777216.0 * total;
    var pick = first_reaching(u, true, true, lid);
    if (!pick.found || after(pick, last)) {
        pick = last;
    }
    workgroupBarrier();
    storageBarrier();
    if (lid == 0u) {
        state[0] = next;
        out[p.out_index] = pick.id;
    }
}
