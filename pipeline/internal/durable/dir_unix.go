//go:build unix

package durable

import "os"

// syncDir fsyncs a directory, so that the entries made in it last.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
