package abi

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

// documents are the Go types of ABI.md's "### `Name`" sections.
var documents = map[string]any{
	"ModelInfo": ModelInfo{}, "Header": weights.Header{}, "MixInfo": MixInfo{}, "Range": weights.Range{},
	"Options": Options{}, "PlanRequest": PlanRequest{}, "Capabilities": planner.Capabilities{},
	"Adapter": planner.Adapter{}, "Limits": planner.Limits{}, "Network": planner.Network{},
	"Benchmark": planner.Benchmark{}, "Budget": planner.Budget{}, "PlanResult": PlanResult{},
	"Plan": planner.Plan{}, "Work": planner.Work{}, "Split": planner.Split{}, "Speculation": planner.Speculation{},
	"ImageRequest": ImageRequest{}, "ImageResult": ImageResult{}, "Neighbor": weights.Neighbor{}, "IndexInfo": IndexInfo{},
	"SpeculationInfo": SpeculationInfo{}, "BenchRequest": BenchRequest{},
	"IndexHeader": weights.IndexHeader{}, "IndexImage": weights.IndexImage{},
}

// TestDocDocuments checks that each document ABI.md defines has exactly the
// msgpack keys of its Go type, and that the types ABI.md gives agree with
// the Go field types.
func TestDocDocuments(t *testing.T) {
	b, err := os.ReadFile("../ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := regexp.MustCompile("(?m)^### `(\\w+)`$").FindAllStringSubmatchIndex(string(b), -1)
	seen := map[string]bool{}
	for i, s := range sections {
		name := string(b[s[2]:s[3]])
		end := len(b)
		if i+1 < len(sections) {
			end = sections[i+1][0]
		}
		doc := tableKeys(string(b[s[1]:end]))
		v, ok := documents[name]
		if !ok {
			t.Errorf("ABI.md defines %s; this test does not know its Go type", name)
			continue
		}
		seen[name] = true
		keys := msgpackKeys(reflect.TypeOf(v))
		for key, typ := range doc {
			goType, ok := keys[key]
			if !ok {
				t.Errorf("%s: ABI.md lists key %q, which %T does not have", name, key, v)
			} else if want, known := wireType[goType]; known && !slices.Contains(want, typ) {
				t.Errorf("%s.%s: ABI.md says %s, the Go field is %s", name, key, typ, goType)
			}
		}
		for key := range keys {
			if _, ok := doc[key]; !ok {
				t.Errorf("%s: %T has msgpack key %q, which ABI.md does not list", name, v, key)
			}
		}
	}
	for name := range documents {
		if !seen[name] {
			t.Errorf("ABI.md has no \"### `%s`\" section", name)
		}
	}
}

// wireType is the ABI.md types a Go kind may be documented as.
var wireType = map[string][]string{
	"int": {"`int`", "`i64`"}, "int64": {"`i64`"}, "uint64": {"`u64`"}, "uint32": {"`u32`"},
	"float32": {"`f32`"}, "float64": {"`f64`"}, "string": {"`string`"}, "bool": {"`bool`"},
}

// tableKeys returns the first table of a section: key → its type cell.
func tableKeys(section string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if !strings.HasPrefix(line, "| `") || len(cells) < 2 {
			if len(out) > 0 && !strings.HasPrefix(line, "|") {
				break
			}
			continue
		}
		out[strings.Trim(strings.TrimSpace(cells[0]), "`")] = strings.TrimSpace(cells[1])
	}
	return out
}

// msgpackKeys returns a struct's msgpack keys and their Go kinds.
func msgpackKeys(t reflect.Type) map[string]string {
	out := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type.Kind().String()
	}
	return out
}
