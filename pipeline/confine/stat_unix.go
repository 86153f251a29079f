//go:build unix

package confine

import (
	"io/fs"
	"syscall"
)

func statOf(rel string, fi fs.FileInfo) FileStat {
	st := FileStat{Path: rel, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.Inode = uint64(sys.Ino)
	}
	return st
}
