package webgpu

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocImports checks ABI.md's two function tables — what the module
// imports, and what the hosts serve besides — against the //go:wasmimport
// declarations of guest.go: the same names, and the same parameter types.
// (host/abi_doc_test.go checks the first table against the built module.)
func TestDocImports(t *testing.T) {
	declared := wasmImports(t)
	tables := functionTables(t)
	if len(tables) != 2 {
		t.Fatalf("ABI.md has %d tables under \"Functions\"; want 2 (imported, and served but not imported)", len(tables))
	}
	documented := map[string][]string{}
	for _, table := range tables {
		for name, params := range table {
			documented[name] = params
		}
	}
	for name, want := range declared {
		got, ok := documented[name]
		if !ok {
			t.Errorf("guest.go declares webgpu %s; ABI.md does not list it", name)
		} else if !slices.Equal(got, want) {
			t.Errorf("webgpu %s: ABI.md says %v, guest.go declares %v", name, got, want)
		}
	}
	for name := range documented {
		if _, ok := declared[name]; !ok {
			t.Errorf("ABI.md lists webgpu %s; guest.go does not declare it", name)
		}
	}
}

// wasmImports returns guest.go's webgpu imports and their wasm parameter types.
func wasmImports(t *testing.T) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "guest.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Doc == nil {
			continue
		}
		for _, c := range fn.Doc.List {
			module, name, ok := strings.Cut(strings.TrimPrefix(c.Text, "//go:wasmimport "), " ")
			if !ok || !strings.HasPrefix(c.Text, "//go:wasmimport ") || module != ImportModule {
				continue
			}
			var params []string
			for _, field := range fn.Type.Params.List {
				var typ string
				switch ident := types(field.Type); ident {
				case "int32", "unsafe.Pointer":
					typ = "i32"
				case "int64":
					typ = "i64"
				default:
					t.Fatalf("%s: parameter type %s has no wasm type here", name, ident)
				}
				for range max(len(field.Names), 1) {
					params = append(params, typ)
				}
			}
			out[name] = params
		}
	}
	if len(out) == 0 {
		t.Fatal("guest.go declares no //go:wasmimport functions")
	}
	return out
}

func types(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return types(e.X) + "." + e.Sel.Name
	}
	return "?"
}

// functionTables returns the tables under ABI.md's "## Functions" heading:
// name → parameter types.
func functionTables(t *testing.T) []map[string][]string {
	t.Helper()
	b, err := os.ReadFile("ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Functions\n")
	if !ok {
		t.Fatal("ABI.md has no \"## Functions\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	name := regexp.MustCompile("^`([a-z_]+)`$")
	var tables []map[string][]string
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		m := name.FindStringSubmatch(strings.TrimSpace(cells[0]))
		if m == nil {
			continue // the header or separator row
		}
		if !inTable {
			tables = append(tables, map[string][]string{})
			inTable = true
		}
		tables[len(tables)-1][m[1]] = paramTypes(strings.Trim(strings.TrimSpace(cells[1]), "`"))
	}
	return tables
}

// paramTypes reads "buffer: i32, offset: i64, ptr, len: i32", where a type
// applies to the names before it.
func paramTypes(list string) []string {
	if list == "—" || list == "" {
		return nil
	}
	var out []string
	pending := 0
	for _, p := range strings.Split(list, ",") {
		if _, typ, ok := strings.Cut(p, ":"); ok {
			for range pending + 1 {
				out = append(out, strings.TrimSpace(typ))
			}
			pending = 0
		} else {
			pending++
		}
	}
	return out
}
