package spec

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// nodeDecoder is implemented by types whose YAML form is not a plain struct
// (a build step may be a string, a list or a mapping).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

// decoder turns a yaml.Node tree into typed values strictly: unknown fields,
// duplicate keys and type mismatches are all problems with a position, and
// decoding goes on after each so that every problem is found in one pass.
// It records the position of every value under its path (e.g.
// "versions[1].sha256") so that later semantic checks can point at it too.
type decoder struct {
	file     string
	root     string // what the document is called in messages
	problems *problems
	pos      map[string]Pos
	// visited counts decoded nodes, aliases included, to bound the work an
	// aliased document can cause.
	visited int
}

// maxNodes bounds the nodes one definition may expand to.
const maxNodes = 200_000

func (d *decoder) at(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) problem(n *yaml.Node, hint, format string, args ...any) {
	d.problems.add(d.at(n), hint, format, args...)
}

// fail reports a value that could not be decoded and marks its path so that
// validation does not pile follow-on problems ("x is required") on top.
func (d *decoder) fail(n *yaml.Node, path, hint, format string, args ...any) {
	d.pos[path+"#bad"] = d.at(n)
	d.problem(n, hint, format, args...)
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return
			}
			n = n.Content[0]
		} else {
			n = n.Alias
		}
	}
	d.visited++
	if d.visited == maxNodes {
		d.fail(n, "", "split the definition or use fewer aliases", "the definition expands to more than %d values", maxNodes)
	}
	if d.visited >= maxNodes {
		return
	}
	d.pos[path] = d.at(n)
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			nd.decodeNode(d, n, path)
			return
		}
	}
	if isNull(n) {
		// An explicit null leaves the zero value, except where a value is
		// required, which validation reports with the field's position.
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "write it as a list, e.g. [a, b] or one \"- item\" per line", "%s must be a list, not %s", fieldName(path), describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "write it as a mapping of key: value lines", "%s must be a mapping, not %s", fieldName(path), describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.problem(k, "use a plain string as the key", "%s has a key that is not a string", fieldName(path))
				continue
			}
			if seen[k.Value] {
				d.problem(k, "remove one of the two entries", "%s has the key %q twice", fieldName(path), k.Value)
				continue
			}
			seen[k.Value] = true
			elem := reflect.New(v.Type().Elem()).Elem()
			sub := path + "." + k.Value
			d.pos[sub+"#key"] = d.at(k)
			d.decode(val, elem, sub)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" {
			d.fail(n, path, quoteHint(n), "%s must be a string, not %s", fieldName(path), describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.fail(n, path, "write a whole number without quotes, e.g. 1", "%s must be a whole number, not %s", fieldName(path), describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || err != nil {
			d.fail(n, path, "write true or false", "%s must be true or false, not %s", fieldName(path), describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("spec: decoder cannot handle %s", v.Type()))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "write it as a mapping of field: value lines", "%s must be a mapping, not %s", fieldNameOr(path, d.root), describe(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k, "use a plain field name", "a field name must be a string, not %s", describe(k))
			continue
		}
		f, ok := fields.byName[k.Value]
		if !ok {
			d.problem(k, unknownFieldHint(k.Value, fields.names), "unknown field %q in %s", k.Value, fieldNameOr(path, d.root))
			continue
		}
		if seen[k.Value] {
			d.problem(k, "remove one of the two", "field %q is given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		d.pos[sub+"#key"] = d.at(k)
		d.decode(val, v.Field(f.index), sub)
	}
}

type fieldInfo struct {
	name  string
	index int
	doc   string
}

type fieldSet struct {
	byName map[string]fieldInfo
	names  []string // in declaration order
	list   []fieldInfo
}

var fieldCache sync.Map // reflect.Type -> *fieldSet

// structFields lists the YAML fields of a struct type from its yaml tags.
// Fields without a yaml tag, or tagged "-", are not part of the file format.
func structFields(t reflect.Type) *fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*fieldSet)
	}
	fs := &fieldSet{byName: map[string]fieldInfo{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		fi := fieldInfo{name: name, index: i, doc: sf.Tag.Get("doc")}
		fs.byName[name] = fi
		fs.names = append(fs.names, name)
		fs.list = append(fs.list, fi)
	}
	fieldCache.Store(t, fs)
	return fs
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!null":
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "an unexpected value"
}

func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("quote it: %q", n.Value)
	}
	return "write a single string value"
}

// fieldName turns a decoder path such as "versions[1].sha256" into the text
// used in messages.
func fieldName(path string) string { return fieldNameOr(path, "the document") }

// failed reports whether decoding path (or anything above it) already failed.
func failed(pos map[string]Pos, path string) bool {
	for {
		if _, bad := pos[path+"#bad"]; bad {
			return true
		}
		if path == "" {
			return false
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

func fieldNameOr(path, whole string) string {
	if path == "" {
		return whole
	}
	return path
}

func unknownFieldHint(got string, known []string) string {
	best, bestDist := "", 1<<30
	for _, k := range known {
		if dist := levenshtein(got, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" && bestDist <= max(2, len(got)/3) {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "known fields are: " + strings.Join(known, ", ")
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
