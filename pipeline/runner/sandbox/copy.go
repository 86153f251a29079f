package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type entryState struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
	link  string
}

// snapshot records a tree's entries before a build, to find what it changed.
type snapshot map[string]entryState

func takeSnapshot(dir string) (snapshot, error) {
	s := snapshot{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := entryState{mode: info.Mode(), size: info.Size(), mtime: info.ModTime()}
		if d.Type()&fs.ModeSymlink != 0 {
			st.link, _ = os.Readlink(p)
		}
		s[rel] = st
		return nil
	})
	return s, err
}

// diff moves what the build added or changed in dir into out. Deleting a
// dependency's file is an error, as with a whiteout in overlay mode; a
// changed file is kept, and the merge reports it as a conflict.
func (s snapshot) diff(dir, out string) error {
	seen := map[string]bool{}
	var moves []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seen[rel] = true
		info, err := d.Info()
		if err != nil {
			return err
		}
		old, existed := s[rel]
		if d.IsDir() {
			if !existed {
				return os.MkdirAll(filepath.Join(out, rel), info.Mode().Perm()|0o700)
			}
			return nil
		}
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		if !existed || old.mode != info.Mode() || old.size != info.Size() || !old.mtime.Equal(info.ModTime()) || old.link != link {
			moves = append(moves, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, rel := range moves {
		target := filepath.Join(out, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(dir, rel), target); err != nil {
			return err
		}
	}
	var deleted []string
	for rel := range s {
		if !seen[rel] && rel != "." {
			deleted = append(deleted, rel)
		}
	}
	if len(deleted) > 0 {
		slices.Sort(deleted)
		return fmt.Errorf("the build deleted files of its dependencies, which a layer cannot do: %s", strings.Join(deleted, ", "))
	}
	return nil
}
