package model

import (
	"bytes"
	"strings"
	"testing"
)

// doubling returns n merges, each joining the previous piece with itself:
// piece 256+i is 2^(i+1) bytes of 'a'.
func doubling(n int) [][2]int {
	m := [][2]int{{'a', 'a'}}
	for i := 1; i < n; i++ {
		m = append(m, [2]int{255 + i, 255 + i})
	}
	return m
}

// TestTokenizerValidateBounds: validation bounds every piece and the sum of
// all pieces, so that a few kilobytes of merges cannot make build() allocate
// gigabytes (issue 15, defect 3: 48 doubling merges, piece 47 is 256 TiB).
func TestTokenizerValidateBounds(t *testing.T) {
	// 8 doublings give a piece of exactly MaxPieceLen (256) bytes.
	atLimit := doubling(8)
	// Copies of a 128-byte piece joined with itself: each new piece is 256
	// bytes, and enough of them pass the total.
	tooMuch := doubling(7)
	for len(tooMuch) < MaxPiecesBytes/MaxPieceLen+16 {
		tooMuch = append(tooMuch, [2]int{256 + 6, 256 + 6})
	}
	tests := []struct {
		name   string
		merges [][2]int
		want   string // substring of the error; "" for valid
	}{
		{"bytes only", nil, ""},
		{"piece at the limit", atLimit, ""},
		{"piece one doubling past the limit", doubling(9), "512-byte piece"},
		{"merge bomb (48 doublings)", doubling(48), "512-byte piece"},
		{"total of pieces", tooMuch, "bytes, more than"},
		{"undefined id", [][2]int{{'a', 256}}, "not yet defined"},
		{"negative id", [][2]int{{-1, 'a'}}, "not yet defined"},
		{"too many merges", make([][2]int, MaxVocab-255), "merges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := Tokenizer{Merges: tt.merges}
			err := tok.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v; want an error containing %q", err, tt.want)
			}
		})
	}
	// The piece at the limit really is MaxPieceLen bytes.
	tok := Tokenizer{Merges: atLimit}
	if n := len(tok.Piece(256 + 7)); n != MaxPieceLen {
		t.Fatalf("piece 263 is %d bytes; want %d", n, MaxPieceLen)
	}
}

// FuzzTokenizerValidate: any merge list that validates builds pieces within
// the bounds, and round-trips text. Merges come from the input two bytes
// (little-endian) per id, so the fuzzer reaches long chains of merges.
func FuzzTokenizerValidate(f *testing.F) {
	enc := func(m [][2]int) []byte {
		var b []byte
		for _, p := range m {
			b = append(b, byte(p[0]), byte(p[0]>>8), byte(p[1]), byte(p[1]>>8))
		}
		return b
	}
	f.Add(enc(doubling(8)), []byte("aaaaaaaaaaaaaaaaaaaaa"))
	f.Add(enc(doubling(9)), []byte("aaaa"))
	f.Add(enc([][2]int{{'a', 'b'}, {256, 'c'}, {257, 256}}), []byte("abcab abc"))
	// Boundaries: a piece of MaxPieceLen+1 bytes (the longest valid piece
	// and one byte more, on either side), a merge naming itself, one naming
	// a later merge, the largest id the encoding can name, the last byte id
	// twice, and no merges with every byte value as text.
	f.Add(enc(append(doubling(8), [2]int{255 + 8, 'a'})), []byte("a"))
	f.Add(enc(append(doubling(8), [2]int{'a', 255 + 8})), []byte("aaa"))
	f.Add(enc([][2]int{{256, 256}}), []byte("x"))
	f.Add(enc([][2]int{{'a', 'a'}, {258, 'a'}}), []byte("aaa"))
	f.Add(enc([][2]int{{0xffff, 'a'}}), []byte("a"))
	f.Add(enc([][2]int{{255, 255}}), []byte{255, 255, 255})
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	f.Add([]byte{}, all)
	f.Fuzz(func(t *testing.T, b []byte, text []byte) {
		var tok Tokenizer
		for i := 0; i+4 <= len(b); i += 4 {
			tok.Merges = append(tok.Merges, [2]int{int(b[i]) | int(b[i+1])<<8, int(b[i+2]) | int(b[i+3])<<8})
		}
		if tok.Validate() != nil {
			return
		}
		total := 0
		for id := range tok.Size() {
			n := len(tok.Piece(id))
			if n > MaxPieceLen {
				t.Fatalf("piece %d is %d bytes", id, n)
			}
			total += n
		}
		if total > MaxPiecesBytes {
			t.Fatalf("pieces total %d bytes", total)
		}
		if got := tok.Decode(tok.Encode(text)); !bytes.Equal(got, text) {
			t.Fatalf("Decode(Encode(%q)) = %q", text, got)
		}
	})
}
