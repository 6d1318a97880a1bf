// reduce: the one workgroup reduction, included by the kernels that sum or
// take a maximum over their invocations (Kernel.Includes). Each invocation
// passes its partial value; every invocation gets the result. The tree adds
// element lid + s into lid for s = WG/2, WG/4, … 1, an order the GPU tests
// and the token-parity tests are pinned to. Call it from uniform control
// flow; partial may be reused as soon as it returns.

var<workgroup> partial: array<f32, WG>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&partial[0]);
    workgroupBarrier();
    return r;
}

fn reduce_max(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] = max(partial[lid], partial[lid + s]);
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&partial[0]);
    workgroupBarrier();
    return r;
}

