//go:build linux

package durable

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncTree syncs the filesystem dir is on: one syncfs instead of an fsync
// of each of a layer's thousands of files.
func syncTree(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
