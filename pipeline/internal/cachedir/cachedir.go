// Package cachedir says where coach's cache is by default, for the
// packages that keep things there (sources, libraries, layers).
package cachedir

import (
	"os"
	"path/filepath"
)

// Default is $COACH_CACHE_DIR, or coach/ under the user cache directory.
func Default() string {
	if d := os.Getenv("COACH_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "coach")
	}
	return filepath.Join(os.TempDir(), "coach-cache")
}
