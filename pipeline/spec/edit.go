package spec

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"github.com/pmezard/go-difflib/difflib"
	"go.yaml.in/yaml/v3"
)

// AddVersion inserts a version entry into a definition's versions list,
// as text: where the list's order puts it (after the last entry of an
// ascending list, before the first of a descending one), in the style of
// the entries around it (block or flow), so the rest of the file keeps
// its bytes, comments and key order.
func AddVersion(src []byte, version, rawURL, sum string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a mapping")
	}
	top := doc.Content[0]
	var seq *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "versions" {
			seq = top.Content[i+1]
		}
	}
	if seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 || seq.Style&yaml.FlowStyle != 0 {
		return nil, errors.New("versions is not a block list with at least one entry")
	}
	lines := strings.SplitAfter(string(src), "\n")
	first, last := seq.Content[0], seq.Content[len(seq.Content)-1]
	versionOf := func(n *yaml.Node) string {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "version" {
				return n.Content[i+1].Value
			}
		}
		return ""
	}
	descending := false
	if len(seq.Content) > 1 {
		a, errA := semver.NewVersion(versionOf(seq.Content[0]))
		b, errB := semver.NewVersion(versionOf(seq.Content[1]))
		descending = errA == nil && errB == nil && a.GreaterThan(b)
	}
	dash := first.Column - 3 // "- " precedes the entry's first key
	if dash < 0 || first.Line < 1 || !strings.HasPrefix(strings.TrimLeft(lines[first.Line-1], " "), "- ") {
		return nil, errors.New("cannot find where the versions list's entries start")
	}
	pad := strings.Repeat(" ", dash)
	flow := first.Style&yaml.FlowStyle != 0
	// q quotes a scalar where YAML would not read it back as a plain one.
	q := func(s string) string {
		if s == "" || strings.ContainsAny(s[:1], "{}[]'\"*&!|>%@`#,?:- ") || strings.Contains(s, ": ") || strings.Contains(s, " #") ||
			flow && strings.ContainsAny(s, ",[]{}") {
			return "'" + strings.ReplaceAll(s, "'", "''") + "'"
		}
		return s
	}
	var entry string
	if flow {
		entry = fmt.Sprintf("%s- {version: %s, url: %s, sha256: %s}\n", pad, q(version), q(rawURL), sum)
	} else {
		entry = fmt.Sprintf("%s- version: %s\n%s  url: %s\n%s  sha256: %s\n", pad, q(version), pad, q(rawURL), pad, sum)
	}
	at := first.Line - 1 // before the first entry
	if !descending {
		// After the last entry: its last line is the line before the
		// next key at a lower indentation, or the end of the file.
		at = len(lines)
		for i := last.Line; i < len(lines); i++ {
			l := lines[i]
			trimmed := strings.TrimLeft(l, " ")
			if trimmed == "" || trimmed == "\n" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			if len(l)-len(trimmed) <= dash {
				at = i
				break
			}
		}
		// Comments and blank lines just before the next key belong to it.
		for at > last.Line && strings.HasPrefix(strings.TrimLeft(lines[at-1], " "), "#") && len(lines[at-1])-len(strings.TrimLeft(lines[at-1], " ")) <= dash {
			at--
		}
	}
	if at == len(lines) && !strings.HasSuffix(string(src), "\n") {
		entry = "\n" + entry
	}
	out := strings.Join(lines[:at], "") + entry + strings.Join(lines[at:], "")
	return []byte(out), nil
}

// Closure is every component reachable from roots through dependencies,
// roots included.
func (r *Repo) Closure(roots []string) map[string]bool {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		if s := r.Software[n]; s != nil {
			for _, d := range s.Dependencies {
				visit(d)
			}
		}
	}
	for _, root := range roots {
		visit(root)
	}
	return seen
}

// NextURL is a new version's URL as the definition would write it
// (coach bump): given, from url_template, or the highest version's with
// the version replaced.
func (s *Software) NextURL(v, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if s.URLTemplate != "" {
		t, err := template.New("url").Option("missingkey=error").Funcs(template.FuncMap{"mirror": func(n string) string { return `{{mirror "` + n + `"}}` }}).Parse(s.URLTemplate)
		if err != nil {
			return "", fmt.Errorf("%s: url_template: %w", s.At("url_template"), err)
		}
		var b strings.Builder
		if err := t.Execute(&b, struct{ Version string }{v}); err != nil {
			return "", fmt.Errorf("%s: url_template: %w", s.At("url_template"), err)
		}
		return b.String(), nil
	}
	var latest *Version
	var latestSem *semver.Version
	for i, x := range s.Versions {
		sv, err := semver.NewVersion(x.Version)
		if err != nil || x.URL == "" {
			continue
		}
		if latestSem == nil || sv.GreaterThan(latestSem) {
			latest, latestSem = &s.Versions[i], sv
		}
	}
	if latest == nil {
		return "", fmt.Errorf("%s has no version with a url to start from: give --url or add url_template", s.Name)
	}
	if !strings.Contains(latest.URL, latest.Version) {
		return "", fmt.Errorf("%s %s's url %s does not contain its version: give --url or add url_template", s.Name, latest.Version, latest.URL)
	}
	return strings.ReplaceAll(latest.URL, latest.Version, v), nil
}

// NewVersion checks that a version can be added to s (coach bump): it is
// semver (major.minor.patch[-prerelease]; a leading v is dropped) and not
// listed yet. It returns the version as it is to be written.
func (s *Software) NewVersion(given string) (string, error) {
	v := strings.TrimPrefix(given, "v")
	if _, err := semver.StrictNewVersion(v); err != nil {
		return "", fmt.Errorf("version %q is not semver (major.minor.patch[-prerelease])", given)
	}
	if slices.ContainsFunc(s.Versions, func(x Version) bool { return x.Version == v }) {
		return "", fmt.Errorf("%s %s is already in %s", s.Name, v, s.At("versions"))
	}
	return v, nil
}

// WithVersion is s's definition file with a version added (AddVersion):
// its bytes before and after, and the change as a unified diff with paths
// relative to root.
func (s *Software) WithVersion(root, v, rawURL, sum string) (old, updated []byte, diff string, err error) {
	if old, err = os.ReadFile(s.Path); err != nil {
		return nil, nil, "", err
	}
	if updated, err = AddVersion(old, v, rawURL, sum); err != nil {
		return nil, nil, "", fmt.Errorf("bump %s: %s: %w", s.Name, s.Path, err)
	}
	rel := s.Path
	if r, ok := strings.CutPrefix(s.Path, root+"/"); ok {
		rel = r
	}
	diff, err = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(updated)),
		FromFile: "a/" + rel, ToFile: "b/" + rel, Context: 3})
	return old, updated, diff, err
}
