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

	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
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
	mirrors, err := fetch.Mirrors(req.Mirrors)
	if err != nil {
		return nil, failure.Request(err)
	}
	sum, size, from, err := checksumFrom(ctx, rawURL, mirrors)
	if err != nil {
		return nil, err
	}
	old, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, err
	}
	updated, err := spec.AddVersion(old, v, rawURL, sum)
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
		if p, err := repo.Project(name); err == nil && repo.Closure(p.Software)[s.Name] {
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
		sum, n, cerr := fetch.Checksum(ctx, loc)
		if cerr == nil {
			return sum, n, loc, nil
		}
		errs = append(errs, cerr)
	}
	return "", 0, "", stage(StageFetch, fmt.Errorf("fetch %s: %w", raw, errors.Join(errs...)))
}
