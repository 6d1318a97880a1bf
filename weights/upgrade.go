package weights

import (
	"fmt"
	"io"
)

// Upgrade copies the weights file r of size bytes, of any version this
// package reads, to out as a file of the current Version: a new preamble and
// header (the same config, tokenizer, entries, meta and architecture, with
// the header's checksum) and then the data section byte for byte, so every
// tensor and its CRC-32C stay as they were. It verifies every entry first,
// so that a damaged file does not come out under a fresh header checksum.
// It returns the header as written.
func Upgrade(out io.Writer, r io.ReaderAt, size int64) (*Header, error) {
	h, err := Verify(r, size)
	if err != nil {
		return nil, err
	}
	head, err := encodeHeader(h, Version)
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(head); err != nil {
		return nil, fmt.Errorf("weights: upgrade: write header: %w", err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(r, h.DataStart, h.DataSize)); err != nil {
		return nil, fmt.Errorf("weights: upgrade: copy data: %w", err)
	}
	upgraded := *h
	upgraded.DataStart, upgraded.FormatVersion = int64(len(head)), Version
	return &upgraded, nil
}
