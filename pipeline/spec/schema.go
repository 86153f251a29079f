package spec

import (
	"reflect"
	"strings"

	"github.com/coach-build/coach/pipeline/target"
)

//go:generate go test -run TestSchemaIsCurrent -update .

// Schema returns a JSON Schema (draft 2020-12) for a definition type, made
// from the same struct tags the loader decodes with, so the two cannot
// disagree: "project" or "software".
func Schema(kind string) map[string]any {
	var t reflect.Type
	switch kind {
	case "project":
		t = reflect.TypeFor[Project]()
	case "software":
		t = reflect.TypeFor[Software]()
	default:
		panic("spec: no schema for " + kind)
	}
	s := schemaFor(t)
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://coach.dev/schema/" + kind + ".schema.json"
	s["title"] = "coach " + kind + " definition"
	s["required"] = required[kind]
	return s
}

// required lists the fields validation insists on at the top level.
var required = map[string][]string{
	"project":  {"name", "description", "maintainer", "license", "version", "software", "targets"},
	"software": {"name", "license", "versions", "build"},
}

func schemaFor(t reflect.Type) map[string]any {
	if t == reflect.TypeFor[Step]() {
		return map[string]any{
			"description": "a shell command line, an argv list, or a mapping with name, run|argv, dir and env",
			"oneOf": []any{
				map[string]any{"type": "string"},
				map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "minItems": 1},
				structSchema(t),
			},
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaFor(t.Elem())
	case reflect.Struct:
		return structSchema(t)
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaFor(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaFor(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	}
	panic("spec: no schema for " + t.String())
}

// semverPattern is strict semver, with an optional leading v.
const semverPattern = `^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`

// constraints add to a field's schema (Type.field, or Type.field[] for a
// list's items) what the validator checks and an editor can use: the
// values a field takes, the form of a name.
func constraints() map[string]map[string]any {
	compressions := []any{"gzip", "xz", "zstd", "none"}
	var builtins []any
	for _, n := range target.BuiltinNames() {
		builtins = append(builtins, n)
	}
	var arches []any
	for _, a := range target.Arches {
		arches = append(arches, a)
	}
	return map[string]map[string]any{
		"Project.name":    {"pattern": packageName.String()},
		"Software.name":   {"pattern": softwareName.String()},
		"Project.version": {"anyOf": []any{map[string]any{"pattern": semverPattern}, map[string]any{"const": "git"}, map[string]any{"pattern": `\{\{`}}},
		"Project.targets[]": {"anyOf": []any{map[string]any{"enum": builtins},
			map[string]any{"pattern": `^[a-z0-9][a-z0-9.-]*$`, "description": "a custom target of the project"}}},
		"Project.arches[]":         {"enum": arches},
		"Project.software[]":       {"pattern": softwareName.String()},
		"Software.dependencies[]":  {"pattern": softwareName.String()},
		"FormatString.deb":         {"enum": compressions},
		"FormatString.rpm":         {"enum": compressions[:3]},
		"Target.format":            {"enum": []any{"deb", "rpm"}},
		"Target.compression":       {"enum": compressions[:3]},
		"Target.based_on":          {"enum": builtins},
		"Package.owner":            {"pattern": systemName.String()},
		"Package.group":            {"pattern": systemName.String()},
		"Project.install_dir":      {"pattern": safeInstallDir.String()},
		"Software.default_version": {"minLength": 1},
	}
}

func structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	extra := constraints()
	for _, f := range structFields(t).list {
		p := schemaFor(t.Field(f.index).Type)
		for k, v := range extra[t.Name()+"."+f.name] {
			p[k] = v
		}
		if items, ok := p["items"].(map[string]any); ok {
			for k, v := range extra[t.Name()+"."+f.name+"[]"] {
				items[k] = v
			}
		}
		if f.doc != "" {
			p["description"] = f.doc
		}
		if strings.HasSuffix(f.name, "sha256") {
			p["pattern"] = "^[0-9a-f]{64}$"
		}
		if strings.HasSuffix(f.name, "sha512") {
			p["pattern"] = "^[0-9a-f]{128}$"
		}
		props[f.name] = p
	}
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
}
