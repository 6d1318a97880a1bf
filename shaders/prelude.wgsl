// prelude: shared by every kernel. WG (the workgroup size) and the kernel's
// other constants are declared above it.

// flat_index is the 1-D invocation index of work spread over x and y (Groups in Go).
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// flat_group is the 1-D workgroup index of one-workgroup-per-row kernels.
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}


// LOWEST is the most negative finite f32, written exactly: Chromium's Tint
// rejects the usual rounded literal (3.4028235 × 10^38) as out of range,
// where naga rounds it.
const LOWEST: f32 = -3.40282346638528859812e+38f;
