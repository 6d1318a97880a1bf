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
