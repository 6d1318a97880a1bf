package weights

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// HeaderLen reads the preamble (the first Preamble bytes of a file) and returns
// how many bytes from the start of the file ParseHeader needs: the preamble,
// the msgpack header and, from version 2 on, the header's checksum.
func HeaderLen(pre []byte) (int64, error) {
	if len(pre) < Preamble {
		return 0, fmt.Errorf("weights: %w: %d bytes, the preamble alone is %d", ErrTruncated, len(pre), Preamble)
	}
	if string(pre[:4]) != Magic {
		return 0, fmt.Errorf("weights: %w: starts with %q, want %q", ErrMagic, pre[:4], Magic)
	}
	v := binary.LittleEndian.Uint32(pre[4:])
	if v < OldestVersion || v > Version {
		hint := ""
		if v > Version {
			hint = "; this file needs a newer matedge"
		}
		return 0, fmt.Errorf("weights: %w %d (this build reads versions %d to %d%s)", ErrVersion, v, OldestVersion, Version, hint)
	}
	n := binary.LittleEndian.Uint32(pre[8:])
	if n > MaxHeaderLen {
		return 0, fmt.Errorf("weights: %w: %d bytes, limit %d", ErrTooLarge, n, MaxHeaderLen)
	}
	if v == 1 {
		return Preamble + int64(n), nil
	}
	return Preamble + int64(n) + HeaderCRCLen, nil
}

// ParseHeader decodes and validates the header from the first bytes of a file
// (at least HeaderLen of them). fileSize is the size of the whole file, or -1
// when it is not known yet (a download that has not finished).
func ParseHeader(b []byte, fileSize int64) (*Header, error) {
	need, err := HeaderLen(b)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < need {
		return nil, fmt.Errorf("weights: %w: header needs %d bytes, have %d", ErrTruncated, need, len(b))
	}
	version := int(binary.LittleEndian.Uint32(b[4:]))
	docEnd := Preamble + int64(binary.LittleEndian.Uint32(b[8:])) // the msgpack document is b[Preamble:docEnd]
	if version >= 2 {
		// The checksum covers every byte before it: magic, version, length and document.
		stored := binary.LittleEndian.Uint32(b[docEnd:])
		if got := Checksum(b[:docEnd]); got != stored {
			return nil, fmt.Errorf("weights: %w: bytes 0-%d have CRC-32C %08x, the header says %08x", ErrHeaderChecksum, docEnd-1, got, stored)
		}
	}
	if err := checkMsgpack(b[Preamble:docEnd]); err != nil {
		return nil, fmt.Errorf("weights: %w: %v", ErrCorrupt, err)
	}
	var h Header
	dec := msgpack.NewDecoder(bytes.NewReader(b[Preamble:docEnd]))
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("weights: %w: decode header: %v", ErrCorrupt, err)
	}
	h.DataStart = dataStart(need)
	h.FormatVersion = version
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	// fileSize < DataStart + DataSize, without the sum: DataSize comes from
	// the file and may be anything up to 2^63-1.
	if fileSize >= 0 && (fileSize < h.DataStart || fileSize-h.DataStart < h.DataSize) {
		return nil, fmt.Errorf("weights: %w: file has %d bytes, header describes %d bytes of data from byte %d", ErrTruncated, fileSize, h.DataSize, h.DataStart)
	}
	// With the size unknown, at least the data's end must be a file offset:
	// then no DataStart + Offset + Length of a valid entry wraps.
	if h.DataSize > math.MaxInt64-h.DataStart {
		return nil, fmt.Errorf("weights: %w: %d bytes of data from byte %d end past 2^63", ErrTooLarge, h.DataSize, h.DataStart)
	}
	return &h, nil
}

// ReadHeader reads and validates the header at the start of r.
func ReadHeader(r io.ReaderAt, fileSize int64) (*Header, error) {
	pre := make([]byte, Preamble)
	if _, err := r.ReadAt(pre, 0); err != nil {
		return nil, fmt.Errorf("weights: %w: reading preamble: %v", ErrTruncated, err)
	}
	need, err := HeaderLen(pre)
	if err != nil {
		return nil, err
	}
	if fileSize >= 0 && need > fileSize {
		return nil, fmt.Errorf("weights: %w: header needs %d bytes, file has %d", ErrTruncated, need, fileSize)
	}
	b := make([]byte, need)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("weights: %w: reading header: %v", ErrTruncated, err)
	}
	return ParseHeader(b, fileSize)
}
