package spec

import (
	"reflect"
	"strings"
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

func structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	for _, f := range structFields(t).list {
		p := schemaFor(t.Field(f.index).Type)
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
