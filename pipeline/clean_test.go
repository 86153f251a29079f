package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/coach-build/coach/pipeline/cache"
)

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

	cacheDir := t.TempDir()
	os.MkdirAll(filepath.Join(cacheDir, "work"), 0o755)
	os.Symlink(host, filepath.Join(cacheDir, "work/app"))
	if _, err := cache.New(cacheDir).Clean(context.Background(), cache.CleanRequest{Project: "app"}); err == nil {
		t.Error("clean of a symlinked work directory did not say so")
	}
	check("clean")

	repo := gcRepo(t)
	cacheDir = t.TempDir()
	t.Setenv("COACH_ROOTFS_DIR", filepath.Join(cacheDir, "rootfs"))
	for _, d := range []string{"work", "work/app", "layers", "rootfs"} {
		os.MkdirAll(filepath.Join(cacheDir, d), 0o755)
	}
	os.Symlink(host, filepath.Join(cacheDir, "work/gone"))                                     // a project the repository lacks
	os.Symlink(filepath.Join(host, "precious"), filepath.Join(cacheDir, "work/app/debian-12")) // a work tree
	os.Symlink(filepath.Join(host, "precious"), filepath.Join(cacheDir, "layers/0123456789abcdef"))
	os.Symlink(filepath.Join(host, "precious"), filepath.Join(cacheDir, "rootfs/debian-12-0123456789abcdef"))
	if _, err := GC(context.Background(), GCRequest{Root: repo, CacheDir: cacheDir, KeepSize: 0}); err != nil {
		t.Fatal(err)
	}
	check("cache gc")
}
