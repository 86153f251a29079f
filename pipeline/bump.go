package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"github.com/pmezard/go-difflib/difflib"
	"go.yaml.in/yaml/v3"

	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/mirror"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/spec"
)

// BumpRequest adds a version to a software definition.
type BumpRequest struct {
	Root, Software, Version string
	// URL is the new version's download URL; empty means the definition's
	// url_template, else its highest version's URL with the version
	// replaced.
	URL string
	// Mirrors are source mirrors (file:// or http(s):// bases) tried for
	// the file before its upstream URL, as coach fetch does.
	Mirrors []string
	// DryRun computes and shows the change without writing anything.
	DryRun bool
	Log    *slog.Logger
}

// BumpResult is what a bump did.
type BumpResult struct {
	Definition string `json:"definition"`
	Version    string `json:"version"`
	URL        string `json:"url"`
	From       string `json:"from"`
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	// Diff is the definition's change, unified.
	Diff string `json:"diff"`
	// Locks are the projects using the software, locked again with it
	// free to move to the new version.
	Locks []*LockResult `json:"locks,omitempty"`
}

// Bump fetches a new version of a software through its URL pattern,
// computes its checksum, adds it to the definition (the file's other
// bytes, comments and key order untouched), and locks again every project
// that uses the software, letting it move to the new version if the
// constraints allow.
func Bump(ctx context.Context, req BumpRequest) (*BumpResult, error) {
	repo, err := Load(req.Root)
	if err != nil {
		return nil, err
	}
	s := repo.Software[req.Software]
	if s == nil {
		return nil, failure.Request(fmt.Errorf("no software %q (software/%s.yaml)", req.Software, req.Software))
	}
	v := strings.TrimPrefix(req.Version, "v")
	if _, err := semver.StrictNewVersion(v); err != nil {
		return nil, failure.Request(fmt.Errorf("version %q is not semver (major.minor.patch[-prerelease])", req.Version))
	}
	if slices.ContainsFunc(s.Versions, func(x spec.Version) bool { return x.Version == v }) {
		return nil, failure.Request(fmt.Errorf("%s %s is already in %s", s.Name, v, s.At("versions")))
	}
	rawURL, err := bumpURL(s, v, req.URL)
	if err != nil {
		return nil, failure.Request(err)
	}
	mirrors, err := sourceMirrors(req.Mirrors)
	if err != nil {
		return nil, err
	}
	sum, size, from, err := checksumFrom(ctx, rawURL, mirrors)
	if err != nil {
		return nil, err
	}
	old, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, err
	}
	updated, err := addVersion(old, v, rawURL, sum)
	if err != nil {
		return nil, fmt.Errorf("bump %s: %s: %w", s.Name, s.Path, err)
	}
	rel := s.Path
	if r, ok := strings.CutPrefix(s.Path, repo.Root+"/"); ok {
		rel = r
	}
	diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(updated)),
		FromFile: "a/" + rel, ToFile: "b/" + rel, Context: 3})
	res := &BumpResult{Definition: s.Path, Version: v, URL: rawURL, From: from, SHA256: sum, Size: size, Diff: diff}
	if req.DryRun {
		return res, nil
	}
	if err := resolve.WriteFileAtomic(s.Path, updated); err != nil {
		return nil, err
	}
	// The edited definition must still load, with every problem at once.
	if _, err := Load(req.Root); err != nil {
		os.WriteFile(s.Path, old, 0o644)
		return nil, fmt.Errorf("bump %s: the edited definition does not load (restored): %w", s.Name, err)
	}
	var users []string
	for _, name := range repo.ProjectNames() {
		if p, err := repo.Project(name); err == nil && slices.Contains(closureOf(repo, p.Software), s.Name) {
			users = append(users, name)
		}
	}
	if len(users) > 0 {
		locks, err := Lock(ctx, LockRequest{Root: req.Root, Projects: users, Move: []string{s.Name}, PinImages: "never", Log: req.Log})
		res.Locks = locks
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// bumpURL is the new version's URL as the definition would write it:
// given, from url_template, or the highest version's with the version
// replaced.
func bumpURL(s *spec.Software, v, given string) (string, error) {
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
	var latest *spec.Version
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

// checksumFrom downloads the file from the source mirrors, then from its
// upstream URL (with {{mirror}} archives expanded), and returns its sha256,
// size and where it came from.
func checksumFrom(ctx context.Context, raw string, mirrors []string) (string, int64, string, error) {
	rendered, err := mirror.Render(raw)
	if err != nil {
		return "", 0, "", failure.Request(err)
	}
	var locs []string
	name := path.Base(rendered)
	if u, err := url.Parse(rendered); err == nil {
		name = path.Base(u.Path)
	}
	for _, m := range mirrors {
		locs = append(locs, strings.TrimSuffix(m, "/")+"/"+url.PathEscape(name))
	}
	upstream, err := mirror.Host().Expand(rendered)
	if err == nil {
		locs = append(locs, upstream)
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, loc := range locs {
		sum, n, cerr := Checksum(ctx, loc)
		if cerr == nil {
			return sum, n, loc, nil
		}
		errs = append(errs, cerr)
	}
	return "", 0, "", stage(StageFetch, fmt.Errorf("fetch %s: %w", raw, errors.Join(errs...)))
}

// addVersion inserts a version entry into a definition's versions list,
// as text: where the list's order puts it (after the last entry of an
// ascending list, before the first of a descending one), in the style of
// the entries around it (block or flow), so the rest of the file keeps
// its bytes, comments and key order.
func addVersion(src []byte, version, rawURL, sum string) ([]byte, error) {
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

// closureOf is every component the roots need, directly or not.
func closureOf(repo *spec.Repo, roots []string) []string {
	seen := map[string]bool{}
	var out []string
	var visit func(string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		out = append(out, n)
		if s := repo.Software[n]; s != nil {
			for _, d := range s.Dependencies {
				visit(d)
			}
		}
	}
	for _, r := range roots {
		visit(r)
	}
	return out
}
