//go:build !unix

package archive

import (
	"os"
	"time"
)

func setFileTimes(f *os.File, mtime time.Time) error {
	return os.Chtimes(f.Name(), mtime, mtime)
}

// setLinkTimes: a symlink's own times cannot be set here.
func setLinkTimes(dir *os.File, name string, mtime time.Time) {}
