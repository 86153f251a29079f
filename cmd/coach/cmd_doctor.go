package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/target"
)

type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

type doctorJSON struct {
	Runners map[string]bool `json:"runners"`
	Checks  []check         `json:"checks"`
}

func (a *app) doctorCommand() *cobra.Command {
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Say which runners are usable here, and if one is not, why and how to fix it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cacheDir == "" {
				cacheDir = defaultCacheDir()
			}
			var checks []check
			add := func(name string, err error, ok, fix string) bool {
				c := check{Name: name, OK: err == nil, Detail: ok}
				if err != nil {
					c.Detail, c.Fix = err.Error(), fix
				}
				checks = append(checks, c)
				return err == nil
			}
			// Sandbox.
			sb := &sandbox.Runner{Rootfs: &sandbox.Rootfs{Dir: rootfsDir(cacheDir)}}
			mode, err := sb.Check()
			sandboxOK := add("sandbox: bubblewrap", err, "bwrap runs with every namespace unshared", "apt-get install bubblewrap; as a user, enable unprivileged user namespaces")
			if sandboxOK {
				detail := "dependency layers are overlayfs lower dirs"
				if mode == sandbox.Copy {
					detail = "overlayfs cannot be mounted here; dependency layers are copied (slower, same result)"
				}
				add("sandbox: layers", nil, detail, "")
			}
			_, err = exec.LookPath("mmdebstrap")
			sandboxOK = add("sandbox: mmdebstrap", err, "makes Debian-family root filesystems", "apt-get install mmdebstrap") && sandboxOK
			for _, name := range target.BuiltinNames() {
				t, _ := target.Builtin(name)
				if t.Bootstrap.Tool == "" {
					add("sandbox: "+name, errors.New("no bootstrap recipe: rpm distributions cannot be made without a registry"), "", "build "+name+" with --runner dagger")
					continue
				}
				add("sandbox: "+name+" mirror", reachable(t.Bootstrap.Mirror+"/dists/"+t.Bootstrap.Suite+"/Release"), t.Bootstrap.Mirror+" serves "+t.Bootstrap.Suite, "make the mirror reachable, or set bootstrap.mirror in a custom target")
			}
			// Dagger.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			daggerOK := false
			if r, err := dagger.Connect(ctx, nil); err != nil {
				add("dagger: engine", err, "", "start an engine and set _EXPERIMENTAL_DAGGER_RUNNER_HOST, or run coach under `dagger run`")
			} else {
				r.Close()
				daggerOK = add("dagger: engine", nil, "connected", "")
			}
			// Cache and host tools for the later stages.
			add("cache", writable(cacheDir), cacheDir+" is writable"+freeSpace(cacheDir), "choose another --cache-dir or COACH_CACHE_DIR")
			for _, tool := range []struct{ bin, pkg, why string }{
				{"dpkg-deb", "dpkg", "inspecting deb packages"},
				{"rpm", "rpm", "verifying rpm packages"},
				{"lintian", "lintian", "linting deb packages"},
			} {
				_, err := exec.LookPath(tool.bin)
				add("tool: "+tool.bin, err, "for "+tool.why, "apt-get install "+tool.pkg)
			}
			out := doctorJSON{Runners: map[string]bool{"sandbox": sandboxOK, "dagger": daggerOK}, Checks: checks}
			if a.json {
				a.writeJSON(out)
			} else {
				for _, c := range checks {
					mark := "ok  "
					if !c.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(a.stdout, "%s %-32s %s\n", mark, c.Name, c.Detail)
					if c.Fix != "" {
						fmt.Fprintf(a.stdout, "     %-32s fix: %s\n", "", c.Fix)
					}
				}
				fmt.Fprintf(a.stdout, "runners: sandbox %s, dagger %s\n", usable(sandboxOK), usable(daggerOK))
			}
			if !sandboxOK && !daggerOK {
				return errors.New("no runner is usable here")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "cache directory to check")
	return cmd
}

func usable(ok bool) string {
	if ok {
		return "usable"
	}
	return "NOT usable"
}

func reachable(url string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Head(url)
	if err != nil {
		return fmt.Errorf("%s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
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

func freeSpace(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return ""
	}
	return fmt.Sprintf(", %.1f GiB free", float64(st.Bavail)*float64(st.Bsize)/(1<<30))
}
