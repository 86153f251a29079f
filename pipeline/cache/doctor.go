package cache

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/coach-build/coach/pipeline/doctor"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
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

func init() {
	doctor.Register(doctor.Check{Name: "build environments", Group: doctor.Cache, Run: func(_ context.Context, env doctor.Env) []doctor.Result {
		return []doctor.Result{doctor.Pass("", Environments(New(cmp.Or(env.CacheDir, DefaultDir())).Rootfs()))}
	}})
}

// Environments says which build root filesystems and build environments
// the roots' directory holds, and how long each took to make (verify's
// clean roots are left out).
func Environments(dir string) string {
	var roots, envs []string
	for _, e := range readDir(dir) {
		if !e.IsDir() || strings.Contains(e.Name(), ".partial-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), sandbox.InfoFile))
		var info sandbox.RootfsInfo
		if err != nil || json.Unmarshal(data, &info) != nil {
			continue
		}
		what := fmt.Sprintf("%s %s (%.0f s)", info.Target, info.Arch, info.Seconds)
		switch {
		case sandbox.IsEnvironment(e.Name()):
			envs = append(envs, fmt.Sprintf("%s %s + %s (%.1f s)", info.Target, info.Arch, strings.Join(info.Packages, " "), info.Seconds))
		case strings.Contains(e.Name(), "-clean-"):
		default:
			roots = append(roots, what)
		}
	}
	if len(roots)+len(envs) == 0 {
		return "no root filesystem or build environment in " + dir + " yet: the first build makes them"
	}
	s := fmt.Sprintf("%d root filesystems in %s: %s", len(roots), dir, strings.Join(roots, ", "))
	if len(envs) > 0 {
		s += fmt.Sprintf("; %d build environments over them: %s", len(envs), strings.Join(envs, ", "))
	}
	return s
}
