//go:build !cgo && !wasip1

package webgpu

import "fmt"

// Open reports ErrNoAdapter: this build has neither cgo (for the native
// implementation) nor the wasip1 imports.
func Open() (Device, error) {
	return nil, fmt.Errorf("%w: built without cgo", ErrNoAdapter)
}
