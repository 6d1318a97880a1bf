package model

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// sampleText is a few sentences with the features Chunks must handle: runs of
// spaces and newlines, punctuation, digits, apostrophes and UTF-8.
const sampleText = `It is a truth universally acknowledged, that a single man in
possession of a good fortune, must be in want of a wife.

However little known the feelings or views of such a man may be on his first
entering a neighbourhood, this truth is so well fixed in the minds of the
surrounding families, that he is considered the rightful property of some one
or other of their daughters.    "My dear Mr. Bennet," said his lady to him one
day, "have you heard that Netherfield Park is let at last?" -- 1813, naïve café.
`

func TestChunks(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"Hello, world", []string{"Hello", ",", " world"}},
		{"a  b", []string{"a", " ", " b"}},
		{"a\n\n  b 12.5", []string{"a", "\n\n ", " b", " 12", ".", "5"}},
		{"don't  ", []string{"don't", "  "}},
		{" ", []string{" "}},
	} {
		var got []string
		for _, c := range Chunks([]byte(tc.in)) {
			got = append(got, string(c))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Chunks(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestTrainBPE(t *testing.T) {
	text := []byte(sampleText)
	tok := TrainBPE(text, 300)
	if tok.Size() != 300 {
		t.Fatalf("TrainBPE(sample, 300) has %d ids; want 300", tok.Size())
	}
	if err := tok.Validate(); err != nil {
		t.Fatal(err)
	}
	again := TrainBPE(text, 300)
	if !slices.Equal(tok.Merges, again.Merges) {
		t.Fatal("TrainBPE is not deterministic")
	}
	if m := tok.Merges[0]; m[0] >= 256 || m[1] >= 256 {
		t.Errorf("first merge %v is not a pair of bytes", m)
	}
	ids := tok.NewEncoder().Encode(text)
	if !bytes.Equal(tok.Decode(ids), text) {
		t.Fatal("Decode(Encode(sample)) differs from sample")
	}
	if len(ids) > len(text)*2/3 {
		t.Errorf("300-id BPE trained on the sample encodes it in %d ids for %d bytes; want < 2/3", len(ids), len(text))
	}
	// Chunk-wise encoding is what training saw: each chunk alone through Encode.
	var want []int
	for _, c := range Chunks(text) {
		want = append(want, tok.Encode(c)...)
	}
	if !slices.Equal(ids, want) {
		t.Error("Encoder.Encode differs from Tokenizer.Encode chunk by chunk")
	}
}

func FuzzTokenizerRoundTrip(f *testing.F) {
	tok := TrainBPE([]byte(sampleText), 320)
	f.Add([]byte(sampleText))
	f.Add([]byte("  \n\t x"))
	f.Add([]byte{0xff, 0x00, 0xc3, 0xa9, ' ', 'a'})
	f.Fuzz(func(t *testing.T, text []byte) {
		if got := tok.Decode(tok.NewEncoder().Encode(text)); !bytes.Equal(got, text) {
			t.Errorf("Decode(Encoder.Encode(%q)) = %q", text, got)
		}
		if got := tok.Decode(tok.Encode(text)); !bytes.Equal(got, text) {
			t.Errorf("Decode(Encode(%q)) = %q", text, got)
		}
		if got := bytes.Join(Chunks(text), nil); !bytes.Equal(got, text) {
			t.Errorf("Chunks(%q) joined = %q", text, got)
		}
	})
}

// TestTrainBPEBoundsPieces: a corpus of one long repeated chunk must not
// produce a piece that Validate refuses.
func TestTrainBPEBoundsPieces(t *testing.T) {
	text := []byte(strings.Repeat(strings.Repeat("a", 1000)+" ", 20))
	tok := TrainBPE(text, 400)
	if err := tok.Validate(); err != nil {
		t.Fatalf("TrainBPE made a tokenizer Validate refuses: %v", err)
	}
	for id := 256; id < tok.Size(); id++ {
		if n := len(tok.Piece(id)); n > MaxPieceLen {
			t.Fatalf("piece %d is %d bytes", id, n)
		}
	}
}
