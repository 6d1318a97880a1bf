// routed: how many rows of the matrix token t runs in a routed variant of a
// matrix kernel (matvec*, matvec_t*, matmul*): the rows below its own FFN
// width, widths[width_offset + t·width_stride] — a row count, which the
// route kernel wrote on the device — of the rows first_row …
// first_row + rows that this dispatch's w holds (the whole tensor, or one
// slab of it). The dispatch is sized for p.rows, the most any token may
// run; invocations past their token's count return early.
//
// The widths binding comes after the kernel file's three, its output last:
// the variant shares the plain kernel's file, and only this include differs.

@group(0) @binding(4) var<storage, read> widths: array<u32>;   // a row count per token, at width_offset + t·width_stride

fn token_rows(p: Params, t: u32) -> u32 {
    let width = widths[p.width_offset + t * p.width_stride];
    return min(p.rows, width - min(width, p.first_row));
}
