// Package weights stores MatFormer networks in .matw files laid out so that
// every smaller submodel is a byte prefix of the file and every Mix'n'Match
// model a short list of byte ranges.
//
// This comment is the format's specification: a reader written from it alone
// (header, tokenizer, tensors, checksums) agrees with this package byte for
// byte. The network that the tensors feed is specified in package model's
// documentation (model/doc.go); doc_test.go checks the claims below against
// the code and the committed files.
//
// # Format, version 2
//
// The preamble's integers and the header checksum are little-endian.
//
//	offset        size  field
//	0             4     magic "MATW"
//	4             4     u32 format version (2)
//	8             4     u32 header length H (at most 64 MiB)
//	12            H     msgpack header: exactly one msgpack document, a map (keys below)
//	12+H          4     u32 header checksum: CRC-32C of bytes [0, 12+H) (see Checksums)
//	16+H          pad   zero bytes up to DataStart = roundup(16+H, 256)
//	DataStart     ...   data: the entries, back to back, in header order
//
// The header checksum covers every byte before it: magic, version, header
// length and the msgpack document (not the padding, which readers ignore).
// It is the same CRC-32C as the entries' crc32c, stored as a u32
// little-endian (a header whose CRC is 0xe3069283 ends in 83 92 06 e3). A
// reader computes it over bytes [0, 12+H) and refuses the file when it
// differs, before decoding the document. The msgpack document must end
// exactly at byte 12+H: a reader refuses a header with bytes after the
// document's end (in version 1 too).
//
// The file is at least DataStart + data_size bytes long; bytes after that
// are ignored. DataStart + data_size must stay below 2^63 (a reader compares
// without adding, so no sum can wrap). DataStart is not stored: compute it from H.
//
// # Format, version 1
//
// Version 1 is version 2 without the header checksum: the version field
// holds 1, the padding starts at 12+H and DataStart = roundup(12+H, 256).
// This package still reads it (matedge inspect warns that its header is
// unchecked, and its -upgrade flag rewrites it as version 2, data bytes
// unchanged: Upgrade); it writes version 2 only.
//
// # Header keys
//
// The header is a msgpack map with string keys. Key order carries no meaning
// and unknown keys are ignored. Integers may use any msgpack integer encoding
// (the writer uses the shortest). The two float fields must be msgpack
// float32 (0xca) or integers: this package refuses a float64 (0xcb) there. A
// list with no elements may be msgpack nil.
//
//	key         msgpack type        meaning
//	config      map                 the network's shape (config keys)
//	tokenizer   map                 the BPE merges (tokenizer keys)
//	entries     array of maps       the stored runs of tensor rows, in file order (entry keys)
//	data_size   int                 bytes from DataStart to the end of the data
//	meta        map string→string   free-form facts; absent when empty (meta keys)
//	architecture  string            the network and its tensor layout; absent: "matformer-lm" (a reader refuses others)
//	eot         int                 the end-of-text token id, below vocab: generation stops before emitting it; absent: none (language models only)
//
// Config keys (model.Config):
//
//	key         msgpack type   meaning
//	vocab       int            token ids 0…vocab-1; at least 256 + len(merges)
//	dim         int            width of the residual stream, d
//	layers      int            transformer blocks
//	heads       int            attention heads; head_dim = dim/heads, even
//	ffn_widths  array of int   FFN hidden width of each granularity, ascending; the last is XL's, hidden
//	context     int            longest sequence (positions 0…context-1)
//	rope_theta  float32        θ, the base of the rotary frequencies; finite, ≥ 1
//	norm_eps    float32        ε of every RMSNorm; finite, from 2^-126 (the smallest normal float32) to 1
//	router_budgets  int        rows K of the token router's budget table, 2…1024; absent (0): no router tensors
//	image       map or absent  only in a vision model (architecture "matvit"): {size, patch, channels} below
//
// A vision model (MatViT, model/vision.go) has image = {size: S, patch: P,
// channels: C (1 or 3)}, P dividing S; context is then the number of patches
// T = (S/P)², vocab the number of classes (at least 2), router_budgets 0, and
// the tokenizer empty ({"merges": nil}). Its input is C×S×S pixels in
// [0, 1], cut into patches row by row, each patch flattened channel, row,
// column; attention is bidirectional (no mask) and there is no RoPE
// (rope_theta is stored but unused); the embedding is
// final_norm(mean over the T outputs of the last block), and
// logits = head · embedding. The header names architecture "matvit"; a
// language model's header has no architecture key (or "matformer-lm") and
// no image key, and each kind is refused by the other's readers.
//
// vocab is at most 2^20 (model.MaxVocab). With four granularities their names are S, M, L, XL; otherwise g0, g1, ….
//
// Tokenizer keys (model.Tokenizer):
//
//	key         msgpack type              meaning
//	merges      array of [int, int], nil  merges in rank order: {"merges": [[a, b], …]}
//
// At most 2^20 − 256 merges; every piece (a token's bytes) at most 256 bytes
// (model.MaxPieceLen) and all pieces together at most 16 MiB
// (model.MaxPiecesBytes). A reader can check these from the merges alone,
// without building the pieces, and must: doubling merges make a few KB of
// header describe gigabytes of pieces.
//
// Entry keys (Entry):
//
//	key          msgpack type   meaning
//	tensor       string         tensor name (tensor table below)
//	dtype        string         element type (dtype table below)
//	shape        array of int   shape of the whole tensor, not of this run
//	row_start    int            first row of the tensor stored here
//	row_end      int            one past the last row
//	layer        int            block index; -1 for embed, final_norm and head
//	granularity  int            smallest granularity that needs these rows; 0 for every shared tensor
//	offset       int            from DataStart
//	length       int            bytes: (row_end − row_start) · row elements · dtype size
//	crc32c       int            CRC-32C of the entry's length bytes (below)
//
// A row is a tensor's first index: a row of an [r][c] tensor is c elements,
// and a row of a 1-D tensor (the norm gains) is one element, so the entry of
// attn_norm has row_start 0, row_end dim and length 4·dim. Elements of a run
// are stored row-major.
//
// Element types (DType):
//
//	dtype   size   encoding
//	f32     4      little-endian IEEE 754 binary32
//
// Meta keys. Readers must not need any of them; the CLI writes these:
//
//	key            value (always a msgpack string)
//	kind           "trained" (matedge train) or "random" (test and benchmark files)
//	seed           the seed of the initial weights, decimal
//	steps          training steps, decimal
//	seq_len        tokens per training sequence, decimal: eval's default window (below)
//	objective      "matformer" (joint loss over granularities) or "baseline" (one granularity)
//	corpus         the training text: austen, opticks, or a file's base name
//	corpus_sha256  hex SHA-256 of the corpus's documents joined, before the train/validation split
//	command        the matedge train command line that made the file
//	quality        the quality table, JSON text inside the msgpack string (below)
//	router         the matedge route command line that fitted the file's routers
//	classes        a vision model's class names in label order, comma-separated
//	images         a vision model's training images: fashion-mnist
//	images_sha256  hex SHA-256 of the image and label files as read (IDX, uncompressed)
//
// # Tensors and sections
//
// The tensors, with their shapes (d = dim, hidden = the last ffn_widths) and
// orientation. Every matrix is applied as y = W·x with W [out][in] (y[i] is
// row i dotted with x), except the FFN matrices, which are neuron-major so
// that a granularity's neurons are a prefix of the rows:
//
//	tensor              shape          meaning
//	embed               [vocab][d]     row t is token t's embedding
//	layers.L.attn_norm  [d]            RMSNorm gain before attention
//	layers.L.query      [d][d]         [out][in]: q = Wq·n; head h is q[h·head_dim : (h+1)·head_dim]
//	layers.L.key        [d][d]         [out][in]: k = Wk·n
//	layers.L.value      [d][d]         [out][in]: v = Wv·n
//	layers.L.output     [d][d]         [out][in]: Wo · (the heads' outputs, concatenated in head order)
//	layers.L.ffn_norm   [d]            RMSNorm gain before the FFN
//	layers.L.ffn_gate   [hidden][d]    W1: row j is neuron j's gate weights
//	layers.L.ffn_up     [hidden][d]    W3: row j is neuron j's up weights
//	layers.L.ffn_down   [hidden][d]    W2ᵀ: row j is what neuron j adds to the residual stream
//	final_norm          [d]            RMSNorm gain after the last block
//	head                [vocab][d]     [out][in]: logits = head · x; not tied to embed
//	patch_embed         [d][P·P·C]     vision only, instead of embed: [out][in], x_t = patch_embed · patch_t + pos_embed[t]
//	pos_embed           [T][d]         vision only: row t is added to patch t's projection
//	layers.L.router     [G-1][d+1]     only with router_budgets: row g scores granularity g from the FFN input n, w·n + b (w then b)
//	router_budget       [K][2]         only with router_budgets: rows (fraction of XL's FFN FLOPs, price τ), fractions ascending
//
// The router tensors (model/route.go) are shared tensors: one entry each,
// granularity 0, layer L (router_budget: -1), after head in section 0, so a
// file without them lays out every other tensor at the same offsets.
//
// The attention matrices are square, so their shape cannot tell their
// orientation: it is [out][in] as stated. Entries come in this order:
//
//	section 0   embed (vision: patch_embed, pos_embed), then per layer: attn_norm query key value output ffn_norm
//	            ffn_gate[0:h0) ffn_up[0:h0) ffn_down[0:h0), then final_norm, head,
//	            then (with router_budgets) layers.L.router for each layer, router_budget
//	section 1   per layer: ffn_gate[h0:h1) ffn_up[h0:h1) ffn_down[h0:h1)
//	...
//	section G-1 per layer: ffn_gate[h(G-2):h(G-1)) ...
//
// where hg = ffn_widths[g] and G = len(ffn_widths). A shared tensor is one
// entry; an FFN matrix is one entry per granularity, granularity g's holding
// rows [h(g-1), hg). The uniform model g is the file prefix up to the end of
// section g; a Mix needs section 0 plus, for each layer l, that layer's run
// in sections 1…mix[l] (Header.Ranges). An entry is needed by a mix when its
// layer is -1 or its granularity is at most the mix's granularity for that
// layer.
//
// A reader checks, before trusting anything: the magic, the version (a newer
// one is refused with a hint), the header length (at most 64 MiB), the
// header checksum (version 2), that the msgpack document fills the header
// length exactly, the config
// (the ranges model.Config.Validate states), that the entries cover every
// tensor exactly once in row order without overlap and inside data_size, that
// the file is as long as the header says, and, before an entry's bytes are
// used, its checksum and then that none of its values is NaN or ±Inf
// (exponent bits all ones). A non-finite value under a correct checksum is a
// bad file, not a bad download: fetching it again cannot help. Writers refuse
// to write one.
//
// # Checksums
//
// An entry's crc32c and the header checksum are the CRC-32C (Castagnoli)
// of their bytes: reflected polynomial 0x82F63B78, initial value
// 0xFFFFFFFF, final XOR 0xFFFFFFFF — the CRC of iSCSI and SSE4.2's crc32
// instruction, not zlib's CRC-32. Check values for a reader's
// implementation:
//
//	CRC-32C("123456789")     = 0xe3069283
//	CRC-32C(32 zero bytes)   = 0x8a9136aa
//
// # Tokenizer
//
// Byte-level BPE (model.Tokenizer). Ids 0…255 are the single bytes; id 256+i
// is the concatenation of the pieces of merges[i] = [a, b], where a and b are
// earlier ids (< 256+i). No merges means a plain byte tokenizer. Decoding
// concatenates the pieces of the ids; any byte string encodes, and decoding
// gives it back.
//
// Encoding first splits the text into chunks (model.Chunks), then encodes
// each chunk on its own: start from its bytes as ids; while some adjacent
// pair of ids is a merge, take the pair with the lowest merge index, replace
// every occurrence of it left to right (non-overlapping) by 256+index, and
// repeat. Merges never cross chunks.
//
// Chunking sorts bytes into four classes:
//
//	whitespace   space, \t, \n, \v (0x0b), \f (0x0c), \r
//	letter       A–Z, a–z, the apostrophe ', and every byte ≥ 0x80 (so UTF-8 stays inside words)
//	digit        0–9
//	other        every other byte
//
// A chunk is an optional single leading space (0x20) followed by a maximal
// run of bytes of one class. The leading space is taken only when the byte
// after it exists and is not whitespace. When the run is whitespace, longer
// than one byte, followed by more text and ends in a space, that last space
// is left to start the next chunk. For example
//
//	"It's  mañana,\v\f 42\n\n x"
//
// splits into
//
//	"It's"  " "  " mañana"  ","  "\v\f"  " 42"  "\n\n"  " x"
//
// # Quality and evaluation
//
// A trained file's quality meta is a JSON list (Quality), one element per
// uniform granularity and, when the model has more than one granularity and
// more than one layer, one for each of two Mix'n'Match models: layer l at
// granularity ⌊l·G/layers⌋ ("grows with depth") and that list reversed
// (model.Config.PresetMixes). An
// element of the default model's table:
//
//	{"mix":"S","non_embedding_params":361600,"loss_nats_per_token":4.483003236393556,
//	 "bits_per_byte":1.928938098814971,"tokens":60093}
//
// mix is a mix spec (a granularity name, or one per layer joined by
// commas). The losses are measured on the corpus's validation text as
// matedge eval measures them (train.Evaluate, train.MeasureQuality), with the
// window S = seq_len:
//
//   - The whole text is tokenized once, giving ids (n = len(ids)).
//   - Full windows w = 0, 1, … while (w+1)·S ≤ n−1: each starts with an empty
//     KV cache at position 0, feeds ids[w·S : w·S+S] and predicts
//     ids[w·S+1 : w·S+S+1].
//   - If tokens are left over, a last, shorter window of the rest r = n−1−W·S
//     (W full windows) feeds ids[W·S : W·S+r] and predicts ids[W·S+1 : n].
//   - loss_nats_per_token is the mean cross-entropy, in nats, over all n−1
//     predictions; tokens is n−1.
//   - bits_per_byte = loss · tokens / (bytes · ln 2), bytes being the text's
//     length in bytes, which makes it comparable across tokenizers.
//
// A vision model's table is measured on its validation images (the last
// 5,000 of the training set): loss_nats_per_token is the mean cross-entropy
// per image, tokens the number of images, bits_per_byte 0, and accuracy (a
// number in [0, 1], absent in a language model's table) the fraction whose
// largest logit is their label.
//
// # Version history
//
//	1  2026-11  first version
//	2  2026-12  a CRC-32C of the preamble and header after the header; no
//	            bytes allowed after the msgpack document (in version 1 either)
package weights
