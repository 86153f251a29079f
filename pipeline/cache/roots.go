package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/resolve"
)

// A gcRoot is a repository that builds with a cache, as Nix's GC roots
// are: what its builds used, so that cache gc run from another repository
// sharing the cache keeps it. One file per repository, under
// <cache>/roots/.
type gcRoot struct {
	Path    string    `json:"path"`
	Updated time.Time `json:"updated"`
	// Builds are what each build (project, target and arch) last used:
	// layer keys and source cache keys.
	Builds map[string]rootBuild `json:"builds"`
}

type rootBuild struct {
	Layers  []string `json:"layers"`
	Sources []string `json:"sources"`
}

// rootFile is a repository's root file: named by a digest of its path.
func (l Layout) rootFile(repo string) string {
	abs, err := filepath.Abs(repo)
	if err != nil {
		abs = repo
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(l.Roots(), hex.EncodeToString(sum[:8])+".json")
}

// RegisterBuild records in the repository's GC root what a build of it
// used: the layers of res and the sources of its resolution.
func (l Layout) RegisterBuild(ctx context.Context, repo, name string, res *build.Result, resolution *resolve.Resolution) error {
	var layers, sources []string
	for _, c := range res.Components {
		layers = append(layers, c.Key)
	}
	for _, r := range fetch.Requests(resolution) {
		if k := fetch.Key(r.Source); k != "" {
			sources = append(sources, k)
		}
	}
	return l.RegisterRoot(ctx, repo, name, layers, sources)
}

// RegisterRoot records, durably and under the root's lock, what a build of
// the repository used (its layers and sources), in the repository's GC
// root.
func (l Layout) RegisterRoot(ctx context.Context, repo, build string, layers, sources []string) error {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.Roots(), 0o755); err != nil {
		return err
	}
	file := l.rootFile(repo)
	unlock, err := lockfile.Lock(ctx, file+".lock", 20*time.Millisecond)
	if err != nil {
		return err
	}
	defer unlock()
	r := readRoot(file)
	if r == nil || r.Path != abs {
		r = &gcRoot{Path: abs, Builds: map[string]rootBuild{}}
	}
	slices.Sort(layers)
	slices.Sort(sources)
	r.Builds[build] = rootBuild{Layers: slices.Compact(layers), Sources: slices.Compact(sources)}
	r.Updated = time.Now().UTC()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(file, append(data, '\n'), 0o644)
}

func readRoot(file string) *gcRoot {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var r gcRoot
	if json.Unmarshal(data, &r) != nil || r.Path == "" {
		return nil
	}
	return &r
}

// GCRoot is a repository cache gc kept things for, or dropped.
type GCRoot struct {
	Path    string `json:"path"`
	Layers  int    `json:"layers"`
	Sources int    `json:"sources"`
	// Gone says the repository no longer exists: its root was dropped,
	// and what only it used is collected.
	Gone bool `json:"gone,omitempty"`
}

// liveRoots reads the cache's roots but repo's own: those whose
// repository still exists, and those that are gone (whose files are
// removed unless dryRun).
func (l Layout) liveRoots(repo string, dryRun bool) (live []*gcRoot, report []GCRoot) {
	own, _ := filepath.Abs(repo)
	entries, _ := os.ReadDir(l.Roots())
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		file := filepath.Join(l.Roots(), e.Name())
		r := readRoot(file)
		if r == nil || r.Path == own {
			continue
		}
		layers, sources := 0, 0
		for _, b := range r.Builds {
			layers, sources = layers+len(b.Layers), sources+len(b.Sources)
		}
		if !isRepository(r.Path) {
			report = append(report, GCRoot{Path: r.Path, Layers: layers, Sources: sources, Gone: true})
			if !dryRun {
				os.Remove(file)
				os.Remove(file + ".lock")
			}
			continue
		}
		live = append(live, r)
		report = append(report, GCRoot{Path: r.Path, Layers: layers, Sources: sources})
	}
	return live, report
}

// isRepository reports whether dir is still a repository of definitions.
func isRepository(dir string) bool {
	for _, sub := range []string{"projects", "software"} {
		if st, err := os.Stat(filepath.Join(dir, sub)); err == nil && st.IsDir() {
			return true
		}
	}
	return false
}

// errOtherRepository is the reason a source another repository needs is
// kept.
var errOtherRepository = errors.New("another repository uses it")

func otherRepositoryReason(paths []string) string {
	return fmt.Sprintf("%s (%s)", errOtherRepository, strings.Join(paths, ", "))
}
