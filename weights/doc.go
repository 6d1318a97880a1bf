// Package weights stores MatFormer networks in .matw files laid out so that
// every smaller submodel is a byte prefix of the file and every Mix'n'Match
// model a short list of byte ranges.
//
// # Format, version 1
//
// All integers are little-endian.
//
//	offset        size  field
//	0             4     magic "MATW"
//	4             4     u32 format version (1)
//	8             4     u32 header length H
//	12            H     msgpack header (Header): config, tokenizer, entries, data size, meta
//	12+H          pad   zero bytes up to DataStart = roundup(12+H, 256)
//	DataStart     ...   data: the entries, back to back, in header order
//
// Each entry is a run of rows of one tensor, stored as f32, with its offset
// from DataStart, its length and a CRC-32C (Castagnoli) of its bytes:
//
//	section 0   embed, then per layer: attn_norm query key value output ffn_norm
//	            ffn_gate[0:h0) ffn_up[0:h0) ffn_down[0:h0), then final_norm, head
//	section 1   per layer: ffn_gate[h0:h1) ffn_up[h0:h1) ffn_down[h0:h1)
//	...
//	section G-1 per layer: ffn_gate[h(G-2):h(G-1)) ...
//
// where hg = Config.FFNWidths[g]. FFN matrices are neuron-major ([hidden][dim];
// ffn_down holds W2ᵀ), so a granularity's neurons are whole rows. The uniform
// model g is the file prefix up to the end of section g; a Mix needs section 0
// plus, for each layer l, that layer's run in sections 1…mix[l] (Header.Ranges).
//
// A reader checks, before trusting anything: the magic, the version (a newer
// one is refused with a hint), the header length (at most 64 MiB), the config,
// that the entries cover every tensor exactly once in row order without overlap
// and inside DataSize, that the file is as long as the header says, and each
// entry's checksum before its bytes are used.
//
// # Version history
//
//	1  2026-11  first version
package weights
