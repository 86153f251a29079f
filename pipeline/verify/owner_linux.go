//go:build linux

package verify

import (
	"fmt"
	"os"
	"syscall"
)

// chownLike gives dir the owner and mode of like.
func chownLike(dir, like string) error {
	st, err := os.Lstat(like)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("no owner information for %s", like)
	}
	if err := os.Lchown(dir, int(sys.Uid), int(sys.Gid)); err != nil {
		return err
	}
	return os.Chmod(dir, st.Mode().Perm())
}
