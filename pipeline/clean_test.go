package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/build"
)

// TestCleanWaitsForARunUsingTheTree removes a project's work trees, but
// only once the run holding one's lock lets go.
func TestCleanWaitsForARunUsingTheTree(t *testing.T) {
	cache := t.TempDir()
	for _, d := range []string{"work/app/debian-12/tree/bin", "work/app/debian-12-arm64/tree/bin", "work/other/debian-12/tree"} {
		os.MkdirAll(filepath.Join(cache, d), 0o755)
	}
	os.WriteFile(filepath.Join(cache, "work/app/debian-12/tree/bin/app"), []byte("x"), 0o755)
	busy := filepath.Join(cache, "work/app/debian-12")
	unlock, err := build.LockWork(context.Background(), busy, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Clean(context.Background(), CleanRequest{CacheDir: cache, Project: "app"})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(busy, "tree/bin/app")); err != nil {
		t.Fatal("clean removed a tree another run holds")
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"work/app/debian-12", "work/app/debian-12-arm64"} {
		if _, err := os.Stat(filepath.Join(cache, d)); !os.IsNotExist(err) {
			t.Errorf("%s is still there", d)
		}
	}
	if _, err := os.Stat(filepath.Join(cache, "work/other/debian-12/tree")); err != nil {
		t.Error("another project's tree was removed")
	}
	if _, err := Clean(context.Background(), CleanRequest{CacheDir: cache, Project: "../etc"}); err == nil {
		t.Error("a path was taken for a project name")
	}
}

// TestCleanAndGCFollowNoSymlink plants symlinks in a cache: work/<project>
// pointing at a host directory, and a work tree and a layer that are links.
// clean and cache gc remove the links at most, never what they point at.
func TestCleanAndGCFollowNoSymlink(t *testing.T) {
	host := t.TempDir()
	for _, d := range []string{"debian-12/tree", "precious/data"} {
		os.MkdirAll(filepath.Join(host, d), 0o755)
	}
	os.WriteFile(filepath.Join(host, "precious/data/file"), []byte("keep"), 0o644)
	check := func(what string) {
		t.Helper()
		for _, p := range []string{"debian-12/tree", "precious/data/file"} {
			if _, err := os.Stat(filepath.Join(host, p)); err != nil {
				t.Errorf("%s: the host directory lost %s", what, p)
			}
		}
	}

	cache := t.TempDir()
	os.MkdirAll(filepath.Join(cache, "work"), 0o755)
	os.Symlink(host, filepath.Join(cache, "work/app"))
	if _, err := Clean(context.Background(), CleanRequest{CacheDir: cache, Project: "app"}); err == nil {
		t.Error("clean of a symlinked work directory did not say so")
	}
	check("clean")

	repo := gcRepo(t)
	cache = t.TempDir()
	t.Setenv("COACH_ROOTFS_DIR", filepath.Join(cache, "rootfs"))
	for _, d := range []string{"work", "work/app", "layers", "rootfs"} {
		os.MkdirAll(filepath.Join(cache, d), 0o755)
	}
	os.Symlink(host, filepath.Join(cache, "work/gone"))                                     // a project the repository lacks
	os.Symlink(filepath.Join(host, "precious"), filepath.Join(cache, "work/app/debian-12")) // a work tree
	os.Symlink(filepath.Join(host, "precious"), filepath.Join(cache, "layers/0123456789abcdef"))
	os.Symlink(filepath.Join(host, "precious"), filepath.Join(cache, "rootfs/debian-12-0123456789abcdef"))
	if _, err := GC(context.Background(), GCRequest{Root: repo, CacheDir: cache, KeepSize: 0}); err != nil {
		t.Fatal(err)
	}
	check("cache gc")
}
