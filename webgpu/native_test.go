//go:build cgo && !wasip1

package webgpu

import (
	"errors"
	"testing"
)

// BenchmarkBindGroup times what the bind group cache saves per dispatch:
// creating (and releasing) a group of a uniform and two storage buffers,
// against finding it in the cache. (Inside package webgpu, so it opens the
// device itself: webgputest imports this package.)
func BenchmarkBindGroup(b *testing.B) {
	dev, err := Open()
	if errors.Is(err, ErrNoAdapter) {
		b.Skipf("needs a GPU adapter (install libvulkan1 mesa-vulkan-drivers for lavapipe): %v", err)
	}
	if err != nil {
		b.Fatal(err)
	}
	d := dev.(*native)
	defer d.Close()
	p, err := d.CreatePipeline(`
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(1)
fn main() { y[0] = x[0] + p.n; }`, 2)
	if err != nil {
		b.Fatal(err)
	}
	x, _ := d.CreateBuffer(16)
	y, _ := d.CreateBuffer(16)
	if err := d.growUniform(paramSlot); err != nil {
		b.Fatal(err)
	}
	c := command{pipeline: p, paramsSize: 16, bindings: []Binding{{Buffer: x, Size: 16}, {Buffer: y, Size: 16}}}
	b.Run("create", func(b *testing.B) {
		for b.Loop() {
			d.groups.clear()
			if _, _, err := d.bindGroup(d.pipelines[p], c, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := d.bindGroup(d.pipelines[p], c, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
