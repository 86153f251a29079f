//go:build linux

package confine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRemoveAllCrossesNoMountPoint: a directory or a file mounted inside
// the tree (here bind mounts of another directory on the same file
// system, which a device-number check would miss) stops the removal with
// ErrMountPoint, and nothing under the mount is removed.
func TestRemoveAllCrossesNoMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	base, outside := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(outside, "dev"), 0o755)
	os.WriteFile(filepath.Join(outside, "dev/disk"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(outside, "file"), []byte("x"), 0o644)
	for _, d := range []string{"dir/root/dev", "file/root/etc"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	os.WriteFile(filepath.Join(base, "file/root/etc/conf"), nil, 0o644)
	mount := func(src, dst string) {
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			t.Skipf("bind mount: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
	}
	mount(filepath.Join(outside, "dev"), filepath.Join(base, "dir/root/dev"))
	mount(filepath.Join(outside, "file"), filepath.Join(base, "file/root/etc/conf"))

	for _, rel := range []string{"dir", "file"} {
		err := RemoveAll(context.Background(), base, rel)
		if !errors.Is(err, ErrMountPoint) {
			t.Errorf("RemoveAll(%s) = %v, want ErrMountPoint", rel, err)
		}
	}
	for _, p := range []string{"dev/disk", "file"} {
		if _, err := os.Stat(filepath.Join(outside, p)); err != nil {
			t.Errorf("the removal reached into a mount: %v", err)
		}
	}
}
