package resolve

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/spec"
	"go.yaml.in/yaml/v3"
)

// LockVersion is the lock file format version.
const LockVersion = 1

// Lock is the content of projects/<name>.lock.
type Lock struct {
	LockVersion int    `yaml:"lock_version"`
	Project     string `yaml:"project"`
	// SourceDateEpoch is when the lock last changed: the default
	// SOURCE_DATE_EPOCH of the packages, so rebuilds of the same lock are
	// byte-identical.
	SourceDateEpoch int64           `yaml:"source_date_epoch,omitempty"`
	Components      []LockComponent `yaml:"components"`
	// Images pins each target's image to a digest (target name ->
	// image@sha256:...), for the Dagger runner: a moving tag cannot change
	// the build environment under a lock. coach lock writes them when an
	// engine is reachable.
	Images map[string]string `yaml:"images,omitempty"`
}

// NoLockFile is the one change Diff reports when there is no lock file.
const NoLockFile = "there is no lock file"

// DiffImages lists how the image pins have differ from want, for the
// targets want has.
func DiffImages(have, want map[string]string) []string {
	var out []string
	for _, t := range sortedKeys(want) {
		switch old := have[t]; {
		case old == "":
			out = append(out, fmt.Sprintf("image of %s: pinned to %s", t, want[t]))
		case old != want[t]:
			out = append(out, fmt.Sprintf("image of %s: locked %s, the tag now resolves to %s", t, old, want[t]))
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// LockComponent is one component's entry in the lock file.
type LockComponent struct {
	Name         string   `yaml:"name"`
	Version      string   `yaml:"version"`
	Source       Source   `yaml:"source"`
	Definition   string   `yaml:"definition"`
	Dependencies []string `yaml:"dependencies,omitempty,flow"`
	// Library names the software library the definition comes from
	// (libraries.lock pins its commit); empty for the repository's own.
	Library string `yaml:"library,omitempty"`
}

// LockPath is where a project's lock file lives.
func LockPath(root, project string) string {
	return filepath.Join(root, "projects", project+".lock")
}

// Lock returns the lock file content for a resolution.
func (r *Resolution) Lock() *Lock {
	l := &Lock{LockVersion: LockVersion, Project: r.Project}
	for _, c := range r.Components {
		src := c.Source
		src.Dir = ""
		l.Components = append(l.Components, LockComponent{Name: c.Name, Version: c.Version, Source: src, Definition: c.Definition, Dependencies: c.Dependencies, Library: c.Library})
	}
	return l
}

const lockHeader = "# Written by `coach lock %s`. Commit it; edit the definitions, not this file.\n"

// Marshal renders the lock deterministically: components sorted by name,
// fields in a fixed order, one field per line so diffs stay small.
func (l *Lock) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, lockHeader, l.Project)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(l); err != nil {
		panic(fmt.Sprintf("resolve: encode lock: %v", err))
	}
	enc.Close()
	return b.Bytes()
}

// Versions maps component names to their locked versions.
func (l *Lock) Versions() map[string]string {
	m := map[string]string{}
	if l != nil {
		for _, c := range l.Components {
			m[c.Name] = c.Version
		}
	}
	return m
}

// ReadLock reads a project's lock file; it returns nil, nil if there is none.
func ReadLock(root, project string) (*Lock, error) {
	path := LockPath(root, project)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: %v (regenerate it with coach lock %s)", path, strings.TrimPrefix(err.Error(), "yaml: "), project)
	}
	if l.LockVersion != LockVersion {
		return nil, fmt.Errorf("%s: lock_version %d is not supported, this coach writes %d (regenerate it with coach lock %s)", path, l.LockVersion, LockVersion, project)
	}
	if l.Project != project {
		return nil, fmt.Errorf("%s: the lock is for project %q (regenerate it with coach lock %s)", path, l.Project, project)
	}
	return &l, nil
}

// WriteLock writes the lock atomically: a reader sees the old or the new
// file, never half of one.
func WriteLock(root string, l *Lock) error {
	return WriteFileAtomic(LockPath(root, l.Project), l.Marshal())
}

// WriteFileAtomic replaces a file through a temporary file beside it,
// renamed into place: a reader sees the old or the new file, never half.
func WriteFileAtomic(path string, data []byte) error {
	return durable.WriteFile(path, data, 0o644)
}

