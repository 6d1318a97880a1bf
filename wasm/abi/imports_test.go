package abi

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestContractImportsNoEngine: the contract between the module and its hosts
// must not pull the engine into every host that speaks it.
func TestContractImportsNoEngine(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			if strings.Contains(imp.Path.Value, "/wasm/engine") {
				t.Errorf("%s imports %s: the ABI contract must not depend on the engine", f, imp.Path.Value)
			}
		}
	}
}
