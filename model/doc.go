// # The network, precisely
//
// These are the conventions a reimplementation must match to agree with this
// package token for token; forward.go is the code, and doc_test.go checks this
// description against it with an independent float64 implementation. Shapes
// and tensor names are those of weights.go and of the .matw format (package
// weights); d = Config.Dim, head_dim = d / Config.Heads, ε = Config.NormEps,
// θ = Config.RopeTheta. Every matrix W is [out][in] and applied as y = W·x,
// y[i] = Σ_j W[i][j]·x[j], except the FFN matrices, which are neuron-major.
// There are no biases anywhere.
//
// A vision model (Config.Image set) runs the same blocks with two changes,
// described in vision.go: its input rows are image patches projected by
// patch_embed plus pos_embed (no RoPE), and attention is bidirectional. Its
// output is the mean of the last block's rows, final_norm, head.
//
// One token t at position p (0-based) runs as:
//
//	x = embed[t]                                            // row t, [d]
//	for each layer l:
//	    n = rmsnorm(x, attn_norm)
//	    q = query·n,  k = key·n,  v = value·n               // [d] each
//	    q, k = rope(q, p), rope(k, p)                       // v is not rotated
//	    k and v are appended to layer l's cache (positions 0…p)
//	    for each head h, on the slice [h·head_dim, (h+1)·head_dim) of q, k, v:
//	        s[u] = (q_h · k_h[u]) / √head_dim   for u = 0…p  // causal: no later positions
//	        a = softmax(s)
//	        o_h = Σ_u a[u] · v_h[u]
//	    x = x + output·o                                    // o: the heads' o_h concatenated in order
//	    n = rmsnorm(x, ffn_norm)
//	    for each neuron j < w, w = FFNWidths[mix[l]]:       // the nested part
//	        g_j = silu(ffn_gate[j] · n) · (ffn_up[j] · n)
//	    x = x + Σ_{j<w} g_j · ffn_down[j]                   // ffn_down[j]: row j, [d]
//	x = rmsnorm(x, final_norm)
//	logits = head·x                                         // [vocab]; head is not tied to embed
//
// with
//
//	rmsnorm(x, gain)[i] = x[i] / sqrt(mean_i(x[i]²) + ε) · gain[i]   // ε inside the square root
//	silu(z)             = z / (1 + e^(−z))
//	softmax(s)[u]       = e^(s[u] − max s) / Σ_u' e^(s[u'] − max s)
//
// and rope rotating, in every head, each interleaved pair (x[2i], x[2i+1]),
// i = 0…head_dim/2−1, by the angle p·θ^(−2i/head_dim):
//
//	x'[2i]   = x[2i]·cos(p·f_i) − x[2i+1]·sin(p·f_i)
//	x'[2i+1] = x[2i]·sin(p·f_i) + x[2i+1]·cos(p·f_i),   f_i = θ^(−2i/head_dim)
//
// The pairs are adjacent elements (Meta's Llama code), not the two halves of
// the head (the Hugging Face layout); the two differ on every token. The
// angles' cos and sin are computed in float64 and rounded to float32
// (RopeTable); everything else is float32 arithmetic.
//
// The attention is pre-norm, multi-head with as many key/value heads as
// query heads, and causal; its only scale is 1/√head_dim. The FFN is
// SwiGLU: silu of the gate times the up projection, no activation on up.
// Sampling (sample.go) turns the logits into a token: temperature 0 takes the
// argmax (lowest id on ties); otherwise logits/temperature go through
// softmax, then top-k and top-p trim the candidates sorted by probability
// (ties by id), and a draw from RNG picks among them.
package model
