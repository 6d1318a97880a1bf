package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

// DefaultModelName is what OpenModel calls the embedded default model in
// messages.
const DefaultModelName = "default model"

// OpenModel opens a weights file, or the embedded default model for an
// empty path, and returns it with its size and a name for messages. The
// caller closes it when it is an io.Closer (a file).
func OpenModel(path string) (io.ReaderAt, int64, string, error) {
	if path == "" {
		return bytes.NewReader(defaultmodel.Bytes), int64(len(defaultmodel.Bytes)), DefaultModelName, nil
	}
	f, size, err := weights.OpenFile(path)
	if err != nil {
		return nil, 0, "", err
	}
	return f, size, path, nil
}

// LoadModel reads every weight of a file, or of the embedded default model
// for an empty path, natively (no module).
func LoadModel(path string) (*model.Weights, *weights.Header, string, error) {
	r, size, name, err := OpenModel(path)
	if err != nil {
		return nil, nil, "", err
	}
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	w, h, err := weights.Load(r, size)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", name, err)
	}
	return w, h, name, nil
}

// ReadModule reads matedge.wasm from wasmPath, or where FindModule finds it
// when the path is empty.
func ReadModule(wasmPath string) ([]byte, error) {
	if wasmPath == "" {
		p, err := FindModule()
		if err != nil {
			return nil, err
		}
		wasmPath = p
	}
	return os.ReadFile(wasmPath)
}

// StartModule compiles and instantiates matedge.wasm (ReadModule's) with
// cfg; stop closes its runtime.
func StartModule(ctx context.Context, wasmPath string, cfg Config) (mod *Module, stop func(), err error) {
	wasm, err := ReadModule(wasmPath)
	if err != nil {
		return nil, nil, err
	}
	rt, err := NewRuntime(ctx, wasm, cfg)
	if err != nil {
		return nil, nil, err
	}
	mod, err = rt.Instantiate(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, nil, err
	}
	return mod, func() { rt.Close(ctx) }, nil
}
