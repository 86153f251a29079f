package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/internal/proc"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

// GCRequest collects a cache's garbage.
type GCRequest struct {
	// Repo is the repository gc runs in: its own GC root is not another
	// repository's. InUse says, once gc holds the cache, what the
	// repository's definitions and builds (as locked) use.
	Repo  string
	InUse func() (*InUse, error)
	// UnusedFor is how long a root filesystem or a work tree may go
	// unused before it is collected (default 30 days).
	UnusedFor time.Duration
	// KeepSize, when not negative, then removes what is left, least
	// recently used first and of any kind, until the cache takes at most
	// that many bytes.
	KeepSize int64
	// DryRun only reports.
	DryRun bool
	// IgnoreOtherRepositories collects what only other repositories that
	// share the cache still use (their GC roots): their next builds fetch
	// and build it again. Without it, it is kept.
	IgnoreOtherRepositories bool
	Log                     *slog.Logger
}

// InUse is what a repository uses: the source cache keys its definitions
// list, the layer keys (without "sha256:") its projects' builds would look
// up, and its project names (whose work trees are kept while used).
type InUse struct {
	Sources, Layers, Projects map[string]bool
}

// GCEntry is one thing collected (or that would be).
type GCEntry struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
}

// GCResult says what collection removed, and what the cache took before
// and after.
type GCResult struct {
	Removed []GCEntry `json:"removed"`
	Bytes   int64     `json:"bytes"`
	Kept    int       `json:"kept"`
	Before  int64     `json:"before_bytes"`
	After   int64     `json:"after_bytes"`
	DryRun  bool      `json:"dry_run,omitempty"`
	// Roots are the other repositories sharing the cache: what was kept
	// for each, and those that are gone, whose roots were dropped.
	Roots []GCRoot `json:"roots"`
	// Failed are the entries that could not be removed (a file system
	// mounted inside one, a file the user may not remove): collection
	// goes on past them, then returns an error naming them.
	Failed []GCFailure `json:"failed,omitempty"`
}

// GCFailure is an entry cache gc could not remove, and why.
type GCFailure struct {
	GCEntry
	Error string `json:"error"`
}

// gcEntry is an entry of the cache gc considers.
type gcEntry struct {
	GCEntry
	used time.Time
	// remove removes it (under the lock its users take).
	remove func(ctx context.Context) error
}

// gcLock is the file every coach run that uses a cache holds shared, and
// cache gc exclusive.
const gcLock = "gc.lock"

// Use marks the cache (and its root filesystems) in use until the
// returned function is called: cache gc waits for every user, and a run
// that starts during a collection waits for it.
func (l Layout) Use(ctx context.Context, log *slog.Logger) (release func(), err error) {
	return lockCache(ctx, log, true, l.Dir, l.Rootfs())
}

