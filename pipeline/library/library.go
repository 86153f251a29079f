// Package library brings a repository's software libraries (libraries.yaml,
// spec.Library) to the loader: a git library at the commit its ref names,
// pinned in libraries.lock with the digest of its software/ tree and kept
// in the cache; a path library where it is. A library's tree in the cache is
// used only after its digest is checked against the lock's.
package library

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/internal/cachedir"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/internal/gitcmd"
	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/spec"
	"go.yaml.in/yaml/v3"
)

// LockFile pins, at a repository's root, each git library's commit and
// each library's digest.
const LockFile = "libraries.lock"

// LockVersion is the lock file's format version.
const LockVersion = 1

// Lock is the content of libraries.lock.
type Lock struct {
	LockVersion int      `yaml:"lock_version"`
	Libraries   []Locked `yaml:"libraries"`
}

// Locked is one library as locked: where it is, the commit (git), and the
// digest of its software/ tree (digest.Tree).
type Locked struct {
	Name   string `yaml:"name" json:"name"`
	Git    string `yaml:"git,omitempty" json:"git,omitempty"`
	Ref    string `yaml:"ref,omitempty" json:"ref,omitempty"`
	Path   string `yaml:"path,omitempty" json:"path,omitempty"`
	Commit string `yaml:"commit,omitempty" json:"commit,omitempty"`
	Digest string `yaml:"digest" json:"digest"`
}

// Label names the library in messages: name@commit (12 digits), or
// name (path).
func (l Locked) Label() string {
	if l.Commit != "" {
		return l.Name + "@" + l.Commit[:12]
	}
	return l.Name + " (" + l.Path + ")"
}

// Resolved is a library ready to load.
type Resolved struct {
	Locked
	// Dir holds the library's software/.
	Dir string `json:"dir"`
	// Stale says how libraries.lock differs from this (empty: it does
	// not).
	Stale string `json:"stale,omitempty"`
}

// Root is the library as spec.LoadWith reads it.
func (r Resolved) Root() spec.LibraryRoot {
	return spec.LibraryRoot{Name: r.Name, Dir: r.Dir, Label: r.Label(), Stale: r.Stale}
}

// Options say how to bring libraries.
type Options struct {
	// CacheDir holds git libraries' trees (default: the cache's
	// default directory).
	CacheDir string
	// Upgrade resolves every git library's ref again, ignoring the
	// commit the lock pins.
	Upgrade bool
}

func (o Options) dir() string {
	return filepath.Join(cmp.Or(o.CacheDir, cachedir.Default()), "libraries")
}

