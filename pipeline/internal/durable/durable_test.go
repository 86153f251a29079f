package durable

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// failing fails the operation named fail, and records every one.
type failing struct {
	realOps
	fail string
	seen []string
}

var errInjected = errors.New("injected failure")

func (f *failing) Write(file *os.File, data []byte) error {
	f.seen = append(f.seen, "write")
	if f.fail == "write" {
		// A short write: half the data, then the failure.
		file.Write(data[:len(data)/2])
		return errInjected
	}
	return f.realOps.Write(file, data)
}

func (f *failing) Sync(file *os.File) error {
	f.seen = append(f.seen, "sync")
	if f.fail == "sync" {
		return errInjected
	}
	return f.realOps.Sync(file)
}

func (f *failing) SyncTree(dir string) error {
	f.seen = append(f.seen, "synctree")
	if f.fail == "synctree" {
		return errInjected
	}
	return f.realOps.SyncTree(dir)
}

func (f *failing) Rename(from, to string) error {
	f.seen = append(f.seen, "rename")
	if f.fail == "rename" {
		return errInjected
	}
	return f.realOps.Rename(from, to)
}

func (f *failing) SyncDir(dir string) error {
	f.seen = append(f.seen, "syncdir")
	if f.fail == "syncdir" {
		return errInjected
	}
	return f.realOps.SyncDir(dir)
}

// TestWriteFileKeepsTheOldFileOnFailure: a write or a sync that fails
// before the rename leaves the old content whole and no temporary file;
// a success syncs the data before the rename and the directory after.
func TestWriteFileKeepsTheOldFileOnFailure(t *testing.T) {
	for _, fail := range []string{"write", "sync", "rename"} {
		t.Run(fail, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.lock")
			os.WriteFile(p, []byte("old lock\n"), 0o644)
			f := &failing{fail: fail}
			defer SetOps(f)()
			if err := WriteFile(p, []byte("the new lock file, longer\n"), 0o644); !errors.Is(err, errInjected) {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			if b, _ := os.ReadFile(p); string(b) != "old lock\n" {
				t.Errorf("after a failed %s the file holds %q", fail, b)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("a failed %s left %d entries", fail, len(entries))
			}
		})
	}
	dir := t.TempDir()
	f := &failing{}
	defer SetOps(f)()
	if err := WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := f.seen; len(got) != 4 || got[0] != "write" || got[1] != "sync" || got[2] != "rename" || got[3] != "syncdir" {
		t.Errorf("operations %v, want write, sync, rename, syncdir", got)
	}
}

// TestPublishKeepsNothingHalfDone: a directory whose sync or rename fails
// is not published; a published one was synced before its rename.
func TestPublishKeepsNothingHalfDone(t *testing.T) {
	for _, fail := range []string{"synctree", "rename"} {
		dir := t.TempDir()
		tmp, final := filepath.Join(dir, "tmp"), filepath.Join(dir, "final")
		os.Mkdir(tmp, 0o755)
		os.WriteFile(filepath.Join(tmp, "f"), []byte("x"), 0o644)
		restore := SetOps(&failing{fail: fail})
		err := Publish(tmp, final)
		restore()
		if !errors.Is(err, errInjected) {
			t.Fatalf("%s: err = %v", fail, err)
		}
		if _, err := os.Stat(final); err == nil {
			t.Errorf("a failed %s published the directory", fail)
		}
	}
	dir := t.TempDir()
	tmp, final := filepath.Join(dir, "tmp"), filepath.Join(dir, "final")
	os.Mkdir(tmp, 0o755)
	f := &failing{}
	defer SetOps(f)()
	if err := Publish(tmp, final); err != nil {
		t.Fatal(err)
	}
	if got := f.seen; len(got) != 3 || got[0] != "synctree" || got[1] != "rename" || got[2] != "syncdir" {
		t.Errorf("operations %v, want synctree, rename, syncdir", got)
	}
}
