//go:build unix

package cache

import (
	"fmt"
	"io/fs"
	"syscall"
)

// fileID is a file's device and inode, and the bytes allocated to it.
func fileID(fi fs.FileInfo) (id [2]uint64, allocated int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return id, 0, false
	}
	return [2]uint64{uint64(st.Dev), uint64(st.Ino)}, int64(st.Blocks) * 512, true
}

// freeSpace says how much room the file system of dir has left.
func freeSpace(dir string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return ""
	}
	return fmt.Sprintf(", %.1f GiB free", float64(st.Bavail)*float64(st.Bsize)/(1<<30))
}