// StaleError says how a lock file differs from what resolution gives now.
type StaleError struct {
	Path    string
	Project string
	Changes []string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%s is out of date (run coach lock %s):\n\t%s", e.Path, e.Project, strings.Join(e.Changes, "\n\t"))
}

// Diff lists how have differs from want, one line per component, or nil.
func Diff(have, want *Lock) []string {
	var out []string
	if have == nil {
		return []string{NoLockFile}
	}
	old := map[string]LockComponent{}
	for _, c := range have.Components {
		old[c.Name] = c
	}
	for _, c := range want.Components {
		o, ok := old[c.Name]
		delete(old, c.Name)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: not in the lock (would lock %s)", c.Name, c.Version))
		case o.Version != c.Version:
			out = append(out, fmt.Sprintf("%s: locked %s, resolves to %s", c.Name, o.Version, c.Version))
		case o.Library != c.Library:
			out = append(out, fmt.Sprintf("%s: definition from %s, was from %s", c.Name, libraryLabel(c.Library), libraryLabel(o.Library)))
		case o.Source != c.Source:
			out = append(out, fmt.Sprintf("%s@%s: source changed (%s -> %s)", c.Name, c.Version, o.Source.Pin(), c.Source.Pin()))
		case o.Definition != c.Definition:
			out = append(out, fmt.Sprintf("%s@%s: definition changed", c.Name, c.Version))
		case strings.Join(o.Dependencies, ",") != strings.Join(c.Dependencies, ","):
			out = append(out, fmt.Sprintf("%s@%s: dependencies changed", c.Name, c.Version))
		}
	}
	for _, c := range have.Components {
		if _, gone := old[c.Name]; gone {
			out = append(out, fmt.Sprintf("%s: locked but no longer needed", c.Name))
		}
	}
	return out
}

// Check returns a *StaleError when the lock does not match res.
func Check(root string, have *Lock, res *Resolution) error {
	if changes := Diff(have, res.Lock()); len(changes) > 0 {
		return &StaleError{Path: LockPath(root, res.Project), Project: res.Project, Changes: changes}
	}
	return nil
}

// Relocked is a project resolved again against its lock file.
type Relocked struct {
	Resolution *Resolution
	// Lock is what the lock file is to say: the resolution, the images
	// (old ones kept, fresh ones over them) and now as source_date_epoch.
	Lock *Lock
	// Changes say how Lock differs from the old lock; none means the
	// lock file stays as it is.
	Changes []string
}

// Relock resolves p again: preferring old's versions except those of move,
// or, with upgrade, to the highest allowed. images are images pinned just
// now (nil when not pinned this time).
func Relock(repo *spec.Repo, p *spec.Project, old *Lock, upgrade bool, move []string, images map[string]string, now time.Time) (*Relocked, error) {
	opts := Options{}
	if !upgrade {
		opts.Prefer = old.Versions()
		for _, m := range move {
			delete(opts.Prefer, m)
		}
	}
	res, err := Resolve(repo, p, opts)
	if err != nil {
		return nil, err
	}
	l := res.Lock()
	changes := Diff(old, l)
	resolutionMoved := len(changes) > 0
	merged := map[string]string{}
	var oldImages map[string]string
	if old != nil {
		oldImages = old.Images
		maps.Copy(merged, old.Images)
	}
	if images != nil {
		changes = append(changes, DiffImages(oldImages, images)...)
		maps.Copy(merged, images)
	}
	// source_date_epoch moves only with what is built: a resolution that
	// moved (versions, sources, definitions) is recorded at now; image
	// pins alone keep the old lock's, so that pinning the Dagger runner's
	// images changes neither the packages' dates nor the sandbox's layer
	// keys (SOURCE_DATE_EPOCH is in every step's environment).
	l.SourceDateEpoch = now.Unix()
	switch {
	case old != nil && old.SourceDateEpoch == 0:
		changes = append(changes, "source_date_epoch: recorded for reproducible packages")
	case old != nil && !resolutionMoved:
		l.SourceDateEpoch = old.SourceDateEpoch
	}
	if len(merged) > 0 {
		l.Images = merged
	}
	return &Relocked{Resolution: res, Lock: l, Changes: changes}, nil
}

func libraryLabel(name string) string {
	if name == "" {
		return "the repository"
	}
	return "library " + name
}
