package confine

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRegularStats lists the regular files of a tree with their stats,
// and neither lists nor walks through a symlink (to a file or to a
// directory outside the tree).
func TestRegularStats(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	os.MkdirAll(filepath.Join(dir, "a/b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a/b/f"), []byte("hello"), 0o644)
	os.WriteFile(filepath.Join(dir, "top"), nil, 0o644)
	os.Symlink(outside, filepath.Join(dir, "a/out"))
	os.Symlink("top", filepath.Join(dir, "link"))
	got, err := RegularStats(dir)
	if err != nil {
		t.Fatal(err)
	}
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, []string{"a/b/f", "top"}) {
		t.Fatalf("listed %q", names)
	}
	fi, _ := os.Lstat(filepath.Join(dir, "a/b/f"))
	if want := statOf("a/b/f", fi); got["a/b/f"] != want {
		t.Errorf("a/b/f: %+v, want %+v", got["a/b/f"], want)
	}
}
