package webgpu_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/matedge/matedge/webgpu"
	"github.com/matedge/matedge/webgpu/webgputest"
)

const double = `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.n) { y[gid.x] = 2u * x[gid.x] + p.n; }
}`

func words(vs ...uint32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func TestInfo(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		info := d.Info()
		t.Logf("%s: %#v", info, info)
		if info.Limits.MaxStorageBufferBindingSize == 0 || info.Limits.MinStorageBufferOffsetAlignment == 0 {
			t.Errorf("Info().Limits = %+v; want nonzero limits", info.Limits)
		}
	})
}

func TestDispatchCopyRead(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		x, err := d.CreateBuffer(16)
		if err != nil {
			t.Fatal(err)
		}
		y, _ := d.CreateBuffer(16)
		z, _ := d.CreateBuffer(32)
		if err := d.WriteBuffer(x, 0, words(1, 2, 3, 4)); err != nil {
			t.Fatal(err)
		}
		p, err := d.CreatePipeline(double, 2)
		if err != nil {
			t.Fatal(err)
		}
		// Two dispatches in one submit, each with its own params.
		for _, n := range []uint32{3, 4} {
			if err := d.Dispatch(p, words(n, 0, 0, 0), []webgpu.Binding{{Buffer: x}, {Buffer: y}}, [3]uint32{1, 1, 1}); err != nil {
				t.Fatal(err)
			}
			if err := d.Copy(y, 0, z, uint64(16*(n-3)), 16); err != nil {
				t.Fatal(err)
			}
		}
		got, err := webgpu.ReadNow(d, z, 0, 32)
		if err != nil {
			t.Fatal(err)
		}
		want := words(5, 7, 9, 0, 6, 8, 10, 12)
		if string(got) != string(want) {
			t.Errorf("read = %v; want %v", got, want)
		}
	})
}

func TestErrors(t *testing.T) {
	webgputest.Run(t, func(t *testing.T, d webgpu.Device) {
		b, err := d.CreateBuffer(16)
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.CreatePipeline(double, 2)
		if err != nil {
			t.Fatal(err)
		}
		one := [3]uint32{1, 1, 1}
		params := words(1, 0, 0, 0)
		tests := []struct {
			name string
			err  error
			want error
		}{
			{"create 0", second(d.CreateBuffer(0)), webgpu.ErrArgument},
			{"create 6", second(d.CreateBuffer(6)), webgpu.ErrArgument},
			{"write past end", d.WriteBuffer(b, 8, make([]byte, 12)), webgpu.ErrRange},
			{"write misaligned", d.WriteBuffer(b, 2, make([]byte, 4)), webgpu.ErrArgument},
			{"write bad handle", d.WriteBuffer(99, 0, make([]byte, 4)), webgpu.ErrHandle},
			{"bad WGSL", second(d.CreatePipeline("fn main( {", 0)), webgpu.ErrGPU},
			{"dispatch bindings", d.Dispatch(p, params, []webgpu.Binding{{Buffer: b}}, one), webgpu.ErrArgument},
			{"dispatch params", d.Dispatch(p, params[:4], []webgpu.Binding{{Buffer: b}, {Buffer: b}}, one), webgpu.ErrArgument},
			{"dispatch groups", d.Dispatch(p, params, []webgpu.Binding{{Buffer: b}, {Buffer: b}}, [3]uint32{0, 1, 1}), webgpu.ErrArgument},
			{"dispatch range", d.Dispatch(p, params, []webgpu.Binding{{Buffer: b, Size: 32}, {Buffer: b}}, one), webgpu.ErrRange},
			{"dispatch pipeline", d.Dispatch(77, params, nil, one), webgpu.ErrHandle},
			{"copy overlap", d.Copy(b, 0, b, 4, 8), webgpu.ErrArgument},
			{"copy range", d.Copy(b, 0, b, 8, 16), webgpu.ErrRange},
			{"read range", second(d.Read(b, 12, 8)), webgpu.ErrRange},
			{"read ticket", second(d.ReadResult(5, nil)), webgpu.ErrHandle},
		}
		for _, tt := range tests {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("%s: err = %v; want %v", tt.name, tt.err, tt.want)
			}
		}
		// The device still works after all that.
		if err := d.DestroyBuffer(b); err != nil {
			t.Fatal(err)
		}
		if err := d.WriteBuffer(b, 0, make([]byte, 4)); !errors.Is(err, webgpu.ErrHandle) {
			t.Errorf("write after destroy: err = %v; want ErrHandle", err)
		}
		c, _ := d.CreateBuffer(4)
		if got, err := webgpu.ReadNow(d, c, 0, 4); err != nil || string(got) != "\x00\x00\x00\x00" {
			t.Errorf("ReadNow(new buffer) = %v, %v; want zeros", got, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.CreateBuffer(4); !errors.Is(err, webgpu.ErrHandle) {
			t.Errorf("CreateBuffer after Close: err = %v; want ErrHandle", err)
		}
	})
}

func second[T any](_ T, err error) error { return err }
