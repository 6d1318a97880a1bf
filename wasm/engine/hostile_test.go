package engine

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/matedge/matedge/weights"
	"github.com/vmihailenco/msgpack/v5"
)

// TestHeaderDataSizeOverflow: a small model whose header claims a data size
// near 2^63, with the file size unknown (a download), must be refused with
// ErrTooLarge: the size check must not wrap (issue 15, defect 2).
func TestHeaderDataSizeOverflow(t *testing.T) {
	c := weights.TinyConfig()
	for _, size := range []int64{math.MaxInt64, math.MaxInt64 - 100, 1 << 62, MaxModelBytes} {
		h := weights.Header{Config: c, Entries: weights.Plan(c, weights.F32), DataSize: size}
		head, err := msgpack.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		file := make([]byte, weights.Preamble, weights.Preamble+len(head))
		copy(file, weights.Magic)
		binary.LittleEndian.PutUint32(file[4:], weights.Version)
		binary.LittleEndian.PutUint32(file[8:], uint32(len(head)))
		file = append(file, head...)
		var e Engine
		if _, err := e.LoadHeader(file, -1); !errors.Is(err, weights.ErrTooLarge) {
			t.Errorf("LoadHeader(data size %d) = %v; want ErrTooLarge", size, err)
		}
	}
}
