//go:build wasip1

// Command badabi is a module that claims an ABI version no host speaks, for
// the host's version check test.
package main

func main() {}

//go:wasmexport abi_version
func abiVersion() uint32 { return 999 }
