//go:build unix

package confine

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

func linkat(fromDir *os.File, from string, toDir *os.File, to string) error {
	return os.NewSyscallError("linkat", unix.Linkat(int(fromDir.Fd()), from, int(toDir.Fd()), to, 0))
}

// CannotLink reports whether Link failed only because the two trees cannot
// share a file (different filesystems), so a copy will do.
func CannotLink(err error) bool { return errors.Is(err, unix.EXDEV) }
