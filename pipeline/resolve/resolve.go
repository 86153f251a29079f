// Package resolve chooses one version of every component a project needs,
// from the constraints in the definitions, the project's overrides and the
// lock file, and writes and checks projects/<name>.lock.
package resolve

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/spec"
)

// Source is where a resolved version comes from, and what pins it.
type Source struct {
	URL    string `json:"url,omitempty" yaml:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty" yaml:"sha256,omitempty"`
	SHA512 string `json:"sha512,omitempty" yaml:"sha512,omitempty"`
	Git    string `json:"git,omitempty" yaml:"git,omitempty"`
	Commit string `json:"commit,omitempty" yaml:"commit,omitempty"`
	Tag    string `json:"tag,omitempty" yaml:"tag,omitempty"`
	// Path is relative to software/; Tree is the digest of its content.
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
	Tree string `json:"tree,omitempty" yaml:"tree,omitempty"`
	// Dir is the software/ directory Path is relative to when the
	// definition comes from a software library; empty for the
	// repository's own. It is where the source is, not what it is: no
	// key and no lock file holds it.
	Dir string `json:"-" yaml:"-"`
}

// Files is the directory a path source is relative to: its library's
// software/, else root's.
func (s Source) Files(root string) string {
	if s.Dir != "" {
		return s.Dir
	}
	return filepath.Join(root, "software")
}

// Kind is url, git or path.
func (s Source) Kind() string {
	switch {
	case s.URL != "":
		return "url"
	case s.Git != "":
		return "git"
	}
	return "path"
}

// Pin is the single value that fixes the source's content.
func (s Source) Pin() string {
	switch {
	case s.SHA256 != "":
		return "sha256:" + s.SHA256
	case s.SHA512 != "":
		return "sha512:" + s.SHA512
	case s.Commit != "":
		return "git:" + s.Commit
	}
	return s.Tree
}

// Component is one resolved component.
type Component struct {
	Name         string   `json:"name" yaml:"name"`
	Version      string   `json:"version" yaml:"version"`
	Source       Source   `json:"source" yaml:"source"`
	Definition   string   `json:"definition" yaml:"definition"`
	Dependencies []string `json:"dependencies,omitempty" yaml:"dependencies,omitempty,flow"`
	License      string   `json:"license" yaml:"license"`
	// Library is the software library the definition comes from; empty
	// for the repository's own.
	Library string `json:"library,omitempty" yaml:"library,omitempty"`
	// Constraint says what chose the version, for messages and plan output.
	Constraint string `json:"constraint" yaml:"-"`
	// Software is the effective definition: the software definition with
	// only the chosen version left in it.
	Software *spec.Software `json:"-" yaml:"-"`
}

// Resolution is the set of components a project builds, sorted by name.
type Resolution struct {
	Project    string      `json:"project"`
	Components []Component `json:"components"`
}

