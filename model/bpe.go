package model

import (
	"container/heap"
	"slices"
)

// Training a byte-level BPE tokenizer. Text is first split into chunks (words
// with their leading space, runs of digits, punctuation, whitespace); merges
// never cross a chunk boundary. Training counts each distinct chunk once with
// its frequency, so its cost grows with the vocabulary of the text, not its
// length, and Encoder caches the ids of each distinct chunk for the same reason.

// byte classes for Chunks
const (
	classSpace = iota
	classLetter
	classDigit
	classOther
)

func byteClass(b byte) int {
	switch {
	case b == ' ' || b == '\n' || b == '\r' || b == '\t' || b == '\v' || b == '\f':
		return classSpace
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b == '\'', b >= 0x80:
		return classLetter // bytes ≥ 0x80 are UTF-8 sequences: keep them in words
	case b >= '0' && b <= '9':
		return classDigit
	}
	return classOther
}

// Chunks splits text into the pieces BPE works within: an optional single
// space followed by a run of letters, of digits, or of other non-space bytes;
// or a run of whitespace (leaving its last space to a word that follows).
// The chunks concatenate back to text.
func Chunks(text []byte) [][]byte {
	var out [][]byte
	for i := 0; i < len(text); {
		start := i
		if text[i] == ' ' && i+1 < len(text) && byteClass(text[i+1]) != classSpace {
			i++
		}
		class := byteClass(text[i])
		for i < len(text) && byteClass(text[i]) == class {
			i++
		}
		if class == classSpace && i < len(text) && i-start > 1 && text[i-1] == ' ' {
			i-- // the last space starts the next word
		}
		out = append(out, text[start:i])
	}
	return out
}

// TrainBPE learns merges on text until the tokenizer has vocabSize ids or no
// pair occurs twice. Ties between equally frequent pairs go to the smaller
// pair of ids, so the result depends on nothing but text and vocabSize.
func TrainBPE(text []byte, vocabSize int) Tokenizer {
	counts := map[string]int{}
	for _, c := range Chunks(text) {
		counts[string(c)]++
	}
	distinct := make([]string, 0, len(counts))
	for c := range counts {
		distinct = append(distinct, c)
	}
	slices.Sort(distinct)

	words := make([][]int, len(distinct)) // [word][symbol] current ids of each distinct chunk
	freq := make([]int, len(distinct))    // [word] occurrences in text
	pairs := map[[2]int]int{}             // pair → occurrences in text
	where := map[[2]int][]int{}           // pair → words it may occur in (may repeat or be stale)
	for w, c := range distinct {
		words[w] = make([]int, len(c))
		for i := range len(c) {
			words[w][i] = int(c[i])
		}
		freq[w] = counts[c]
		for i := 0; i+1 < len(c); i++ {
			p := [2]int{words[w][i], words[w][i+1]}
			pairs[p] += freq[w]
			where[p] = append(where[p], w)
		}
	}
	queue := &pairQueue{}
	for p, n := range pairs {
		queue.items = append(queue.items, pairCount{p, n})
	}
	heap.Init(queue)

	var tok Tokenizer
	seen := make([]int, len(words)) // [word] last merge that rewrote it, plus one
	pieceLen := make([]int, 256)    // [id] bytes of the id's piece
	for i := range pieceLen {
		pieceLen[i] = 1
	}
	total := 256 // bytes of all pieces, bounded like Validate's
	for 256+len(tok.Merges) < vocabSize && queue.Len() > 0 {
		top := heap.Pop(queue).(pairCount)
		if pairs[top.pair] != top.count {
			continue // stale entry: the count changed after it was pushed
		}
		if top.count < 2 {
			break
		}
		length := pieceLen[top.pair[0]] + pieceLen[top.pair[1]]
		if length > MaxPieceLen {
			continue // a piece Validate would refuse (a long repeated chunk)
		}
		if total+length > MaxPiecesBytes {
			break
		}
		pieceLen, total = append(pieceLen, length), total+length
		id := 256 + len(tok.Merges)
		tok.Merges = append(tok.Merges, top.pair)
		touched := map[[2]int]bool{}
		for _, w := range where[top.pair] {
			if seen[w] == id+1 {
				continue
			}
			seen[w] = id + 1
			syms := words[w]
			for i := 0; i+1 < len(syms); i++ {
				p := [2]int{syms[i], syms[i+1]}
				pairs[p] -= freq[w]
				touched[p] = true
			}
			out := syms[:0]
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == top.pair[0] && syms[i+1] == top.pair[1] {
					out = append(out, id)
					i++
				} else {
					out = append(out, syms[i])
				}
			}
			words[w] = out
			for i := 0; i+1 < len(out); i++ {
				p := [2]int{out[i], out[i+1]}
				pairs[p] += freq[w]
				where[p] = append(where[p], w)
				touched[p] = true
			}
		}
		delete(where, top.pair)
		keys := make([][2]int, 0, len(touched))
		for p := range touched {
			keys = append(keys, p)
		}
		slices.SortFunc(keys, comparePairs)
		for _, p := range keys {
			if pairs[p] > 0 {
				heap.Push(queue, pairCount{p, pairs[p]})
			} else {
				delete(pairs, p)
			}
		}
	}
	return tok
}

func comparePairs(a, b [2]int) int {
	if a[0] != b[0] {
		return a[0] - b[0]
	}
	return a[1] - b[1]
}

type pairCount struct {
	pair  [2]int
	count int
}

// pairQueue is a max-heap by count, then by smallest pair.
type pairQueue struct{ items []pairCount }

func (q *pairQueue) Len() int { return len(q.items) }
func (q *pairQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	if a.count != b.count {
		return a.count > b.count
	}
	return comparePairs(a.pair, b.pair) < 0
}
func (q *pairQueue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *pairQueue) Push(x any)    { q.items = append(q.items, x.(pairCount)) }
func (q *pairQueue) Pop() any {
	x := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return x
}

// Encoder is Tokenizer.Encode with a memory: it remembers the ids of every
// distinct chunk, which makes encoding a whole corpus for training fast. Not
// safe for concurrent use.
type Encoder struct {
	tok   *Tokenizer
	cache map[string][]int
}

// NewEncoder returns a caching chunk-wise encoder for t.
func (t *Tokenizer) NewEncoder() *Encoder {
	return &Encoder{tok: t, cache: map[string][]int{}}
}

// Encode returns the ids of text. Decode(Encode(text)) == text.
func (e *Encoder) Encode(text []byte) []int {
	var ids []int
	for _, c := range Chunks(text) {
		cached, ok := e.cache[string(c)]
		if !ok {
			cached = e.tok.encodeChunk(c)
			e.cache[string(c)] = cached
		}
		ids = append(ids, cached...)
	}
	return ids
}
