package cache

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/coach-build/coach/pipeline/runner/sandbox"
)

// Use is what one kind of cache entry takes on disk.
type Use struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"`
}

// cacheKinds are the cache's parts, in the order coach writes them.
var cacheKinds = []struct{ kind, dir string }{
	{"sources", "sources"},
	{"layers", "layers"},
	{"work trees", "work"},
	{"verify roots", "verify"},
	{"verify results", "verified"},
	{"software libraries", "libraries"},
}

// isEnvironment says whether an entry of the roots' directory belongs to
// the build environments: an environment over a base root, or the
// downloaded packages they share.
func isEnvironment(name string) bool {
	return (sandbox.IsEnvironment(name) || name == sandbox.ArchivesDir) && !strings.HasSuffix(name, ".lock")
}

// Usage measures the cache by kind: sources, dependency layers, root
// filesystems (in Rootfs), build environments over them, work trees, leftover verify roots and verify
// results. Sizes are allocated bytes, each inode counted once (a layer
// hard-linked into a tree is not counted twice); symlinks are not
// followed.
func (l Layout) Usage() ([]Use, error) {
	cacheDir := l.Dir
	seen := map[[2]uint64]bool{}
	var out []Use
	// measure walks the entries of dir that keep says to (every one when
	// keep is nil).
	measure := func(kind, dir string, keep func(name string) bool) error {
		u := Use{Kind: kind, Path: dir}
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		err = nil
		for _, e := range entries {
			if keep != nil && !keep(e.Name()) {
				continue
			}
			u.Entries++
			if werr := filepath.WalkDir(filepath.Join(dir, e.Name()), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil // gone or unreadable: not counted
				}
				fi, err := d.Info()
				if err != nil {
					return nil
				}
				if id, allocated, ok := fileID(fi); ok {
					if seen[id] {
						return nil
					}
					seen[id] = true
					u.Bytes += allocated
					return nil
				}
				u.Bytes += fi.Size()
				return nil
			}); werr != nil && err == nil {
				err = werr
			}
		}
		out = append(out, u)
		return err
	}
	for _, k := range cacheKinds[:2] {
		if err := measure(k.kind, filepath.Join(cacheDir, k.dir), nil); err != nil {
			return nil, err
		}
	}
	// The base and clean roots first: an environment's files that are
	// hard links of its base are counted there, and the environment
	// takes only what apt added (and the .debs they came from).
	if err := measure("root filesystems", l.Rootfs(), func(name string) bool { return !isEnvironment(name) && !strings.HasSuffix(name, ".lock") }); err != nil {
		return nil, err
	}
	if err := measure("build environments", l.Rootfs(), isEnvironment); err != nil {
		return nil, err
	}
	for _, k := range cacheKinds[2:] {
		if err := measure(k.kind, filepath.Join(cacheDir, k.dir), nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