// Load reads root's libraries.yaml and libraries.lock and brings every
// library: a locked git library at its locked commit (from the cache, else
// fetched), an unlocked one (or every one, under Upgrade) at the commit its
// ref names now. Without libraries.yaml it returns nothing.
func Load(ctx context.Context, root string, o Options) ([]Resolved, error) {
	libs, err := spec.ReadLibraries(root)
	if err != nil || len(libs) == 0 {
		return nil, err
	}
	lock, err := ReadLock(root)
	if err != nil {
		return nil, err
	}
	locked := map[string]Locked{}
	if lock != nil {
		for _, l := range lock.Libraries {
			locked[l.Name] = l
		}
	}
	var out []Resolved
	for _, l := range libs {
		r, err := bring(ctx, root, l, locked[l.Name], lock != nil, o)
		if err != nil {
			return nil, fmt.Errorf("%s: library %s: %w", l.At("name"), l.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func bring(ctx context.Context, root string, l spec.Library, old Locked, haveLock bool, o Options) (Resolved, error) {
	r := Resolved{Locked: Locked{Name: l.Name, Git: l.Git, Ref: l.Ref, Path: l.Path}}
	if l.Path != "" {
		r.Dir = l.Where(root)
		sum, err := digest.Tree(filepath.Join(r.Dir, "software"))
		if err != nil {
			return r, err
		}
		r.Digest = sum
		r.Stale = staleness(old, r.Locked, haveLock)
		return r, nil
	}
	pinned := old.Commit != "" && old.Git == l.Git && old.Ref == l.Ref && !o.Upgrade
	commit := old.Commit
	if !pinned {
		c, err := Latest(ctx, l.Git, l.Ref)
		if err != nil {
			return r, err
		}
		commit = c
	}
	r.Commit = commit
	want := ""
	if pinned {
		want = old.Digest
	}
	dir, sum, err := checkout(ctx, o.dir(), l.Git, commit, want)
	if err != nil {
		return r, err
	}
	r.Dir, r.Digest = dir, sum
	r.Stale = staleness(old, r.Locked, haveLock)
	return r, nil
}

func staleness(old, now Locked, haveLock bool) string {
	switch {
	case !haveLock:
		return "there is no " + LockFile
	case old.Name == "":
		return "not in " + LockFile + " (would lock " + now.Label() + ")"
	case old.Git != now.Git || old.Path != now.Path || old.Ref != now.Ref:
		return "libraries.yaml moved it (locked " + where(old) + ", now " + where(now) + ")"
	case old.Commit != now.Commit:
		return "locked at " + old.Commit[:12] + ", " + cmp.Or(now.Ref, "HEAD") + " now names " + now.Commit[:12]
	case old.Digest != now.Digest:
		return "its software/ changed (locked " + old.Digest + ", now " + now.Digest + ")"
	}
	return ""
}

func where(l Locked) string {
	if l.Path != "" {
		return "path " + l.Path
	}
	return l.Git + " " + cmp.Or(l.Ref, "HEAD")
}

// hexCommit is a full commit id.
var hexCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Latest is the commit ref (default HEAD) names in the repository at url
// now: itself if it is a full commit, else what git ls-remote says (a tag
// peeled to its commit).
func Latest(ctx context.Context, url, ref string) (string, error) {
	if hexCommit.MatchString(ref) {
		return ref, nil
	}
	if ref == "" {
		ref = "HEAD"
	}
	out, err := gitcmd.Run(ctx, "", "ls-remote", "--", url, ref, "refs/tags/"+ref+"^{}")
	if err != nil {
		return "", err
	}
	refs := map[string]string{}
	for line := range strings.Lines(out) {
		sha, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok && hexCommit.MatchString(sha) {
			refs[name] = sha
		}
	}
	for _, name := range []string{ref, "refs/tags/" + ref + "^{}", "refs/heads/" + ref, "refs/tags/" + ref} {
		if sha := refs[name]; sha != "" {
			return sha, nil
		}
	}
	return "", fmt.Errorf("%s has no branch or tag %q", url, ref)
}

// checkout brings the software/ tree of url at commit into
// <dir>/<commit>/ (once; a tree there whose digest is not want, when want
// is given, is removed and fetched again) and returns where it is and its
// digest.
func checkout(ctx context.Context, dir, url, commit, want string) (string, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	unlock, err := lockfile.Lock(ctx, filepath.Join(dir, commit+".lock"), 100*time.Millisecond)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	final := filepath.Join(dir, commit)
	if _, err := os.Lstat(final); err == nil {
		sum, err := digest.Tree(filepath.Join(final, "software"))
		if err == nil && (want == "" || sum == want) {
			return final, sum, nil
		}
		// Corrupt, or changed under the cache: fetched again below.
		if err := archive.RemoveAll(final); err != nil {
			return "", "", fmt.Errorf("remove the corrupt library tree %s: %w", final, err)
		}
	}
	work, err := os.MkdirTemp(dir, fmt.Sprintf("partial-%d-", os.Getpid()))
	if err != nil {
		return "", "", err
	}
	defer archive.RemoveAll(work)
	repo := filepath.Join(work, "repo.git")
	if _, err := gitcmd.Run(ctx, "", "init", "-q", "--bare", "--", repo); err != nil {
		return "", "", err
	}
	if err := gitcmd.FetchCommit(ctx, repo, url, commit); err != nil {
		return "", "", fmt.Errorf("fetch %s: %w", url, err)
	}
	if _, err := gitcmd.Run(ctx, repo, "cat-file", "-e", "--", commit+":software"); err != nil {
		return "", "", fmt.Errorf("%s at %s has no software/ directory: it is not a software library", url, commit[:12])
	}
	tar := filepath.Join(work, "software.tar")
	if _, err := gitcmd.Run(ctx, repo, "archive", "--format=tar", "--output="+tar, "--end-of-options", commit, "software"); err != nil {
		return "", "", err
	}
	// (git archive takes no "--": the commit is checked hex, the path
	// is coach's.) Unpacked as any source archive is: every entry through a root
	// confined to the destination, within the limits.
	if _, err := archive.Extract(tar, final, "software.tar", archive.DefaultLimits); err != nil {
		return "", "", fmt.Errorf("unpack %s at %s: %w", url, commit[:12], err)
	}
	if err := durable.Sync(final); err != nil {
		return "", "", err
	}
	sum, err := digest.Tree(filepath.Join(final, "software"))
	if err != nil {
		return "", "", err
	}
	if want != "" && sum != want {
		archive.RemoveAll(final)
		return "", "", fmt.Errorf("software/ of %s at %s hashes to %s, but %s locks %s", url, commit[:12], sum, LockFile, want)
	}
	return final, sum, nil
}

// ReadLock reads root's libraries.lock; without one it returns nil.
func ReadLock(root string) (*Lock, error) {
	data, err := os.ReadFile(filepath.Join(root, LockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l Lock
	if err := yaml.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", LockFile, err)
	}
	if l.LockVersion != LockVersion {
		return nil, fmt.Errorf("%s: lock_version %d is not %d (run coach lock)", LockFile, l.LockVersion, LockVersion)
	}
	for _, e := range l.Libraries {
		if e.Commit != "" && !hexCommit.MatchString(e.Commit) {
			return nil, fmt.Errorf("%s: library %s: commit %q is not a full commit", LockFile, e.Name, e.Commit)
		}
	}
	return &l, nil
}

// LockOf is the lock file content for the libraries as resolved.
func LockOf(libs []Resolved) *Lock {
	l := &Lock{LockVersion: LockVersion}
	for _, r := range libs {
		l.Libraries = append(l.Libraries, r.Locked)
	}
	slices.SortFunc(l.Libraries, func(a, b Locked) int { return strings.Compare(a.Name, b.Name) })
	return l
}

// WriteLock writes root's libraries.lock (durably).
func WriteLock(root string, l *Lock) error {
	var b bytes.Buffer
	b.WriteString("# Written by `coach lock`. Commit it; edit libraries.yaml, not this file.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(l); err != nil {
		return err
	}
	enc.Close()
	return durable.WriteFile(filepath.Join(root, LockFile), b.Bytes(), 0o644)
}
