package pkg

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/goreleaser/chglog"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// changeRelease is one version's entry of a changelog.
type changeRelease struct {
	version string
	date    time.Time
	notes   []string
}

// keepAChangelog reads a changelog in the Keep a Changelog format
// (https://keepachangelog.com): "## [1.2.0] - 2024-05-01" headings, "###
// Added" sections and "- item" bullets (continuation lines indented).
// [Unreleased] is left out. Entries come newest first, as written. (No
// Go library parses this format; it is a page of markdown conventions.)
func keepAChangelog(text string) ([]changeRelease, error) {
	heading := regexp.MustCompile(`^##\s+\[?v?([^\]\s]+)\]?(?:\s+-\s+(\d{4}-\d{2}-\d{2}))?`)
	var out []changeRelease
	var cur *changeRelease
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "## "):
			m := heading.FindStringSubmatch(l)
			cur, section = nil, ""
			if m == nil || strings.EqualFold(m[1], "unreleased") {
				continue
			}
			if _, err := semver.NewVersion(m[1]); err != nil {
				return nil, fmt.Errorf("line %d: %q is not a version", line, m[1])
			}
			r := changeRelease{version: strings.TrimPrefix(m[1], "v")}
			if m[2] != "" {
				d, err := time.Parse("2006-01-02", m[2])
				if err != nil {
					return nil, fmt.Errorf("line %d: %v", line, err)
				}
				r.date = d
			}
			out = append(out, r)
			cur = &out[len(out)-1]
		case cur == nil:
		case strings.HasPrefix(l, "### "):
			section = strings.TrimSpace(strings.TrimPrefix(l, "### "))
		case strings.HasPrefix(l, "- ") || strings.HasPrefix(l, "* "):
			note := strings.TrimSpace(l[2:])
			if section != "" {
				note = section + ": " + note
			}
			cur.notes = append(cur.notes, note)
		case strings.HasPrefix(l, "  ") && len(cur.notes) > 0 && strings.TrimSpace(l) != "":
			cur.notes[len(cur.notes)-1] += " " + strings.TrimSpace(l)
		}
	}
	return out, sc.Err()
}

// gitReleases reads releases from the repository's version tags with
// chglog: each tag's commits since the one before.
func gitReleases(repo, owner string) ([]changeRelease, error) {
	r, err := chglog.GitRepo(repo, true)
	if err != nil {
		return nil, fmt.Errorf("git history: %w", err)
	}
	entries, err := chglog.InitChangelog(r, owner, nil, nil, false, true)
	if err != nil {
		return nil, fmt.Errorf("git history: %w", err)
	}
	var out []changeRelease
	for _, e := range entries {
		rel := changeRelease{version: strings.TrimPrefix(e.Semver, "v"), date: e.Date}
		for _, c := range e.Changes {
			first, _, _ := strings.Cut(strings.TrimSpace(c.Note), "\n")
			rel.notes = append(rel.notes, first)
		}
		out = append(out, rel)
	}
	return out, nil
}

// releases are the project's changelog entries, newest first: from its
// changelog file or git history, with an entry for the version being
// packaged added when the changelog has none (a nightly build).
func releases(p *spec.Project, t target.Target, repo string, mtime time.Time) ([]changeRelease, error) {
	var out []changeRelease
	switch src := p.Package.Changelog; {
	case src == "git":
		var err error
		if out, err = gitReleases(repo, p.Maintainer); err != nil {
			return nil, err
		}
	case src != "":
		root, err := confine.Open(repo)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		b, err := confine.ReadFile(root, filepath.FromSlash(src), confine.MaxTextBytes)
		if err != nil {
			return nil, fmt.Errorf("changelog %s: %w", src, err)
		}
		if out, err = keepAChangelog(string(b)); err != nil {
			return nil, fmt.Errorf("changelog %s: %w", src, err)
		}
	}
	found := false
	for i := range out {
		if out[i].version == p.Version {
			found = true
			if out[i].date.IsZero() {
				out[i].date = mtime
			}
		}
		if len(out[i].notes) == 0 {
			out[i].notes = []string{"Release " + out[i].version + "."}
		}
	}
	if !found {
		out = append([]changeRelease{{version: p.Version, date: mtime, notes: []string{fmt.Sprintf("Built by coach for %s.", t.Name)}}}, out...)
	}
	// Newest first, by version: a changelog's order, and the one dpkg
	// and rpm expect.
	sort.SliceStable(out, func(i, j int) bool {
		a, errA := semver.NewVersion(out[i].version)
		b, errB := semver.NewVersion(out[j].version)
		return errA == nil && errB == nil && a.GreaterThan(b)
	})
	return out, nil
}

// packageVersion is an entry's full package version: the packaged one
// carries the project's iteration, earlier ones iteration 1.
func packageVersion(p *spec.Project, t target.Target, version string) string {
	q := *p
	q.Version = version
	if version != p.Version {
		q.Iteration = 1
	}
	deb, rpm := Versions(version)
	if t.Format == target.FormatRPM {
		return rpm + "-" + PackageRelease(&q, t)
	}
	return deb + "-" + PackageRelease(&q, t)
}

// changelogEntries are the releases as chglog entries, for the target.
func changelogEntries(p *spec.Project, t target.Target, rels []changeRelease) chglog.ChangeLogEntries {
	dist := t.Bootstrap.Suite
	if dist == "" {
		dist = "stable"
	}
	var out chglog.ChangeLogEntries
	for _, r := range rels {
		e := &chglog.ChangeLog{Semver: packageVersion(p, t, r.version), Date: r.date.UTC(), Packager: p.Maintainer,
			ChangeLogOverridables: chglog.ChangeLogOverridables{Deb: &chglog.ChangelogDeb{Urgency: "medium", Distributions: []string{dist}}}}
		for _, n := range r.notes {
			e.Changes = append(e.Changes, &chglog.ChangeLogChange{Note: n})
		}
		out = append(out, e)
	}
	return out
}

// debianChangelog is changelog.Debian.gz: the releases in Debian's
// changelog format, rendered by chglog's template, with the target's
// distribution, compressed as dh_compress does (gzip -9n: no name, no
// time in the header).
func debianChangelog(p *spec.Project, t target.Target, rels []changeRelease) ([]byte, error) {
	tpl, err := chglog.DebTemplate()
	if err != nil {
		return nil, err
	}
	text, err := chglog.FormatChangelog(&chglog.PackageChangeLog{Name: p.Name, Entries: changelogEntries(p, t, rels)}, tpl)
	if err != nil {
		return nil, err
	}
	text = strings.TrimLeft(text, "\n")
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write([]byte(text))
	zw.Close()
	return gz.Bytes(), nil
}

// rpmChangelogFile writes the releases in chglog's YAML, which nfpm and
// the rpm writer read for %changelog.
func rpmChangelogFile(p *spec.Project, t target.Target, rels []changeRelease, dir string) (string, error) {
	f := filepath.Join(dir, "changelog.yaml")
	entries := changelogEntries(p, t, rels)
	for _, e := range entries {
		e.Deb = nil
	}
	if err := entries.Save(f); err != nil {
		return "", err
	}
	if _, err := os.Stat(f); err != nil {
		return "", err
	}
	return f, nil
}
