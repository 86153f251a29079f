package spec

import (
	"bytes"

	"encoding/json"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
	"os"
	"path/filepath"
	"testing"
)

// TestSchemaIsCurrent keeps the committed schemas equal to what the Go types
// generate. After changing a definition type: go generate ./pipeline/spec
func TestSchemaIsCurrent(t *testing.T) {
	for _, kind := range []string{"project", "software"} {
		got, err := json.MarshalIndent(Schema(kind), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join("schema", kind+".schema.json")
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is out of date: run go generate ./pipeline/spec", path)
		}
	}
}

// TestSchemaCoversEveryField checks a few fields by path, including nested
// and custom-decoded ones, and that unknown fields are closed off.
func TestSchemaCoversEveryField(t *testing.T) {
	s := Schema("software")
	props := s["properties"].(map[string]any)
	for _, f := range []string{"name", "versions", "build", "build_packages", "relative_path", "patches", "env", "license_files"} {
		if props[f] == nil {
			t.Errorf("software schema lacks %s", f)
		}
	}
	version := props["versions"].(map[string]any)["items"].(map[string]any)
	if version["additionalProperties"] != false {
		t.Error("versions items accept unknown fields")
	}
	if p := version["properties"].(map[string]any)["sha256"].(map[string]any)["pattern"]; p != "^[0-9a-f]{64}$" {
		t.Errorf("sha256 pattern = %v", p)
	}
	step := props["build"].(map[string]any)["items"].(map[string]any)
	if len(step["oneOf"].([]any)) != 3 {
		t.Error("a build step should be a string, a list or a mapping")
	}
	pp := Schema("project")["properties"].(map[string]any)
	ct := pp["custom_targets"].(map[string]any)["additionalProperties"].(map[string]any)
	if ct["properties"].(map[string]any)["based_on"] == nil {
		t.Error("custom_targets entries lack based_on")
	}
}

// TestSchemaAcceptsTheRepository validates the repository's own definitions
// with an independent JSON Schema implementation, and checks that it
// rejects an unknown field as the loader does.
func TestSchemaAcceptsTheRepository(t *testing.T) {
	c := jsonschema.NewCompiler()
	compiled := map[string]*jsonschema.Schema{}
	for _, kind := range []string{"project", "software"} {
		raw, err := json.Marshal(Schema(kind))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		url := kind + ".schema.json"
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		if compiled[kind], err = c.Compile(url); err != nil {
			t.Fatal(err)
		}
	}
	check := func(kind, path string, data []byte) error {
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		// Round-trip through JSON so YAML's types become JSON's.
		raw, _ := json.Marshal(v)
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		return compiled[kind].Validate(inst)
	}
	n := 0
	for kind, globs := range map[string][]string{
		"project":  {"../../projects/*.yaml", "../../docs/examples/*/projects/*.yaml"},
		"software": {"../../software/*.yaml", "../../docs/examples/*/software/*.yaml"},
	} {
		var files []string
		for _, g := range globs {
			more, _ := filepath.Glob(g)
			files = append(files, more...)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := check(kind, f, data); err != nil {
				t.Errorf("%s does not match the schema: %v", f, err)
			}
			n++
		}
	}
	if n < 3 {
		t.Fatalf("checked only %d definitions", n)
	}
	if err := check("project", "bad", []byte("name: x\nhomepge: y\n")); err == nil {
		t.Error("the schema accepted an unknown field")
	}
	// What the validator refuses and an editor can say at once.
	base := "description: d\nmaintainer: M <m@example.com>\nlicense: MIT\nsoftware: [zlib]\ntargets: [debian-12]\n"
	for _, bad := range []string{
		"name: Bad_Name\nversion: 1.0.0\n",
		"name: app\nversion: \"1.0\"\n",
		"name: app\nversion: 1.0.0\narches: [sparc]\n",
		"name: app\nversion: 1.0.0\npackage: {compression: {deb: lz4}}\n",
		"name: app\nversion: 1.0.0\npackage: {owner: Hello}\n",
	} {
		if err := check("project", "bad", []byte(bad+base)); err == nil {
			t.Errorf("the schema accepted\n%s", bad)
		}
	}
	for _, good := range []string{"name: app\nversion: git\n", "name: app\nversion: \"1.4.0-nightly.{{.Date}}\"\narches: [amd64, arm64]\n"} {
		if err := check("project", "good", []byte(good+base)); err != nil {
			t.Errorf("the schema refused\n%s: %v", good, err)
		}
	}
}

// TestReferenceIsCurrent keeps docs/reference/definitions.md what the
// types say: -update rewrites it.
func TestReferenceIsCurrent(t *testing.T) {
	path := "../../docs/reference/definitions.md"
	got := Reference()
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil || string(want) != got {
		t.Errorf("%s is out of date: go test ./pipeline/spec -run TestReferenceIsCurrent -update", path)
	}
}
