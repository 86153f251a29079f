package pkg

import (
	"errors"
	"io/fs"
	"os"
)

// replaceDirPortable moves dst aside, renames src into its place and puts
// dst's old content at src for the caller to remove. Between the two
// renames dst does not exist.
func replaceDirPortable(src, dst string) error {
	old := src + ".old"
	err := os.Rename(dst, old)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		if existed {
			os.Rename(old, dst)
		}
		return err
	}
	if existed {
		return os.Rename(old, src)
	}
	return nil
}
