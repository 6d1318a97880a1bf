package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// opticks is the CI corpus: Newton's Opticks from the Go installation.
func opticks(t testing.TB) *Corpus {
	t.Helper()
	docs, err := ReadFile(OpticksPath(runtimeGOROOT()))
	if err != nil {
		t.Skipf("no Opticks fixture: %v", err)
	}
	return Split("opticks", docs)
}

func TestSplit(t *testing.T) {
	docs := []Document{
		{Name: "a", Text: bytes.Repeat([]byte("line of text\n"), 100)},
		{Name: "b", Text: []byte("no newline at all")},
	}
	c := Split("test", docs)
	if got := len(c.Train) + len(c.Validation); got != len(docs[0].Text)+len(docs[1].Text)+2*2 {
		t.Errorf("train + validation = %d bytes; want the documents and separators", got)
	}
	cut := splitPoint(docs[0].Text)
	if tail := len(docs[0].Text) - cut; float64(tail) < ValidationFraction*float64(len(docs[0].Text)) || docs[0].Text[cut-1] != '\n' {
		t.Errorf("splitPoint holds out %d of %d bytes at %d; want ≥ 5%% starting a line", tail, len(docs[0].Text), cut)
	}
	if again := Split("test", docs); again.SHA256 != c.SHA256 || !bytes.Equal(again.Train, c.Train) {
		t.Error("Split is not deterministic")
	}
}

func TestOpticks(t *testing.T) {
	c := opticks(t)
	if n := len(c.Train) + len(c.Validation); n < 500_000 {
		t.Fatalf("Opticks has %d bytes; want about 567 KB", n)
	}
	if share := float64(len(c.Validation)) / float64(len(c.Train)+len(c.Validation)); share < ValidationFraction {
		t.Errorf("validation share %.3f; want ≥ %.2f", share, ValidationFraction)
	}
}

var update = flag.Bool("update", false, "TestAusten: rewrite testdata/austen-validation.txt from the novels")

// TestAusten reads the real novels where r-cran-janeaustenr is installed or
// was extracted to $MATEDGE_AUSTEN (the root `dpkg-deb -x` wrote to).
func TestAusten(t *testing.T) {
	// Where LoadCorpus finds it: installed, extracted into the cache, or
	// fetched now (apt-get download, as matedge train does).
	dir, err := austenDir(DefaultCache())
	if root := os.Getenv("MATEDGE_AUSTEN"); root != "" {
		dir, err = filepath.Join(root, AustenDir), nil
	}
	if err != nil {
		t.Skipf("needs r-cran-janeaustenr: %v", err)
	}
	docs, err := ReadAusten(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := Split("austen", docs)
	if c.SHA256 != AustenSHA256 {
		t.Errorf("Austen corpus SHA-256 = %s; want %s", c.SHA256, AustenSHA256)
	}
	if *update {
		if err := os.WriteFile("testdata/austen-validation.txt", c.Validation, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if sum := sha256.Sum256(c.Validation); hex.EncodeToString(sum[:]) != austenValidationSHA256 {
		t.Errorf("Austen validation split has sha256 %x; testdata/austen-validation.txt is %s (rerun with -update and update the constant)", sum, austenValidationSHA256)
	}
	if !bytes.HasPrefix(docs[1].Text, []byte("PRIDE AND PREJUDICE\n\nBy Jane Austen\n\n\n\nChapter 1\n\n\nIt is a truth universally acknowledged")) {
		t.Errorf("Pride and Prejudice starts %q", docs[1].Text[:80])
	}
}

func runtimeGOROOT() string { return runtime.GOROOT() }
