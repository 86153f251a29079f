package confine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveAllFollowsNoSymlink(t *testing.T) {
	base, outside := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(outside, "keep/deep"), 0o755)
	os.WriteFile(filepath.Join(outside, "keep/deep/file"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(base, "work/tree/sub"), 0o755)
	os.WriteFile(filepath.Join(base, "work/tree/sub/f"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(outside, "keep"), filepath.Join(base, "work/tree/sub/link"))
	os.Symlink(outside, filepath.Join(base, "work/planted"))
	os.Chmod(filepath.Join(base, "work/tree/sub"), 0o500) // read-only: removed all the same

	ctx := context.Background()
	// A symlink among the components is refused, its target untouched.
	if err := RemoveAll(ctx, base, "work/planted/keep"); err == nil {
		t.Error("removing through a symlinked component succeeded")
	}
	// A symlink at the path is removed as a link.
	if err := RemoveAll(ctx, base, "work/planted"); err != nil {
		t.Fatal(err)
	}
	// A tree with a link inside loses the link, not what it points at.
	if err := RemoveAll(ctx, base, "work/tree"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"work/planted", "work/tree"} {
		if _, err := os.Lstat(filepath.Join(base, p)); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "keep/deep/file")); err != nil {
		t.Errorf("the symlinks' target lost a file: %v", err)
	}
	// Missing: no error.
	if err := RemoveAll(ctx, base, "work/none"); err != nil {
		t.Errorf("a missing path: %v", err)
	}
}

func TestRemoveAllStopsWithContext(t *testing.T) {
	base := t.TempDir()
	for i := range 50 {
		os.MkdirAll(filepath.Join(base, "big", string(rune('a'+i%26)), string(rune('a'+i/26))), 0o755)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := RemoveAll(ctx, base, "big"); err != context.Canceled {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(base, "big")); err != nil {
		t.Error("a cancelled removal removed the tree")
	}
}
