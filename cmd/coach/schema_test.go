package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// TestScaffoldsMatchTheSchema writes a project and a software definition
// with coach new, and validates both against the schemas it wrote beside
// them, with an independent JSON Schema implementation.
func TestScaffoldsMatchTheSchema(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-C", dir, "new", "project", "demo", "--maintainer", "D <d@example.com>"},
		{"-C", dir, "new", "software", "extra", "--version", "2.1.0", "--license", "MIT"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
	c := jsonschema.NewCompiler()
	for kind, files := range map[string][]string{"project": {"projects/demo.yaml"}, "software": {"software/demo.yaml", "software/extra.yaml"}} {
		s, err := c.Compile(filepath.Join(dir, ".coach/schema", kind+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := yaml.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(v)
			inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err := s.Validate(inst); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}
