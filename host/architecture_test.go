package host

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestArchitectureImports checks ARCHITECTURE.md's layout table: each
// folder's Go packages import only the project folders and third-party
// modules its "may import" column names, in the native and the wasip1 build.
func TestArchitectureImports(t *testing.T) {
	const project = "github.com/matedge/matedge/"
	thirdParty := map[string]string{ // as the table names them
		"msgpack":           "github.com/vmihailenco/msgpack/",
		"wazero":            "github.com/tetratelabs/wazero",
		"cogentcore/webgpu": "github.com/cogentcore/webgpu/",
	}
	type rule struct {
		folders  map[string]bool
		external []string // import path prefixes
		anything bool
	}
	rules := map[string]rule{}
	var table mdTable
	for _, tb := range mdTables(t, "../ARCHITECTURE.md") {
		if tb.heading == "Layout" {
			table = tb
		}
	}
	if len(table.rows) == 0 {
		t.Fatal("ARCHITECTURE.md has no table under \"Layout\"")
	}
	for _, row := range table.rows {
		folder := strings.TrimSuffix(names(row[0])[0], "/")
		r := rule{folders: map[string]bool{folder: true}, anything: strings.Contains(row[2], "everything Go")}
		for _, name := range names(row[2]) {
			r.folders[strings.TrimSuffix(name, "/")] = true
		}
		for word, prefix := range thirdParty {
			if strings.Contains(row[2], word) {
				r.external = append(r.external, prefix)
			}
		}
		rules[folder] = r
	}

	for _, env := range [][]string{nil, {"GOOS=wasip1", "GOARCH=wasm"}} {
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-e", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
		cmd.Dir = ".."
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v", env, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			fields := strings.Fields(line)
			pkg := strings.TrimPrefix(fields[0], project)
			folder, _, _ := strings.Cut(pkg, "/")
			r, ok := rules[folder]
			if !ok {
				t.Errorf("package %s is in folder %s/, which ARCHITECTURE.md's layout does not list", fields[0], folder)
				continue
			}
			for _, imp := range fields[1:] {
				switch {
				case r.anything:
				case strings.HasPrefix(imp, project):
					to, _, _ := strings.Cut(strings.TrimPrefix(imp, project), "/")
					if !r.folders[to] {
						t.Errorf("%s %v imports %s: ARCHITECTURE.md lets %s/ import only %v", pkg, env, imp, folder, r.folders)
					}
				case strings.Contains(strings.Split(imp, "/")[0], "."):
					allowed := false
					for _, prefix := range r.external {
						allowed = allowed || strings.HasPrefix(imp, prefix)
					}
					if !allowed {
						t.Errorf("%s %v imports %s: ARCHITECTURE.md does not list it for %s/", pkg, env, imp, folder)
					}
				}
			}
		}
	}
}
