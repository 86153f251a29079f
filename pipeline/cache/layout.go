// Package cache owns coach's cache directory: where each kind of entry
// lives (Layout), the lock every run holds shared and gc exclusive, what
// the cache takes (Usage), what a repository registers as in use (GC
// roots), and its administration: gc, verify and clean. The stages keep
// their own entries' formats (fetch the sources, build the layers, verify
// its results); this package only says where they are and looks after
// them.
//
//	<dir>/sources/    the source cache (package fetch)
//	<dir>/layers/     the layer cache (package build)
//	<dir>/rootfs/     root filesystems, or $COACH_ROOTFS_DIR (package sandbox)
//	<dir>/work/<project>/<target>[-<arch>]/
//	                  a build's work directory and merged tree
//	<dir>/verify/     verify's scratch roots, while verify runs
//	<dir>/verified/   verify results (package verify)
//	<dir>/roots/      each repository's GC root
//	<dir>/history.json  build times, for the scheduler
//	<dir>/gc.lock     held shared by every run, exclusive by gc
package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/pkg"
)

// DefaultDir is $COACH_CACHE_DIR, or coach/ under the user cache
// directory.
func DefaultDir() string { return fetch.DefaultDir() }

// Layout is a cache directory: every path of it is a method here.
type Layout struct{ Dir string }

// New is the layout of dir, or of DefaultDir when dir is empty.
func New(dir string) Layout {
	if dir == "" {
		dir = DefaultDir()
	}
	return Layout{Dir: dir}
}

func (l Layout) Sources() string  { return filepath.Join(l.Dir, "sources") }
func (l Layout) Layers() string   { return filepath.Join(l.Dir, "layers") }
func (l Layout) WorkRoot() string { return filepath.Join(l.Dir, "work") }
func (l Layout) Verify() string   { return filepath.Join(l.Dir, "verify") }
func (l Layout) Verified() string { return filepath.Join(l.Dir, "verified") }
func (l Layout) Roots() string    { return filepath.Join(l.Dir, "roots") }
func (l Layout) History() string  { return filepath.Join(l.Dir, "history.json") }

// Work is a build's work directory: one project, target and arch label.
func (l Layout) Work(project, label string) string {
	return filepath.Join(l.Dir, "work", project, label)
}

// Rootfs is where root filesystems are: $COACH_ROOTFS_DIR, else rootfs/
// in the cache. They are large and slow to make, so several caches may
// share them.
func (l Layout) Rootfs() string {
	if d := os.Getenv("COACH_ROOTFS_DIR"); d != "" {
		return d
	}
	return filepath.Join(l.Dir, "rootfs")
}

// SourceCache is the source cache.
func (l Layout) SourceCache() *fetch.Cache { return &fetch.Cache{Dir: l.Sources()} }

// LayerCache is the layer cache.
func (l Layout) LayerCache() *build.LayerCache { return &build.LayerCache{Dir: l.Layers()} }

// EvictCorrupt turns a packaging failure that found a file not as its
// layer recorded it into the eviction of that layer, and an error naming
// the entry: the next build rebuilds it. Other errors pass through.
func (l Layout) EvictCorrupt(err error, results ...*build.Result) error {
	var cfe *pkg.CorruptFileError
	var ce *build.CorruptError
	switch {
	case errors.As(err, &ce):
	case errors.As(err, &cfe):
		for _, res := range results {
			if res == nil {
				continue
			}
			_, owners, ferr := res.FileDigests()
			if ferr != nil {
				continue
			}
			for _, c := range res.Components {
				if c.Name == owners[cfe.Path] {
					ce = &build.CorruptError{Key: c.Key, Component: c.Name, Reason: cfe.Error()}
				}
			}
			if ce == nil && owners[cfe.Path] == "" {
				// In no layer: the merged tree itself was changed.
				return fmt.Errorf("the merged tree is not what its layers hold (%w): build again to merge it anew", cfe)
			}
		}
	default:
		return err
	}
	if ce == nil {
		return err
	}
	layers := l.LayerCache()
	if eerr := layers.Evict(ce.Key); eerr != nil {
		return fmt.Errorf("%w; evicting it failed: %v", ce, eerr)
	}
	return fmt.Errorf("%w; it was taken out of the cache: build again to rebuild it", ce)
}
