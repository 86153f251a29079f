package cache

import (
	"io/fs"
	"os"
	"path/filepath"
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
}

// Usage measures the cache by kind: sources, dependency layers, root
// filesystems (in Rootfs), work trees, leftover verify roots and verify
// results. Sizes are allocated bytes, each inode counted once (a layer
// hard-linked into a tree is not counted twice); symlinks are not
// followed.
func (l Layout) Usage() ([]Use, error) {
	cacheDir := l.Dir
	seen := map[[2]uint64]bool{}
	var out []Use
	measure := func(kind, dir string) error {
		u := Use{Kind: kind, Path: dir}
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		u.Entries = len(entries)
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
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
		})
		out = append(out, u)
		return err
	}
	for _, k := range cacheKinds[:2] {
		if err := measure(k.kind, filepath.Join(cacheDir, k.dir)); err != nil {
			return nil, err
		}
	}
	if err := measure("root filesystems", l.Rootfs()); err != nil {
		return nil, err
	}
	for _, k := range cacheKinds[2:] {
		if err := measure(k.kind, filepath.Join(cacheDir, k.dir)); err != nil {
			return nil, err
		}
	}
	return out, nil
}
