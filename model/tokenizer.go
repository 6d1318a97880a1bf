package model

import "fmt"

// Tokenizer is byte-level BPE: ids 0…255 are the bytes, and id 256+i is the
// concatenation of the pair Merges[i]. With no merges it is a plain byte
// tokenizer. Any byte string encodes, and Decode(Encode(b)) == b.
type Tokenizer struct {
	Merges [][2]int `msgpack:"merges" json:"merges"` // in rank order: earlier merges apply first

	rank   map[[2]int]int // pair → merge index, built lazily
	pieces [][]byte       // id → bytes, built lazily
}

// Size is the number of ids the tokenizer can produce.
func (t *Tokenizer) Size() int { return 256 + len(t.Merges) }

// Bounds on what a tokenizer may hold, checked by Validate. Merges are cheap
// to store and expensive to expand: n merges that each join the previous
// piece with itself describe a piece of 2^n bytes, so a 12 KB header could
// otherwise make build allocate terabytes.
//
// MaxPieceLen is generous for real tokenizers: a piece is a token's bytes,
// and SentencePiece caps pieces at 16 characters (at most 64 bytes of UTF-8)
// by default, while byte-level BPE vocabularies of 50k–200k ids hold their
// longest pieces (runs of spaces or punctuation) well below 256 bytes.
// MaxPiecesBytes is 16 bytes per id at the largest vocabulary a config allows
// (MaxVocab), several times what real vocabularies average.
const (
	MaxPieceLen    = 256      // bytes in one piece
	MaxPiecesBytes = 16 << 20 // bytes in all pieces together
)

// Validate checks that every merge refers to earlier ids and that the pieces
// stay within MaxPieceLen each and MaxPiecesBytes in all, without building them.
func (t *Tokenizer) Validate() error {
	if len(t.Merges) > MaxVocab-256 {
		return fmt.Errorf("tokenizer: %d merges, at most %d (a vocabulary of %d ids)", len(t.Merges), MaxVocab-256, MaxVocab)
	}
	lens := make([]int32, 256, 256+len(t.Merges)) // id → bytes in its piece
	for b := range lens {
		lens[b] = 1
	}
	total := int64(len(lens))
	for i, m := range t.Merges {
		for _, id := range m {
			if id < 0 || id >= 256+i {
				return fmt.Errorf("tokenizer: merge %d refers to id %d, not yet defined", i, id)
			}
		}
		n := lens[m[0]] + lens[m[1]] // each at most MaxPieceLen: no overflow
		if n > MaxPieceLen {
			return fmt.Errorf("tokenizer: merge %d (ids %d, %d) makes a %d-byte piece; pieces are at most %d bytes", i, m[0], m[1], n, MaxPieceLen)
		}
		if total += int64(n); total > MaxPiecesBytes {
			return fmt.Errorf("tokenizer: the pieces of ids 0…%d total %d bytes, more than %d", 256+i, total, MaxPiecesBytes)
		}
		lens = append(lens, n)
	}
	return nil
}

func (t *Tokenizer) build() {
	if t.pieces != nil {
		return
	}
	t.rank = make(map[[2]int]int, len(t.Merges))
	t.pieces = make([][]byte, t.Size())
	for b := range 256 {
		t.pieces[b] = []byte{byte(b)}
	}
	for i, m := range t.Merges {
		t.rank[m] = i
		t.pieces[256+i] = append(append([]byte{}, t.pieces[m[0]]...), t.pieces[m[1]]...)
	}
}

// Encode splits text into chunks (Chunks: words and the runs between them,
// the segmentation TrainBPE learns on) and each chunk into token ids by
// applying merges in rank order. Merges never cross chunk boundaries, so the
// encoding is the one the model was trained on.
func (t *Tokenizer) Encode(text []byte) []int {
	var ids []int
	for _, c := range Chunks(text) {
		ids = append(ids, t.encodeChunk(c)...)
	}
	return ids
}

// encodeChunk applies merges in rank order to the bytes of one chunk.
func (t *Tokenizer) encodeChunk(text []byte) []int {
	t.build()
	ids := make([]int, len(text))
	for i, b := range text {
		ids[i] = int(b)
	}
	for len(ids) > 1 {
		best, bestRank := [2]int{}, -1
		for i := 0; i+1 < len(ids); i++ {
			p := [2]int{ids[i], ids[i+1]}
			if r, ok := t.rank[p]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = p, r
			}
		}
		if bestRank < 0 {
			break
		}
		out := ids[:0]
		for i := 0; i < len(ids); i++ {
			if i+1 < len(ids) && ids[i] == best[0] && ids[i+1] == best[1] {
				out = append(out, 256+bestRank)
				i++
			} else {
				out = append(out, ids[i])
			}
		}
		ids = out
	}
	return ids
}

// Piece returns the bytes of one id (nil for an id the tokenizer does not have).
func (t *Tokenizer) Piece(id int) []byte {
	t.build()
	if id < 0 || id >= len(t.pieces) {
		return nil
	}
	return t.pieces[id]
}

// Decode concatenates the bytes of ids.
func (t *Tokenizer) Decode(ids []int) []byte {
	var out []byte
	for _, id := range ids {
		out = append(out, t.Piece(id)...)
	}
	return out
}
