package pkg

import (
	"os"

	"github.com/goreleaser/nfpm/v2/files"
)

// fileID identifies a file by device and inode.
type fileID struct{ dev, ino uint64 }

// hardLinks groups the plain files of contents whose sources are one file
// (hard links of each other in the tree, or one stripped copy): for each
// file after the first of its group, in contents' order, the destination
// of the first. Only plain files are linked: a config file or a document
// is always a file of its own.
func hardLinks(contents files.Contents) map[string]string {
	first := map[fileID]string{}
	links := map[string]string{}
	for _, c := range contents {
		if c.Type != files.TypeFile && c.Type != "" {
			continue
		}
		fi, err := os.Lstat(c.Source)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		id, _ := inode(fi)
		if f, ok := first[id]; ok {
			links[c.Destination] = f
			continue
		}
		first[id] = c.Destination
	}
	return links
}
