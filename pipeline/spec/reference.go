package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Reference is the definitions reference, in Markdown, made from the
// JSON Schemas (and so from the same struct tags and doc strings the
// loader and the schemas use): every field of a project and a software
// definition, by dotted path, with its type, whether it is required, its
// allowed values and its meaning.
func Reference() string {
	var b strings.Builder
	b.WriteString("<!-- Generated from the definition types by `go test ./pipeline/spec -run TestReferenceIsCurrent -update`. Do not edit. -->\n\n")
	b.WriteString("# Definitions reference\n\n")
	b.WriteString("Every field of `projects/<name>.yaml` and `software/<name>.yaml`, by dotted path (`[]` marks a list's entries). Unknown fields are errors. The same information is in the JSON Schemas (`coach schema project|software`).\n")
	for _, kind := range []string{"project", "software"} {
		s := Schema(kind)
		fmt.Fprintf(&b, "\n## %s definitions\n\n| field | type | required | meaning |\n|---|---|---|---|\n", strings.ToUpper(kind[:1])+kind[1:])
		req := map[string]bool{}
		for _, r := range required[kind] {
			req[r] = true
		}
		rows(&b, "", s, req)
	}
	return b.String()
}

func rows(b *strings.Builder, prefix string, s map[string]any, req map[string]bool) {
	props, _ := s["properties"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(props)) {
		p := props[name].(map[string]any)
		path := prefix + name
		required := ""
		if prefix == "" && req[name] {
			required = "yes"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, typeOf(p), required, meaning(p))
		switch {
		case p["properties"] != nil:
			rows(b, path+".", p, nil)
		case p["items"] != nil:
			if it, ok := p["items"].(map[string]any); ok && it["properties"] != nil {
				rows(b, path+"[].", it, nil)
			}
		case p["additionalProperties"] != nil:
			if ap, ok := p["additionalProperties"].(map[string]any); ok && ap["properties"] != nil {
				rows(b, path+".<name>.", ap, nil)
			}
		}
	}
}

func typeOf(p map[string]any) string {
	t, _ := p["type"].(string)
	switch t {
	case "array":
		if it, ok := p["items"].(map[string]any); ok {
			return "list of " + typeOf(it)
		}
	case "object":
		if ap, ok := p["additionalProperties"].(map[string]any); ok {
			return "map of " + typeOf(ap)
		}
		return "mapping"
	case "":
		if _, ok := p["oneOf"]; ok {
			return "step"
		}
		if _, ok := p["anyOf"]; ok {
			return "string"
		}
	}
	return t
}

func meaning(p map[string]any) string {
	d, _ := p["description"].(string)
	var extra []string
	collect := func(m map[string]any) {
		if e, ok := m["enum"].([]any); ok {
			var vs []string
			for _, v := range e {
				vs = append(vs, fmt.Sprintf("`%v`", v))
			}
			extra = append(extra, "one of "+strings.Join(vs, ", "))
		}
	}
	collect(p)
	if it, ok := p["items"].(map[string]any); ok {
		collect(it)
		if alts, ok := it["anyOf"].([]any); ok {
			for _, a := range alts {
				collect(a.(map[string]any))
			}
		}
	}
	if s := strings.Join(extra, "; "); s != "" {
		if d != "" {
			d += "; "
		}
		d += s
	}
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(d)
}
