//go:build unix

package pkg

import (
	"io/fs"
	"syscall"
)

// inode is a file's identity, and whether it has other names (hard links).
func inode(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, st.Nlink > 1
}
