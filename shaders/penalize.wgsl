// penalize: the repetition and presence penalties on logits[0 … n), for the
// distinct tokens among tokens[first … first+count) (the recent window of
// the sequence: the tokens buffer holds the token at each position), as
// model.Penalize then model.PenalizePresence: a logit l becomes l/repetition
// when positive, l·repetition otherwise (repetition > 1; other values leave
// it), then l − presence. Each token is changed once however often it
// occurs: invocation i acts only if no earlier window position holds its
// token. The two steps touch each token on its own, so doing both per token
// gives the CPU's order of operations.

@group(0) @binding(1) var<storage, read> tokens: array<u32>;        // [first + count]
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;  // [n]

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&tokens) == 0u));
    let i = flat_index(gid, nwg);
    if (i >= p.count) {
        return;
    }
    let t = tokens[p.first + i];
    if (t >= p.n) {
        return;
    }
    for (var j = 0u; j < i; j++) {
        if (tokens[p.first + j] == t) {
            return;
        }
    }
    var l = logits[t];
    if (p.repetition > 1.0) {
        if (l > 0.0) {
            l = l / p.repetition;
        } else {
            l = l * p.repetition;
        }
    }
    logits[t] = l - p.presence;
}
