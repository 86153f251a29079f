package pkg

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// packageSchema is mixed into every package input key; bump it when the
// way a package is made changes (nfpm's version, compression levels).
const packageSchema = 2 // 2: coach's own deb and rpm writers

// inputKey is the digest of everything a package is made from: the tree
// (by TreeDigest), the project definition, its hooks' and extra files'
// bytes, its changelog, the
// target, the arch, the dependencies, the time, the license summary and
// the signing key. "" when the tree has no digest, so the package is
// always made.
func inputKey(o ReleaseOptions, t TargetTree, summary []byte, embedded []string) string {
	if t.TreeDigest == "" {
		return ""
	}
	hooks := map[string]string{}
	for name, p := range o.Project.Hooks {
		if !filepath.IsAbs(p) {
			p = filepath.Join(o.Root, p)
		}
		sum, err := digest.File(p)
		if err != nil {
			return ""
		}
		hooks[name] = sum
	}
	// The files the package takes from the repository, and the changelog
	// as it would be written (git's tags included).
	extra := map[string]string{}
	if len(o.Project.Package.ExtraFiles) > 0 {
		root, err := confine.Open(o.Root)
		if err != nil {
			return ""
		}
		defer root.Close()
		for _, e := range o.Project.Package.ExtraFiles {
			if e.Link != "" {
				continue // the project's definition, hashed already, holds it
			}
			b, err := confine.ReadFile(root, filepath.FromSlash(path.Clean(e.Source)), MaxExtraFileBytes)
			if err != nil {
				return ""
			}
			extra[e.Source] = digest.Bytes(b)
		}
	}
	rels, err := releases(o.Project, t.Target, o.Root, o.MTime)
	if err != nil {
		return ""
	}
	changelog := digest.JSON(fmt.Sprintf("%+v", rels))
	sign := ""
	if o.SignKey != "" {
		s, err := digest.File(o.SignKey)
		if err != nil {
			return ""
		}
		sign = s
	}
	return digest.JSON(struct {
		Schema    int
		Tree      string
		Project   *spec.Project
		Hooks     map[string]string
		Target    target.Target
		Arch      string
		Depends   []string
		MTime     time.Time
		Summary   string
		Embedded  []string
		Sign      string
		Extra     map[string]string
		Changelog string
	}{packageSchema, t.TreeDigest, o.Project, hooks, t.Target, cmp.Or(t.Arch, o.Arch), t.Depends, o.MTime, digest.Bytes(summary), embedded, sign, extra, changelog})
}

// previousRelease is what the release's previous directory lists in its
// report, or nil when there is none to read.
func previousRelease(prev string) *Release {
	data, err := os.ReadFile(filepath.Join(prev, ReportFile))
	if err != nil {
		return nil
	}
	var report struct {
		Release Release `json:"release"`
	}
	if json.Unmarshal(data, &report) != nil {
		return nil
	}
	return &report.Release
}

// byTarget are a previous release's packages that carry an input key, by
// target and architecture.
func byTarget(old *Release) map[string]*Artifact {
	out := map[string]*Artifact{}
	if old == nil {
		return out
	}
	for _, a := range old.Artifacts {
		if a != nil && a.InputKey != "" && a.File == filepath.Base(a.File) && a.File != "" {
			out[slot(a.Target, a.Arch)] = a
		}
	}
	return out
}

// reuse links into staging the previous release's package of a slot
// when it was made from the same inputs and still has its checksum: a
// no-op build does not package again.
func reuse(prev, staging string, old map[string]*Artifact, slot, key string) *Artifact {
	a := old[slot]
	if key == "" || a == nil || a.InputKey != key {
		return nil
	}
	if ok, err := linkUnchanged(prev, staging, a); !ok || err != nil {
		return nil
	}
	c := *a
	c.Reused, c.Kept = true, false
	return &c
}

// linkUnchanged links a previous release's package into staging if the
// file still has the checksum it was listed with; ok is false when it
// does not (or is gone), err when the link could not be made.
func linkUnchanged(prev, staging string, a *Artifact) (ok bool, err error) {
	src := filepath.Join(prev, a.File)
	if sum, err := digest.File(src); err != nil || strings.TrimPrefix(sum, digest.Prefix) != a.SHA256 {
		return false, nil
	}
	if err := os.Link(src, filepath.Join(staging, a.File)); err != nil {
		return false, err
	}
	return true, nil
}
