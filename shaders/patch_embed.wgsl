// patch_embed: a vision model's input layer, as model.Batch.ForwardImages:
// out[t][r] = Σ_c w[r][c] · patch_t[c] + pos[t][r], where patch t = (row,
// col) of the (size/side)² grid, row by row, holds its pixels in the order
// channel, y, x (model.PatchesOf). Cutting the image into patches happens
// here, by index, so the pixels are uploaded as they come. One invocation
// per output; the sum runs over c in order. side is the patch side (patch
// is a WGSL keyword).

@group(0) @binding(1) var<storage, read> pixels: array<f32>;     // [channels][size][size]
@group(0) @binding(2) var<storage, read> w: array<f32>;          // [dim][channels·side·side] patch_embed
@group(0) @binding(3) var<storage, read> pos: array<f32>;        // [patches][dim] pos_embed
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // [patches][dim]

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = load_params(u32(arrayLength(&pixels) == 0u));
    let grid = p.size / p.side;
    let i = flat_index(gid, nwg);
    if (i >= grid * grid * p.dim) {
        return;
    }
    let t = i / p.dim;
    let r = i % p.dim;
    let y0 = (t / grid) * p.side;
    let x0 = (t % grid) * p.side;
    var wi = r * p.channels * p.side * p.side;
    var s = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        for (var dy = 0u; dy < p.side; dy++) {
            let row = (c * p.size + y0 + dy) * p.size + x0;
            for (var dx = 0u; dx < p.side; dx++) {
                s += w[wi] * pixels[row + dx];
                wi++;
            }
        }
    }
    out[i] = s + pos[i];
}
