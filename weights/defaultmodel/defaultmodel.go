// Package defaultmodel embeds the model that matedge uses when none is given.
// Only hosts import it: the wasm module receives weights bytes from its host,
// never carries them.
package defaultmodel

import (
	_ "embed"
)

// Name is the file name the default model is served under.
const Name = "default.matw"

// Bytes is the default model's weights file.
//
//go:embed default.matw
var Bytes []byte

// The vision demo's model and index: a MatViT trained on Fashion-MNIST
// (weights/VISION.md) and an index of its first 2,000 training images
// built by its XL encoder, with their pixels (matedge index -limit 2000
// -mix XL -images -dtype f16).
const (
	VisionName      = "matvit.matw"
	VisionIndexName = "matvit-xl.mati"
)

//go:embed matvit.matw
var VisionBytes []byte

//go:embed matvit-xl.mati
var VisionIndexBytes []byte

// Files are every embedded file, by the name it is served under.
func Files() map[string][]byte {
	return map[string][]byte{Name: Bytes, VisionName: VisionBytes, VisionIndexName: VisionIndexBytes}
}