// lockCache takes the gc locks of dirs, shared or exclusive.
func lockCache(ctx context.Context, log *slog.Logger, shared bool, dirs ...string) (release func(), err error) {
	var unlocks []func()
	release = func() {
		for _, u := range slices.Backward(unlocks) {
			u()
		}
	}
	for _, dir := range slices.Compact(dirs) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			release()
			return nil, err
		}
		path := filepath.Join(dir, gcLock)
		take := lockfile.Lock
		if shared {
			take = lockfile.Shared
		}
		quick, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		u, err := take(quick, path, 10*time.Millisecond)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			if log != nil {
				if shared {
					log.Warn("waiting for coach cache gc to finish with the cache", "dir", dir)
				} else {
					log.Warn("waiting for the coach runs using the cache to finish", "dir", dir)
				}
			}
			u, err = take(ctx, path, 200*time.Millisecond)
		}
		if err != nil {
			release()
			return nil, fmt.Errorf("lock the cache %s: %w", dir, err)
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// GC collects a cache's garbage, under its exclusive lock (so never under
// a running build, package or verify): sources no definition lists,
// layers no project's build (as locked) would use, temporary layers and
// verify roots of processes that are gone, work trees of projects the
// repository does not have, and root filesystems and work trees unused
// for UnusedFor. With KeepSize it then removes the least recently used of
// the rest until the cache fits.
func (l Layout) GC(ctx context.Context, req GCRequest) (*GCResult, error) {
	if req.UnusedFor <= 0 {
		req.UnusedFor = 30 * 24 * time.Hour
	}
	// The cache's lock, exclusive: no run uses it meanwhile. The root
	// filesystems' (which caches may share through $COACH_ROOTFS_DIR) is
	// taken only when one is to go. A dry run removes nothing and waits
	// for nobody.
	if !req.DryRun {
		release, err := lockCache(ctx, req.Log, false, l.Dir)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	use, err := req.InUse()
	if err != nil {
		return nil, err
	}
	var releaseRoots func()
	defer func() {
		if releaseRoots != nil {
			releaseRoots()
		}
	}()
	lockRoots := func(ctx context.Context) (err error) {
		if releaseRoots == nil && l.Rootfs() != l.Dir {
			releaseRoots, err = lockCache(ctx, req.Log, false, l.Rootfs())
		}
		return err
	}
	res := &GCResult{Removed: []GCEntry{}, DryRun: req.DryRun}
	if res.Before, err = l.total(); err != nil {
		return nil, err
	}
	now := time.Now()
	var entries []*gcEntry
	add := func(kind, path string, used time.Time, reason string, remove func(context.Context) error) {
		if ctx.Err() != nil {
			return // interrupted: nothing more is sized or removed
		}
		if remove == nil {
			remove = func(ctx context.Context) error { return removeIn(ctx, l.Dir, path) }
		}
		entries = append(entries, &gcEntry{GCEntry: GCEntry{Kind: kind, Path: path, Bytes: dirBytes(path), Reason: reason}, used: used, remove: remove})
	}
	stale := func(used time.Time) string {
		if now.Sub(used) > req.UnusedFor {
			return fmt.Sprintf("unused for %d days", int(now.Sub(used).Hours()/24))
		}
		return ""
	}

	// What other repositories sharing the cache use (their GC roots).
	live, liveReport := l.liveRoots(req.Repo, req.DryRun)
	res.Roots = liveReport
	if res.Roots == nil {
		res.Roots = []GCRoot{}
	}
	otherSources, otherLayers := map[string][]string{}, map[string][]string{}
	for _, r := range live {
		for _, b := range r.Builds {
			for _, k := range b.Sources {
				otherSources[k] = append(otherSources[k], r.Path)
			}
			for _, k := range b.Layers {
				otherLayers[strings.TrimPrefix(k, "sha256:")] = append(otherLayers[strings.TrimPrefix(k, "sha256:")], r.Path)
			}
		}
	}
	keptFor := func(users []string) bool { return len(users) > 0 && !req.IgnoreOtherRepositories }

	// Sources.
	cache := l.SourceCache()
	keys, err := cache.Entries()
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		reason := ""
		switch {
		case use.Sources[key]:
		case keptFor(otherSources[key]):
			if req.Log != nil {
				req.Log.Debug("cache gc: kept a source another repository uses", "source", key, "repositories", strings.Join(slices.Compact(otherSources[key]), ", "))
			}
		case len(otherSources[key]) > 0:
			reason = "no definition here lists it, and --ignore-other-repositories: " + otherRepositoryReason(slices.Compact(otherSources[key]))
		default:
			reason = "no definition lists it"
		}
		path := cache.Path(key)
		add("sources", path, modTime(path), reason, func(ctx context.Context) error {
			os.Remove(path + ".sha256") // a git tar's recorded digest
			return removeIn(ctx, l.Dir, path)
		})
	}

	// Layers.
	layers := l.LayerCache()
	for _, p := range layers.Leftovers() {
		add("layers", p, modTime(p), "left by a process that is gone", nil)
	}
	for _, e := range readDir(layers.Dir) {
		path := filepath.Join(layers.Dir, e.Name())
		if e.Name() == "tmp" || !e.IsDir() {
			continue
		}
		reason := ""
		switch {
		case use.Layers[e.Name()], keptFor(otherLayers[e.Name()]):
		case len(otherLayers[e.Name()]) > 0:
			reason = "no project's build here uses it, and --ignore-other-repositories: " + otherRepositoryReason(slices.Compact(otherLayers[e.Name()]))
		default:
			reason = "no project's build uses it"
		}
		add("layers", path, modTime(filepath.Join(path, "meta.json")), reason, nil)
	}

	// Root filesystems: each is removed under the lock that making it
	// takes.
	roots := l.Rootfs()
	for _, e := range proc.Leftovers(roots, partialRoot) {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(roots, e.Name())
		add("root filesystems", path, modTime(path), "left by a process that is gone", func(ctx context.Context) error {
			if err := lockRoots(ctx); err != nil {
				return err
			}
			return removeIn(ctx, roots, path)
		})
	}
	for _, e := range readDir(roots) {
		name, path := e.Name(), filepath.Join(roots, e.Name())
		if !e.IsDir() || strings.Contains(name, ".partial-") {
			continue // a half-made root: above, if its process is gone
		}
		kind, used := "root filesystems", modTime(filepath.Join(path, sandbox.InfoFile))
		if isEnvironment(name) {
			kind = "build environments"
		}
		if name == sandbox.ArchivesDir {
			used = modTime(path) // the packages last downloaded for an environment
		}
		reason := stale(used)
		if used.IsZero() {
			reason = "incomplete"
		}
		add(kind, path, used, reason, func(ctx context.Context) error {
			if err := lockRoots(ctx); err != nil {
				return err
			}
			unlock, err := lockfile.Lock(ctx, path+".lock", 100*time.Millisecond)
			if err != nil {
				return err
			}
			defer unlock()
			if err := removeIn(ctx, roots, path); err != nil {
				return err
			}
			os.Remove(path + ".lock")
			return nil
		})
	}

	// Work trees, each under its work lock.
	workRoot := l.WorkRoot()
	for _, p := range readDir(workRoot) {
		if !p.IsDir() {
			continue // a symlink planted in the cache is not followed
		}
		for _, e := range readDir(filepath.Join(workRoot, p.Name())) {
			if !e.IsDir() {
				continue
			}
			path := filepath.Join(workRoot, p.Name(), e.Name())
			used := cmp.Or(modTime(path+".lock"), modTime(path))
			reason := stale(used)
			if !use.Projects[p.Name()] {
				reason = "the repository has no project " + p.Name()
			}
			add("work trees", path, used, reason, func(ctx context.Context) error {
				unlock, err := build.LockWork(ctx, path, req.Log)
				if err != nil {
					return err
				}
				err = removeIn(ctx, l.Dir, path)
				unlock()
				os.Remove(path + ".lock")
				return err
			})
		}
	}

	// Verify roots of processes that are gone, and verify results.
	for _, p := range verify.Leftovers(l.Verify()) {
		add("verify roots", p, modTime(p), "left by a process that is gone", nil)
	}
	verified := l.Verified()
	for _, e := range readDir(verified) {
		add("verify results", filepath.Join(verified, e.Name()), modTime(filepath.Join(verified, e.Name())), "", nil)
	}

	if ctx.Err() != nil {
		return res, failure.Interrupted("cache gc: stopped before removing anything")
	}
	remove := func(e *gcEntry) error {
		if err := ctx.Err(); err != nil {
			return failure.Interrupted("cache gc: stopped after removing %d entries", len(res.Removed))
		}
		if !req.DryRun {
			if err := e.remove(ctx); err != nil {
				if ctx.Err() != nil {
					return failure.Interrupted("cache gc: stopped after removing %d entries", len(res.Removed))
				}
				// Collection goes on; the error names it at the end.
				res.Failed = append(res.Failed, GCFailure{e.GCEntry, err.Error()})
				return nil
			}
		}
		res.Removed = append(res.Removed, e.GCEntry)
		res.Bytes += e.Bytes
		return nil
	}
	var rest []*gcEntry
	for _, e := range entries {
		if e.Reason == "" { // in use: only --keep-size takes it
			rest = append(rest, e)
			continue
		}
		if err := remove(e); err != nil {
			return res, err
		}
	}
	if req.KeepSize >= 0 {
		size := res.Before - res.Bytes
		if !req.DryRun {
			if size, err = l.total(); err != nil {
				return res, err
			}
		}
		slices.SortStableFunc(rest, func(a, b *gcEntry) int { return a.used.Compare(b.used) })
		for len(rest) > 0 && size > req.KeepSize {
			e := rest[0]
			rest = rest[1:]
			e.Reason = fmt.Sprintf("least recently used (%s), to keep the cache within %s", e.used.UTC().Format(time.DateOnly), sizeText(req.KeepSize))
			failed := len(res.Failed)
			if err := remove(e); err != nil {
				return res, err
			}
			if len(res.Failed) == failed {
				size -= e.Bytes
			}
		}
	}
	res.Kept = len(rest)
	if !req.DryRun {
		cache.SweepPartials() // leftovers of interrupted downloads
		res.After, err = l.total()
	} else {
		res.After = max(0, res.Before-res.Bytes)
	}
	if len(res.Failed) > 0 {
		msgs := make([]string, len(res.Failed))
		for i, f := range res.Failed {
			msgs[i] = f.Error
		}
		return res, fmt.Errorf("cache gc: could not remove %d of %d entries, left as they are:\n%s", len(res.Failed), len(res.Failed)+len(res.Removed), strings.Join(msgs, "\n"))
	}
	return res, err
}

// total is what the cache takes, as coach cache du counts it.
func (l Layout) total() (int64, error) {
	use, err := l.Usage()
	var n int64
	for _, u := range use {
		n += u.Bytes
	}
	return n, err
}

// removeIn removes path, which is beneath base, following no symlink in
// it (confine.RemoveAll): a link planted in the cache is removed, never
// what it points at.
func removeIn(ctx context.Context, base, path string) error {
	rel, err := filepath.Rel(base, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not beneath %s", path, base)
	}
	return confine.RemoveAll(ctx, base, rel)
}

func readDir(dir string) []os.DirEntry {
	entries, _ := os.ReadDir(dir)
	return entries
}

func modTime(path string) time.Time {
	st, err := os.Lstat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// partialRoot matches a root filesystem being made (sandbox.Rootfs's
// <name>.partial-<pid>) and the process making it.
var partialRoot = regexp.MustCompile(`\.partial-([0-9]+)(?:\.tar)?$`)

func sizeText(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// RepoInUse is what a repository uses (GCRequest.InUse): the sources any
// of its definitions lists, and the layers a build of each project, as
// locked, would look up on each of its targets and arches, in each
// environment the cache has layers of (a sandbox root, a Dagger image,
// for any runner). A project that does not plan has no build to keep
// layers for; that is logged, not an error.
func (l Layout) RepoInUse(repo *spec.Repo, log *slog.Logger) (*InUse, error) {
	use := &InUse{Sources: fetch.Referenced(fetch.ListedRequests(resolve.AllVersions(repo))), Layers: map[string]bool{}, Projects: map[string]bool{}}
	for name := range repo.Projects {
		use.Projects[name] = true
	}
	layers := l.LayerCache()
	var envs []build.Environment
	for _, e := range layers.Environments() {
		envs = append(envs, build.FixedEnvironment(e))
	}
	for _, name := range repo.ProjectNames() {
		for _, arch := range target.Arches {
			prep, err := project.PrepareProject(repo, name, project.Options{Arch: arch})
			if err != nil {
				if log != nil {
					msg, _, _ := strings.Cut(err.Error(), "\n")
					log.Warn("cache gc: a project does not plan; none of its layers count as used", "project", name, "err", msg)
				}
				continue
			}
			for _, t := range prep.Plan.TargetList() {
				for _, e := range envs {
					for _, k := range build.LayerKeys(layers, e, prep.Plan, t) {
						use.Layers[strings.TrimPrefix(k, "sha256:")] = true
					}
				}
			}
		}
	}
	return use, nil
}