// Component returns the named component.
func (r *Resolution) Component(name string) *Component {
	i, ok := slices.BinarySearchFunc(r.Components, name, func(c Component, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return nil
	}
	return &r.Components[i]
}

// Options steer resolution.
type Options struct {
	// Prefer holds versions to keep when they still satisfy the constraint,
	// usually from the lock file.
	Prefer map[string]string
}

// Resolve picks a version for every component the project needs, directly or
// through dependencies. Every component that cannot be resolved is reported.
func Resolve(repo *spec.Repo, p *spec.Project, opts Options) (*Resolution, error) {
	res := &Resolution{Project: p.Name}
	var errs []error
	seen := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		s := repo.Software[name]
		if s == nil {
			errs = append(errs, fmt.Errorf("resolve %s: no definition software/%s.yaml", name, name))
			return
		}
		c, err := resolveOne(repo, p, s, opts.Prefer[name])
		if err != nil {
			errs = append(errs, err)
		} else {
			res.Components = append(res.Components, c)
		}
		for _, d := range s.Dependencies {
			visit(d)
		}
	}
	for _, name := range p.Software {
		visit(name)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(res.Components, func(a, b Component) int { return strings.Compare(a.Name, b.Name) })
	return res, nil
}

type candidate struct {
	v   spec.Version
	sem *semver.Version // nil for exact pins
}

func resolveOne(repo *spec.Repo, p *spec.Project, s *spec.Software, prefer string) (Component, error) {
	constraint, origin := "*", "any version: no default_version and no override"
	if s.DefaultVersion != "" {
		constraint, origin = s.DefaultVersion, fmt.Sprintf("default_version at %s", s.At("default_version"))
	}
	if o, ok := p.Overrides[s.Name]; ok {
		constraint, origin = o, fmt.Sprintf("override at %s", p.At("overrides."+s.Name))
	}
	var cands []candidate
	for _, v := range s.Versions {
		c := candidate{v: v}
		if !v.Exact {
			sv, err := semver.NewVersion(v.Version)
			if err != nil {
				return Component{}, fmt.Errorf("resolve %s: version %q is not semver (%s)", s.Name, v.Version, s.At("versions"))
			}
			c.sem = sv
		}
		cands = append(cands, c)
	}
	chosen, err := choose(cands, constraint, prefer)
	if err != nil {
		return Component{}, fmt.Errorf("resolve %s: %w\n\tthe constraint comes from the %s", s.Name, err, origin)
	}
	c := Component{
		Name:         s.Name,
		Version:      chosen.Version,
		Dependencies: slices.Sorted(slices.Values(s.Dependencies)),
		License:      s.License,
		Constraint:   constraint,
		Library:      s.Library,
	}
	c.Source = SourceOf(chosen)
	c.Source.Dir = s.Dir
	if chosen.Path != "" {
		tree, err := digest.Tree(filepath.Join(s.Files(repo.Root), chosen.Path))
		if err != nil {
			return Component{}, fmt.Errorf("resolve %s@%s: hash path source: %w", s.Name, chosen.Version, err)
		}
		c.Source.Tree = tree
	}
	eff := *s
	eff.Versions = []spec.Version{chosen}
	c.Software = &eff
	c.Definition, err = definitionDigest(repo.Root, &eff)
	if err != nil {
		return Component{}, fmt.Errorf("resolve %s@%s: %w", s.Name, chosen.Version, err)
	}
	return c, nil
}

// choose returns the highest candidate that satisfies constraint, or the
// preferred version if it still does. A constraint equal to a listed version
// string chooses that version even when it is not semver.
func choose(cands []candidate, constraint, prefer string) (spec.Version, error) {
	for _, c := range cands {
		if c.v.Version == constraint {
			return c.v, nil
		}
	}
	con, err := semver.NewConstraint(constraint)
	if err != nil {
		return spec.Version{}, fmt.Errorf("%q is neither a semver constraint nor a listed version", constraint)
	}
	var best *candidate
	for i := range cands {
		c := &cands[i]
		if c.sem == nil || !con.Check(c.sem) {
			continue
		}
		if c.v.Version == prefer {
			return c.v, nil
		}
		if best == nil || c.sem.GreaterThan(best.sem) {
			best = c
		}
	}
	if best != nil {
		return best.v, nil
	}
	var why []string
	for _, c := range cands {
		if c.sem == nil {
			why = append(why, fmt.Sprintf("\t%s: exact pin, chosen only by naming it", c.v.Version))
			continue
		}
		_, reasons := con.Validate(c.sem)
		msgs := make([]string, len(reasons))
		for i, r := range reasons {
			msgs[i] = r.Error()
		}
		why = append(why, fmt.Sprintf("\t%s: %s", c.v.Version, strings.Join(msgs, "; ")))
	}
	if len(why) == 0 {
		return spec.Version{}, fmt.Errorf("no versions are listed")
	}
	return spec.Version{}, fmt.Errorf("no version satisfies %q; available versions:\n%s", constraint, strings.Join(why, "\n"))
}

// definitionDigest hashes the effective definition and the content of the
// patches it applies, so that any change to how the chosen version is built
// changes it, and edits to other versions or to comments do not.
func definitionDigest(root string, eff *spec.Software) (string, error) {
	patches := map[string]string{}
	for _, p := range append(slices.Clone(eff.Patches), eff.Versions[0].Patches...) {
		sum, err := digest.File(filepath.Join(eff.Files(root), eff.Name, p))
		if err != nil {
			return "", fmt.Errorf("hash patch: %w", err)
		}
		patches[p] = sum
	}
	// Timeouts say when to give up, not what is built: changing one
	// rebuilds nothing.
	keyed := *eff
	keyed.Timeout = ""
	keyed.Build = slices.Clone(eff.Build)
	for i := range keyed.Build {
		keyed.Build[i].Timeout = ""
	}
	return digest.JSON(struct {
		Software *spec.Software
		Patches  map[string]string
	}{&keyed, patches}), nil
}

// SourceOf is the source of a listed version (without the tree digest of a
// path source, which Resolve computes).
func SourceOf(v spec.Version) Source {
	return Source{URL: v.URL, SHA256: v.SHA256, SHA512: v.SHA512, Git: v.Git, Commit: v.Commit, Tag: v.Tag, Path: v.Path}
}

// Listed is one version listed in a software definition.
type Listed struct {
	Name    string
	Version string
	Source  Source
}

// AllVersions lists every version of every software definition, sorted by
// name and then as listed: everything a mirror of the repository must hold.
func AllVersions(repo *spec.Repo) []Listed {
	var out []Listed
	for _, name := range repo.SoftwareNames() {
		for _, v := range repo.Software[name].Versions {
			out = append(out, Listed{Name: name, Version: v.Version, Source: SourceOf(v)})
		}
	}
	return out
}
