package train

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// An R package's lazy-load database (data/Rdata.rdx + data/Rdata.rdb) holds
// its data sets as R serializations. The .rdx is a gzip'd serialization of a
// list whose "variables" element maps each data set's name to c(offset,
// length) in the .rdb; there, each data set is a 4-byte big-endian length and
// a zlib stream of its own serialization. This file reads the XDR ("X\n")
// serialization format, version 2 or 3, far enough for that index and for
// character vectors: R's serialize.c is the reference.

// R SEXP types and pseudo-types used by the serialization.
const (
	rSym      = 1
	rList     = 2 // pairlist
	rChar     = 9
	rLogical  = 10
	rInt      = 13
	rReal     = 14
	rString   = 16
	rVector   = 19 // generic vector (list)
	rRef      = 255
	rNilValue = 254

	rHasAttr = 1 << 9
	rHasTag  = 1 << 10

	rLatin1 = 1 << 2 // CHARSXP levels: the bytes are Latin-1
)

// robject is a decoded R value: only the parts this package reads.
type robject struct {
	kind    int
	strs    []string   // STRSXP elements; CHARSXP and SYMSXP text in strs[0]
	ints    []int32    // INTSXP, LGLSXP
	reals   []float64  // REALSXP
	elems   []*robject // VECSXP elements, pairlist values
	tags    []string   // pairlist tags
	attribs *robject   // pairlist of attributes, or nil
}

// names returns the "names" attribute.
func (o *robject) names() []string {
	if o.attribs == nil {
		return nil
	}
	for i, tag := range o.attribs.tags {
		if tag == "names" && o.attribs.elems[i].kind == rString {
			return o.attribs.elems[i].strs
		}
	}
	return nil
}

// field returns the element of a named list.
func (o *robject) field(name string) (*robject, bool) {
	for i, n := range o.names() {
		if n == name && i < len(o.elems) {
			return o.elems[i], true
		}
	}
	return nil, false
}

type rreader struct {
	r    io.Reader
	refs []*robject // symbols, in the order they were read (REFSXP indexes them from 1)
	err  error
}

var errRFormat = errors.New("not an R XDR serialization")

// unserializeR decodes one serialization: header, then the object.
func unserializeR(data []byte) (*robject, error) {
	if len(data) < 2 || string(data[:2]) != "X\n" {
		return nil, errRFormat
	}
	rd := &rreader{r: bytes.NewReader(data[2:])}
	version := rd.int()
	rd.int() // R version that wrote it
	rd.int() // oldest R version that can read it
	if version == 3 {
		rd.bytes(int(rd.int())) // native encoding name
	} else if version != 2 {
		return nil, fmt.Errorf("R serialization version %d: want 2 or 3", version)
	}
	if rd.err != nil {
		return nil, rd.err
	}
	obj := rd.item()
	if rd.err != nil {
		return nil, rd.err
	}
	return obj, nil
}

func (rd *rreader) int() int32 {
	var b [4]byte
	if rd.err == nil {
		_, rd.err = io.ReadFull(rd.r, b[:])
	}
	return int32(binary.BigEndian.Uint32(b[:]))
}

func (rd *rreader) bytes(n int) []byte {
	if rd.err != nil || n < 0 || n > 1<<30 {
		if rd.err == nil {
			rd.err = fmt.Errorf("R string length %d", n)
		}
		return nil
	}
	b := make([]byte, n)
	_, rd.err = io.ReadFull(rd.r, b)
	return b
}

func (rd *rreader) length() int {
	n := rd.int()
	if n == -1 { // long vector: two more ints
		hi, lo := rd.int(), rd.int()
		return int(int64(hi)<<32 | int64(uint32(lo)))
	}
	return int(n)
}

