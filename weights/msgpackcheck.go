package weights

import (
	"encoding/binary"
	"fmt"
)

// checkMsgpack walks one msgpack document without decoding it and checks that
// every length it declares fits in the bytes that follow, and that the
// document is all of b: no bytes follow it. The msgpack decoder
// allocates a slice of the declared length before reading its elements, so a
// 40-byte header that claims a 4-billion-entry array would otherwise exhaust
// memory; after this check no declared length exceeds len(b).
func checkMsgpack(b []byte) error {
	pos, pending := 0, 1 // pending: objects still to read
	need := func(n uint64) error {
		if n > uint64(len(b)-pos) {
			return fmt.Errorf("msgpack: length %d at byte %d runs past the end (%d bytes)", n, pos, len(b))
		}
		return nil
	}
	// length reads an n-byte big-endian length at pos.
	length := func(n int) (uint64, error) {
		if err := need(uint64(n)); err != nil {
			return 0, err
		}
		var v uint64
		switch n {
		case 1:
			v = uint64(b[pos])
		case 2:
			v = uint64(binary.BigEndian.Uint16(b[pos:]))
		case 4:
			v = uint64(binary.BigEndian.Uint32(b[pos:]))
		}
		pos += n
		return v, nil
	}
	for pending > 0 {
		if pos >= len(b) {
			return fmt.Errorf("msgpack: document ends inside an object at byte %d", pos)
		}
		c := b[pos]
		pos++
		pending--
		var skip, elems uint64
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			elems = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			elems = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			skip, err = length(1)
		case c == 0xc5 || c == 0xda:
			skip, err = length(2)
		case c == 0xc6 || c == 0xdb:
			skip, err = length(4)
		case c == 0xc7, c == 0xc8, c == 0xc9: // ext 8/16/32: length, type byte, data
			skip, err = length(1 << (c - 0xc7))
			skip++
		case c == 0xca:
			skip = 4
		case c == 0xcb:
			skip = 8
		case c >= 0xcc && c <= 0xcf:
			skip = 1 << (c - 0xcc)
		case c >= 0xd0 && c <= 0xd3:
			skip = 1 << (c - 0xd0)
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			elems, err = length(2)
		case c == 0xdd:
			elems, err = length(4)
		case c == 0xde:
			elems, err = length(2)
			elems *= 2
		case c == 0xdf:
			elems, err = length(4)
			elems *= 2
		default:
			return fmt.Errorf("msgpack: invalid byte %#x at %d", c, pos-1)
		}
		if err != nil {
			return err
		}
		if err := need(skip); err != nil {
			return err
		}
		pos += int(skip)
		// Every element takes at least one byte.
		if uint64(pending)+elems > uint64(len(b)-pos) {
			return fmt.Errorf("msgpack: %d elements declared at byte %d, only %d bytes left", elems, pos, len(b)-pos)
		}
		pending += int(elems)
	}
	if pos != len(b) {
		return fmt.Errorf("msgpack: %d bytes after the document's end at byte %d", len(b)-pos, pos)
	}
	return nil
}
