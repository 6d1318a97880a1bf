package model

import "math"

// RNG is a 32-bit PCG-style generator (O'Neill's RXS-M-XS output on an LCG).
// It uses only 32-bit integer arithmetic so that a WGSL kernel can produce the
// same stream as this code.
type RNG struct{ state uint32 }

// NewRNG seeds a generator; the same seed gives the same stream everywhere.
func NewRNG(seed uint64) *RNG {
	r := &RNG{state: uint32(seed) ^ uint32(seed>>32)*0x9E3779B9}
	r.Uint32()
	return r
}

// Uint32 advances the generator and returns 32 random bits.
func (r *RNG) Uint32() uint32 {
	r.state = r.state*747796405 + 2891336453
	s := r.state
	word := ((s >> ((s >> 28) + 4)) ^ s) * 277803737
	return (word >> 22) ^ word
}

// Float32 returns a uniform number in [0, 1) with 24 random bits.
func (r *RNG) Float32() float32 { return float32(r.Uint32()>>8) / (1 << 24) }

// Sampler picks the next token from logits.
type Sampler struct {
	Temperature float32 // 0 means greedy (argmax)
	TopK        int     // keep the K most likely tokens; 0 keeps all
	TopP        float32 // keep the smallest set whose probability reaches P; 0 or 1 keeps all
	MinP        float32 // keep tokens at least MinP times as likely as the most likely; 0 keeps all
	RNG         *RNG

	order rankOrder // scratch for ranking the vocabulary, reused between calls
}

// Sample returns a token id. It modifies logits.
func (s *Sampler) Sample(logits []float32) int {
	if s.Temperature <= 0 {
		return Argmax(logits)
	}
	for i := range logits {
		logits[i] /= s.Temperature
	}
	Softmax(logits)
	// Candidates sorted by probability, ties by id, so the order is deterministic.
	ids := s.order.rank(logits)
	if s.MinP > 0 {
		floor := s.MinP * logits[ids[0]]
		for n, id := range ids {
			if logits[id] < floor {
				ids = ids[:n]
				break
			}
		}
	}
	if s.TopK > 0 && s.TopK < len(ids) {
		ids = ids[:s.TopK]
	}
	var total float32
	for n, id := range ids {
		total += logits[id]
		if s.TopP > 0 && s.TopP < 1 && total >= s.TopP {
			ids = ids[:n+1]
			break
		}
	}
	u := s.RNG.Float32() * total
	for _, id := range ids {
		u -= logits[id]
		if u < 0 {
			return id
		}
	}
	return ids[len(ids)-1]
}

// rankOrder sorts token ids by probability, most likely first and ties by
// id: the order Sample walks and sums in. It is a stable least-significant-
// digit radix sort on the probabilities' bits, four 8-bit passes over ids that
// start in ascending order, so it gives exactly the order of a stable
// comparison sort in O(n) and without allocating once its buffers have grown.
// (Sorting the 2,048-token vocabulary with sort.SliceStable took more time in
// the wasm module than the whole forward pass.)
type rankOrder struct {
	ids, tmp []int
	keys     []uint32
	tmpKeys  []uint32
}

func (r *rankOrder) rank(p []float32) []int {
	n := len(p)
	if cap(r.ids) < n {
		r.ids, r.tmp = make([]int, n), make([]int, n)
		r.keys, r.tmpKeys = make([]uint32, n), make([]uint32, n)
	}
	ids, tmp, keys, tmpKeys := r.ids[:n], r.tmp[:n], r.keys[:n], r.tmpKeys[:n]
	for i, v := range p {
		ids[i] = i
		keys[i] = descendingKey(v)
	}
	for shift := uint(0); shift < 32; shift += 8 {
		var count [257]int
		for _, k := range keys {
			count[(k>>shift)&0xff+1]++
		}
		for d := 1; d < 257; d++ {
			count[d] += count[d-1]
		}
		for i, k := range keys {
			d := (k >> shift) & 0xff
			tmp[count[d]], tmpKeys[count[d]] = ids[i], k
			count[d]++
		}
		ids, tmp, keys, tmpKeys = tmp, ids, tmpKeys, keys
	}
	return ids // four passes: the sorted ids are back in r.ids
}

// descendingKey maps a float32 to a key whose ascending order is the floats'
// descending order: the usual sign-flip that makes float bits sort as
// integers, complemented. −0 and +0 share a key, as they compare equal.
func descendingKey(v float32) uint32 {
	if v == 0 {
		v = 0
	}
	b := math.Float32bits(v)
	if b>>31 != 0 {
		b = ^b
	} else {
		b |= 1 << 31
	}
	return ^b
}

// Penalize applies a CTRL-style repetition penalty (Keskar et al. 2019) to
// logits before Sample: the logit of every token that occurs in recent is
// divided by penalty when positive and multiplied by it when negative, so
// penalty > 1 makes repeats less likely. penalty ≤ 1 leaves logits as they are.
func Penalize(logits []float32, recent []int, penalty float32) {
	if penalty <= 1 {
		return
	}
	seen := make(map[int]bool, len(recent))
	for _, id := range recent {
		if id < 0 || id >= len(logits) || seen[id] {
			continue
		}
		seen[id] = true
		if logits[id] > 0 {
			logits[id] /= penalty
		} else {
			logits[id] *= penalty
		}
	}
}

// PenalizePresence subtracts presence from the logit of every distinct token
// in recent (the presence penalty of OpenAI's API); 0 leaves logits as they are.
func PenalizePresence(logits []float32, recent []int, presence float32) {
	if presence == 0 {
		return
	}
	seen := make(map[int]bool, len(recent))
	for _, id := range recent {
		if id < 0 || id >= len(logits) || seen[id] {
			continue
		}
		seen[id] = true
		logits[id] -= presence
	}
}

// Argmax returns the index of the largest value, the lowest index on ties,
// with the active kernel set. NaNs are never picked, unless x[0] is one: then
// it is 0 (nothing compares greater than NaN); an empty x gives 0.
func Argmax(x []float32) int { return kern.Argmax(x) }

// argmaxGo is Argmax in plain Go: the reference.
func argmaxGo(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
