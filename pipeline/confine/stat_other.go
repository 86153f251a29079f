//go:build !unix

package confine

import "io/fs"

func statOf(rel string, fi fs.FileInfo) FileStat {
	return FileStat{Path: rel, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
}
