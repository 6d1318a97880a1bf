// route: token routing's pick (model.RoutePick, model/route.go) for rows
// tokens of one layer, one invocation per token. The layer's router scores
// each granularity g but the last from the token's FFN input n:
// s_g = router[g][:dim]·n + router[g][dim], summed left to right as
// model.Dot. The token runs the g that minimises
//
//	exp(s_g − tau) + ffn_widths[g] / ffn_widths[last]        (the last: 1)
//
// which is the CPU's cost exp(s_g) + exp(tau)·ffn_widths[g]/ffn_widths[last]
// divided by exp(tau), so that no price overflows f32; the exponent is
// clamped at 80, far above any cost that can win (they are below 1). Ties
// go as on the CPU: the last granularity unless a cost is strictly lower,
// then the first of the lowest. The CPU computes the costs in float64 and
// this kernel in f32, so the two can pick differently only where two costs
// are within a rounding of each other (TestRoute in package shaders).
//
// forced < granularities skips the scores: every token takes forced (the
// CPU's tau = +∞ is 0, −∞ the last). The pick is capped at granularity cap
// and written as its row count, ffn_widths[g], where the routed variants of
// the matrix kernels read it (routed.wgsl).

@group(0) @binding(1) var<storage, read> x: array<f32>;              // [rows][dim] the FFN inputs
@group(0) @binding(2) var<storage, read> router: array<f32>;         // [granularities-1][dim+1]
@group(0) @binding(3) var<storage, read> ffn_widths: array<u32>;     // [granularities], ascending
@group(0) @binding(4) var<storage, read_write> widths: array<u32>;   // token t's at width_offset + t·width_stride

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&x) == 0u));
    let t = flat_index(gid, nwg);
    if (t >= p.rows) {
        return;
    }
    let last = p.granularities - 1u;
    var best = last;
    if (p.forced < p.granularities) {
        best = p.forced;
    } else {
        let full = f32(ffn_widths[last]);
        let base = t * p.dim;
        var best_cost = 1.0;
        for (var g = 0u; g < last; g++) {
            let row = g * (p.dim + 1u);
            var s = 0.0;
            for (var i = 0u; i < p.dim; i++) {
                s += router[row + i] * x[base + i];
            }
            s += router[row + p.dim];
            let cost = exp(min(s - p.tau, 80.0)) + f32(ffn_widths[g]) / full;
            if (cost < best_cost) {
                best = g;
                best_cost = cost;
            }
        }
    }
    widths[p.width_offset + t * p.width_stride] = ffn_widths[min(best, p.cap)];
}
