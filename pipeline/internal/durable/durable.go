// Package durable publishes files and directories so that they survive a
// crash of the machine, not only of coach: the data is on disk before the
// rename that makes it visible, and the rename is on disk before the
// function returns.
//
// A file is written under a temporary name beside its final one, fsynced,
// renamed over it, and its directory fsynced. A directory (a layer, a
// release) is synced as a whole first (syncfs on Linux: one call for the
// filesystem, not one per file), renamed into place, and its parent
// fsynced. After a power loss the final name holds the old content or the
// new, whole; never a new name with empty or partial files. A failure at
// any point leaves the old state as it was.
package durable

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Ops are the file system operations the functions use; tests replace
// them to fail at chosen points.
type Ops interface {
	Write(f *os.File, data []byte) error
	Sync(f *os.File) error
	SyncTree(dir string) error
	Rename(from, to string) error
	SyncDir(dir string) error
}

// ops is the seam: the real operations, or a test's.
var ops Ops = realOps{}

// SetOps replaces the operations (for tests) and returns a function that
// puts the real ones back.
func SetOps(o Ops) (restore func()) {
	old := ops
	ops = o
	return func() { ops = old }
}

type realOps struct{}

func (realOps) Write(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}
func (realOps) Sync(f *os.File) error        { return f.Sync() }
func (realOps) SyncTree(dir string) error    { return syncTree(dir) }
func (realOps) Rename(from, to string) error { return os.Rename(from, to) }
func (realOps) SyncDir(dir string) error     { return syncDir(dir) }

// WriteFile replaces path with data, durably: either the old file or the
// new one is there, whole, whatever happens.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, perm, func(f *os.File) error { return ops.Write(f, data) })
}

// WriteFrom is WriteFile with the content read from r, for files too big
// to hold in memory (a package copied into a repository's pool).
func WriteFrom(path string, r io.Reader, perm fs.FileMode) error {
	return write(path, perm, func(f *os.File) error {
		_, err := io.Copy(f, r)
		return err
	})
}

func write(path string, perm fs.FileMode, fill func(*os.File) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // after a successful rename, nothing is there
	if err := fill(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := ops.Sync(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := ops.Rename(name, path); err != nil {
		return err
	}
	return ops.SyncDir(dir)
}

// Publish renames the complete directory tmp to final (which must not
// exist), durably: tmp's files are synced first, final's parent after.
func Publish(tmp, final string) error {
	if err := ops.SyncTree(tmp); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := ops.Rename(tmp, final); err != nil {
		return err
	}
	return ops.SyncDir(filepath.Dir(final))
}

// Sync makes a directory's published content durable: its files (the
// whole filesystem's pending data, on Linux) and its entry in the parent.
// For a rename done by other means (an exchange of two directories).
func Sync(dir string) error {
	if err := ops.SyncTree(dir); err != nil {
		return err
	}
	return ops.SyncDir(filepath.Dir(dir))
}

// SyncFile syncs an open file's data and then its directory, for a file
// published by linking it into place.
func SyncFile(f *os.File, final string) error {
	if err := ops.Sync(f); err != nil {
		return err
	}
	return ops.SyncDir(filepath.Dir(final))
}

// SyncDir syncs a directory's entries (after a link or a rename into it).
func SyncDir(dir string) error { return ops.SyncDir(dir) }
