package weights

import (
	"bytes"
	"fmt"
)

// SetEOT returns a copy of a whole weights file whose header names eot as
// the end-of-text token (eot < 0: none), in the current Version, with the
// data bytes unchanged: for files written before the field existed, and for
// tests. It refuses a file a reader would refuse, and a token id outside the
// vocabulary or a vision model (ErrCorrupt).
func SetEOT(file []byte, eot int) ([]byte, error) {
	h, err := Verify(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		return nil, err
	}
	h.EOT = nil
	if eot >= 0 {
		h.EOT = &eot
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("weights: set eot: %w", err)
	}
	head, err := encodeHeader(h, Version)
	if err != nil {
		return nil, err
	}
	return append(head, file[h.DataStart:h.DataStart+h.DataSize]...), nil
}
