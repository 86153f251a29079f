package cache

import (
	"context"
	"os"

	"github.com/coach-build/coach/pipeline/doctor"
)

func init() {
	doctor.Register(doctor.Check{Name: "cache", Group: doctor.Cache, Run: func(_ context.Context, env doctor.Env) []doctor.Result {
		dir := env.CacheDir
		if dir == "" {
			dir = DefaultDir()
		}
		return []doctor.Result{doctor.Of("", writable(dir), dir+" is writable"+freeSpace(dir), "choose another --cache-dir or COACH_CACHE_DIR")}
	}})
}

func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".doctor-")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}
