package pkg

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// replaceDir puts the directory src in place of dst in one step: an
// atomic exchange when dst exists (its old content ends up at src, which the
// caller removes), a rename when it does not.
func replaceDir(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		return os.Rename(src, dst)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return replaceDirPortable(src, dst)
	}
	return err
}