func (rd *rreader) item() *robject {
	if rd.err != nil {
		return nil
	}
	flags := rd.int()
	kind := int(flags & 0xff)
	levels := int(flags >> 12)
	switch kind {
	case rNilValue:
		return &robject{kind: rNilValue}
	case rRef:
		i := int(flags >> 8)
		if i == 0 {
			i = int(rd.int())
		}
		if i < 1 || i > len(rd.refs) {
			rd.err = fmt.Errorf("R reference %d of %d", i, len(rd.refs))
			return nil
		}
		return rd.refs[i-1]
	case rSym:
		name := rd.item()
		sym := &robject{kind: rSym}
		if name != nil {
			sym.strs = name.strs
		}
		rd.refs = append(rd.refs, sym)
		return sym
	case rList:
		list := &robject{kind: rList}
		for kind == rList && rd.err == nil {
			var attr *robject
			if flags&rHasAttr != 0 {
				attr = rd.item()
			}
			tag := ""
			if flags&rHasTag != 0 {
				if t := rd.item(); t != nil && len(t.strs) > 0 {
					tag = t.strs[0]
				}
			}
			if list.attribs == nil {
				list.attribs = attr
			}
			list.tags = append(list.tags, tag)
			list.elems = append(list.elems, rd.item())
			flags = rd.int()
			kind = int(flags & 0xff)
		}
		if kind != rNilValue && rd.err == nil {
			rd.err = fmt.Errorf("R pairlist ends with type %d", kind)
		}
		return list
	case rChar:
		n := int(rd.int())
		if n == -1 {
			return &robject{kind: rChar, strs: []string{""}} // NA_character_
		}
		b := rd.bytes(n)
		if levels&rLatin1 != 0 {
			b = latin1ToUTF8(b)
		}
		return &robject{kind: rChar, strs: []string{string(b)}}
	}
	obj := &robject{kind: kind}
	n := rd.length()
	switch kind {
	case rLogical, rInt:
		obj.ints = make([]int32, 0, min(n, 1<<20))
		for range n {
			obj.ints = append(obj.ints, rd.int())
		}
	case rReal:
		for range n {
			hi, lo := rd.int(), rd.int()
			obj.reals = append(obj.reals, math.Float64frombits(uint64(uint32(hi))<<32|uint64(uint32(lo))))
		}
	case rString:
		obj.strs = make([]string, 0, min(n, 1<<20))
		for range n {
			c := rd.item()
			if c == nil {
				break
			}
			if c.kind != rChar {
				rd.err = fmt.Errorf("R character vector holds type %d", c.kind)
				return nil
			}
			obj.strs = append(obj.strs, c.strs[0])
		}
	case rVector:
		for range n {
			obj.elems = append(obj.elems, rd.item())
		}
	default:
		rd.err = fmt.Errorf("R type %d is not supported", kind)
		return nil
	}
	if flags&rHasAttr != 0 {
		obj.attribs = rd.item()
	}
	return obj
}

func latin1ToUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return out
}

// ReadRData reads every character-vector data set of an R package's data
// directory (holding Rdata.rdx and Rdata.rdb), by name.
func ReadRData(dir string) (map[string][]string, error) {
	index, err := os.ReadFile(filepath.Join(dir, "Rdata.rdx"))
	if err != nil {
		return nil, fmt.Errorf("rdata: %w", err)
	}
	db, err := os.ReadFile(filepath.Join(dir, "Rdata.rdb"))
	if err != nil {
		return nil, fmt.Errorf("rdata: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(index))
	if err != nil {
		return nil, fmt.Errorf("rdata: Rdata.rdx: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("rdata: Rdata.rdx: %w", err)
	}
	idx, err := unserializeR(raw)
	if err != nil {
		return nil, fmt.Errorf("rdata: Rdata.rdx: %w", err)
	}
	vars, ok := idx.field("variables")
	if !ok {
		return nil, fmt.Errorf("rdata: Rdata.rdx: %w: no \"variables\" element", errRFormat)
	}
	out := map[string][]string{}
	for i, name := range vars.names() {
		loc := vars.elems[i]
		if len(loc.ints) != 2 {
			return nil, fmt.Errorf("rdata: %s: index entry has %d numbers, want 2", name, len(loc.ints))
		}
		off, n := int(loc.ints[0]), int(loc.ints[1])
		if off < 0 || n < 5 || off+n > len(db) {
			return nil, fmt.Errorf("rdata: %s: chunk [%d, +%d) outside Rdata.rdb (%d bytes)", name, off, n, len(db))
		}
		chunk := db[off : off+n]
		size := binary.BigEndian.Uint32(chunk)
		zr, err := zlib.NewReader(bytes.NewReader(chunk[4:]))
		if err != nil {
			return nil, fmt.Errorf("rdata: %s: %w (only zlib-compressed databases are supported)", name, err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("rdata: %s: %w", name, err)
		}
		if uint32(len(raw)) != size {
			return nil, fmt.Errorf("rdata: %s: %d bytes after inflating, header says %d", name, len(raw), size)
		}
		obj, err := unserializeR(raw)
		if err != nil {
			return nil, fmt.Errorf("rdata: %s: %w", name, err)
		}
		if obj.kind == rString {
			out[name] = obj.strs
		}
	}
	return out, nil
}
