// rows: how many rows of the matrix token t runs in a plain matrix kernel
// (matvec*, matvec_t*, matmul*): every row the dispatch covers, p.rows. A
// nested FFN width is just a smaller rows. The kernels' routed variants
// include routed.wgsl instead, which gives each token its own count.

fn token_rows(p: Params, t: u32) -> u32 {
    return p.rows;
}
