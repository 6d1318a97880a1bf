package gguf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestLayout(t *testing.T) {
	var w Writer
	w.String("general.architecture", "llama")
	w.Uint32("n", 7)
	if err := w.Tensor("a", []uint64{3}, F32, make([]byte, 12)); err != nil {
		t.Fatal(err)
	}
	if err := w.Tensor("b", []uint64{2, 2}, F16, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Tensor("c", []uint64{2}, F16, make([]byte, 2)); err == nil {
		t.Error("Tensor accepted 2 bytes for two f16 elements")
	}
	if err := w.Tensor("d", []uint64{1}, TensorType(8), make([]byte, 1)); err == nil {
		t.Error("Tensor accepted an unsupported type")
	}
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d", n, err, buf.Len())
	}
	b := buf.Bytes()
	le := binary.LittleEndian
	if string(b[:4]) != "GGUF" || le.Uint32(b[4:]) != 3 || le.Uint64(b[8:]) != 2 || le.Uint64(b[16:]) != 2 {
		t.Fatalf("preamble %q v%d, %d tensors, %d keys", b[:4], le.Uint32(b[4:]), le.Uint64(b[8:]), le.Uint64(b[16:]))
	}
	// Data: tensor a (12 bytes, padded to 32), then b; the file ends with b's padding.
	if len(b)%Alignment != 0 || (len(b)-64)%Alignment != 0 {
		t.Errorf("file of %d bytes is not aligned", len(b))
	}
	defer func() {
		if recover() == nil {
			t.Error("a repeated key did not panic")
		}
	}()
	w.Uint32("n", 8)
}
