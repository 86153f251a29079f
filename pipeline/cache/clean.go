package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/spec"
)

// CleanRequest removes a project's work trees from the cache.
type CleanRequest struct {
	Project string
	// DryRun lists what would go.
	DryRun bool
	Log    *slog.Logger
}

// Cleaned is one work tree removed (or that would be).
type Cleaned struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// Clean removes the work trees of a project (one per target and arch):
// what coach package and coach health read the last build from. Layers,
// sources and root filesystems stay, so the next build is a cache hit
// that writes the tree again. Each tree is removed under its work lock,
// so a build or package using it is waited for, never cut short.
func (l Layout) Clean(ctx context.Context, req CleanRequest) ([]Cleaned, error) {
	if !spec.ValidProjectName(req.Project) {
		return nil, failure.Request(fmt.Errorf("%q is not a project name", req.Project))
	}
	dir := filepath.Join(l.WorkRoot(), req.Project)
	if st, err := os.Lstat(dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("clean: %s is not a directory (a symlink is not followed); remove it by hand", dir)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return []Cleaned{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []Cleaned{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, failure.Interrupted("clean: stopped after %d work trees", len(out))
		}
		work := filepath.Join(dir, e.Name())
		size := dirBytes(work)
		if !req.DryRun {
			unlock, err := build.LockWork(ctx, work, req.Log)
			if err != nil {
				return out, err
			}
			err = removeIn(ctx, l.Dir, work)
			unlock()
			if err != nil {
				return out, fmt.Errorf("clean %s: %w", work, err)
			}
			os.Remove(work + ".lock")
		}
		out = append(out, Cleaned{Path: work, Bytes: size})
	}
	if !req.DryRun {
		os.Remove(dir) // when empty
	}
	return out, nil
}

// dirBytes is what a directory takes, each file once.
func dirBytes(dir string) int64 {
	seen := map[[2]uint64]bool{}
	var n int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if id, allocated, ok := fileID(fi); ok {
			if !seen[id] {
				seen[id] = true
				n += allocated
			}
			return nil
		}
		n += fi.Size()
		return nil
	})
	return n
}
