package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// Document is one text of a corpus, such as one novel.
type Document struct {
	Name string
	Text []byte
}

// Corpus is a set of documents split for training: the first part of each
// document trains, its contiguous tail validates. Documents are joined with
// a blank line.
type Corpus struct {
	Name       string
	Documents  []Document
	Train      []byte
	Validation []byte
	SHA256     string // hex SHA-256 of the documents joined, before the split
}

// ValidationFraction is the least share of each document held out, as its tail.
const ValidationFraction = 0.05

// AustenNovels names the data sets of r-cran-janeaustenr in publication order.
var AustenNovels = []string{"sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"}

// AustenDir is where Debian installs r-cran-janeaustenr's data; `dpkg-deb -x`
// of the .deb into D puts it under D/usr/lib/R/site-library/janeaustenr/data.
const AustenDir = "usr/lib/R/site-library/janeaustenr/data"

// ReadAusten reads Jane Austen's six novels from a janeaustenr data directory
// (AustenDir below the root the package was installed or extracted into).
// Each novel is its lines joined with "\n", exactly as the package stores them.
func ReadAusten(dir string) ([]Document, error) {
	sets, err := ReadRData(dir)
	if err != nil {
		return nil, err
	}
	var docs []Document
	for _, name := range AustenNovels {
		lines, ok := sets[name]
		if !ok {
			return nil, fmt.Errorf("austen: %s has no data set %q", dir, name)
		}
		var text bytes.Buffer
		for i, line := range lines {
			if i > 0 {
				text.WriteByte('\n')
			}
			text.WriteString(line)
		}
		docs = append(docs, Document{Name: name, Text: text.Bytes()})
	}
	return docs, nil
}

// OpticksPath is Newton's Opticks inside a Go installation: the CI fixture.
func OpticksPath(goroot string) string {
	return filepath.Join(goroot, "src", "testdata", "Isaac.Newton-Opticks.txt")
}

// ReadFile reads one text file as a one-document corpus.
func ReadFile(path string) ([]Document, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	return []Document{{Name: filepath.Base(path), Text: b}}, nil
}

// Split holds out the tail of each document for validation: at least
// ValidationFraction of its bytes, starting at a line.
func Split(name string, docs []Document) *Corpus {
	c := &Corpus{Name: name, Documents: docs}
	sum := sha256.New()
	for i, d := range docs {
		if i > 0 {
			sum.Write([]byte("\n\n"))
			c.Train = append(c.Train, "\n\n"...)
			c.Validation = append(c.Validation, "\n\n"...)
		}
		sum.Write(d.Text)
		cut := splitPoint(d.Text)
		c.Train = append(c.Train, d.Text[:cut]...)
		c.Validation = append(c.Validation, d.Text[cut:]...)
	}
	c.SHA256 = hex.EncodeToString(sum.Sum(nil))
	return c
}

// splitPoint is the start of the line that holds byte (1 − ValidationFraction)·len.
func splitPoint(text []byte) int {
	cut := int(float64(len(text)) * (1 - ValidationFraction))
	if i := bytes.LastIndexByte(text[:cut], '\n'); i >= 0 {
		return i + 1
	}
	return 0
}

// AustenSHA256 is Split("austen", ReadAusten(…)).SHA256 for r-cran-janeaustenr 1.0.0-1.
const AustenSHA256 = "7f77b3747b535329741d65eafa6742c714087743969518a1a5e15a7afe058272"
