// Package gguf writes GGUF files (version 3), the format of llama.cpp and
// ggml:
//
//	u32 magic "GGUF" | u32 version 3 | u64 tensor count | u64 metadata count
//	metadata: key (string) | u32 value type | value          … repeated
//	tensor infos: name (string) | u32 n_dims | u64 dims[n_dims] (ne0 first:
//	              the fastest-varying dimension) | u32 ggml type | u64 offset
//	padding to the alignment (general.alignment, default 32)
//	tensor data, each tensor at its offset from here, itself aligned
//
// A string is a u64 byte length and the bytes (no terminator); an array is
// a u32 element type, a u64 count and the elements. Everything is
// little-endian.
package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Version is the GGUF version written.
const Version = 3

// Alignment is the default (and this writer's) data alignment.
const Alignment = 32

// TensorType is a ggml element type.
type TensorType uint32

// The ggml types this writer stores.
const (
	F32 TensorType = 0
	F16 TensorType = 1
)

// value types of metadata
const (
	typeUint32  = 4
	typeInt32   = 5
	typeFloat32 = 6
	typeBool    = 7
	typeString  = 8
	typeArray   = 9
)

// Writer collects metadata and tensors and writes them as one file.
type Writer struct {
	meta    bytes.Buffer
	nMeta   uint64
	keys    map[string]bool
	tensors []tensor
}

type tensor struct {
	name string
	dims []uint64
	typ  TensorType
	data []byte
}

func (w *Writer) key(k string, typ uint32) {
	if w.keys == nil {
		w.keys = map[string]bool{}
	}
	if w.keys[k] {
		panic("gguf: metadata key " + k + " twice")
	}
	w.keys[k] = true
	w.nMeta++
	writeString(&w.meta, k)
	binary.Write(&w.meta, binary.LittleEndian, typ)
}

func writeString(b *bytes.Buffer, s string) {
	binary.Write(b, binary.LittleEndian, uint64(len(s)))
	b.WriteString(s)
}

// String adds a string value.
func (w *Writer) String(key, v string) { w.key(key, typeString); writeString(&w.meta, v) }

// Uint32 adds a u32 value.
func (w *Writer) Uint32(key string, v uint32) {
	w.key(key, typeUint32)
	binary.Write(&w.meta, binary.LittleEndian, v)
}

// Float32 adds an f32 value.
func (w *Writer) Float32(key string, v float32) {
	w.key(key, typeFloat32)
	binary.Write(&w.meta, binary.LittleEndian, math.Float32bits(v))
}

// Bool adds a bool value.
func (w *Writer) Bool(key string, v bool) {
	w.key(key, typeBool)
	b := byte(0)
	if v {
		b = 1
	}
	w.meta.WriteByte(b)
}

// Uint32s adds an array of u32.
func (w *Writer) Uint32s(key string, v []uint32) {
	w.key(key, typeArray)
	binary.Write(&w.meta, binary.LittleEndian, uint32(typeUint32))
	binary.Write(&w.meta, binary.LittleEndian, uint64(len(v)))
	binary.Write(&w.meta, binary.LittleEndian, v)
}

// Int32s adds an array of i32.
func (w *Writer) Int32s(key string, v []int32) {
	w.key(key, typeArray)
	binary.Write(&w.meta, binary.LittleEndian, uint32(typeInt32))
	binary.Write(&w.meta, binary.LittleEndian, uint64(len(v)))
	binary.Write(&w.meta, binary.LittleEndian, v)
}

// Strings adds an array of strings.
func (w *Writer) Strings(key string, v []string) {
	w.key(key, typeArray)
	binary.Write(&w.meta, binary.LittleEndian, uint32(typeString))
	binary.Write(&w.meta, binary.LittleEndian, uint64(len(v)))
	for _, s := range v {
		writeString(&w.meta, s)
	}
}

// Tensor adds a tensor of shape dims (ne0 first: for a row-major
// [rows][cols] matrix, dims is {cols, rows}) whose little-endian elements
// of type typ are data.
func (w *Writer) Tensor(name string, dims []uint64, typ TensorType, data []byte) error {
	n := uint64(1)
	for _, d := range dims {
		n *= d
	}
	size := map[TensorType]uint64{F32: 4, F16: 2}[typ]
	if size == 0 {
		return fmt.Errorf("gguf: tensor %q: unsupported type %d", name, typ)
	}
	if n*size != uint64(len(data)) {
		return fmt.Errorf("gguf: tensor %q: dims %v of type %d need %d bytes, have %d", name, dims, typ, n*size, len(data))
	}
	w.tensors = append(w.tensors, tensor{name, dims, typ, data})
	return nil
}

func pad(n uint64) uint64 { return (Alignment - n%Alignment) % Alignment }

// WriteTo writes the file.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	var head bytes.Buffer
	head.WriteString("GGUF")
	binary.Write(&head, binary.LittleEndian, uint32(Version))
	binary.Write(&head, binary.LittleEndian, uint64(len(w.tensors)))
	binary.Write(&head, binary.LittleEndian, w.nMeta)
	head.Write(w.meta.Bytes())
	var off uint64
	for _, t := range w.tensors {
		writeString(&head, t.name)
		binary.Write(&head, binary.LittleEndian, uint32(len(t.dims)))
		binary.Write(&head, binary.LittleEndian, t.dims)
		binary.Write(&head, binary.LittleEndian, uint32(t.typ))
		binary.Write(&head, binary.LittleEndian, off)
		off += uint64(len(t.data)) + pad(uint64(len(t.data)))
	}
	head.Write(make([]byte, pad(uint64(head.Len()))))
	total := int64(0)
	n, err := out.Write(head.Bytes())
	total += int64(n)
	if err != nil {
		return total, err
	}
	for _, t := range w.tensors {
		for _, b := range [][]byte{t.data, make([]byte, pad(uint64(len(t.data))))} {
			n, err := out.Write(b)
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}
