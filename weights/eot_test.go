package weights

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/matedge/matedge/model"
)

// TestSetEOT: a file given an end-of-text token reads back with it and the
// same data; clearing it gives a file without the key; ids outside the
// vocabulary and vision models are refused, on writing and on reading.
func TestSetEOT(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, Random(TinyConfig(), 1), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	h0, err := ReadHeader(bytes.NewReader(plain), int64(len(plain)))
	if err != nil {
		t.Fatal(err)
	}
	if h0.EOT != nil {
		t.Fatalf("a file written without an end-of-text token reads with %d", *h0.EOT)
	}
	withEOT, err := SetEOT(plain, 10)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Verify(bytes.NewReader(withEOT), int64(len(withEOT)))
	if err != nil {
		t.Fatal(err)
	}
	if h.EOT == nil || *h.EOT != 10 {
		t.Fatalf("eot = %v; want 10", h.EOT)
	}
	if !bytes.Equal(withEOT[h.DataStart:], plain[h0.DataStart:]) {
		t.Error("the data changed")
	}
	cleared, err := SetEOT(withEOT, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cleared, plain) {
		t.Error("clearing the end-of-text token does not give the file back")
	}
	for _, bad := range []int{256, 1 << 20} {
		if _, err := SetEOT(plain, bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("SetEOT(%d) = %v; want ErrCorrupt", bad, err)
		}
	}
	// A reader refuses a header whose eot is out of range, as Validate says.
	bad := *h
	eot := -3
	bad.EOT = &eot
	if err := bad.Validate(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Validate(eot -3) = %v; want ErrCorrupt", err)
	}
	var vision bytes.Buffer
	if err := Write(&vision, Random(TinyVisionConfig(), 1), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := SetEOT(vision.Bytes(), 1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("SetEOT on a vision model = %v; want ErrCorrupt", err)
	}
	// The committed files have none.
	for _, path := range []string{"testdata/tiny.matw", "defaultmodel/default.matw"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if h, err := ReadHeader(bytes.NewReader(b), int64(len(b))); err != nil || h.EOT != nil {
			t.Errorf("%s: eot %v, %v; want none", path, h.EOT, err)
		}
	}
}
