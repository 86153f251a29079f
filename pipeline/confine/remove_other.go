//go:build !linux

package confine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// RemoveAll removes rel beneath base and everything in it through an
// os.Root of base, so that nothing outside base is reached. It checks ctx
// before it starts.
func RemoveAll(ctx context.Context, base, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	root, err := os.OpenRoot(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	return root.RemoveAll(filepath.Clean(rel))
}
