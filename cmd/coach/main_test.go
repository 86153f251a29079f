package main

import (
	"github.com/coach-build/coach/pipeline/remote/remotetest"

	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"coach": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
		// expect-exit N args... runs coach and fails unless it exits N.
		"expect-exit": func() {
			want, err := strconv.Atoi(os.Args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "usage: expect-exit <code> <coach args...>")
				os.Exit(2)
			}
			if got := run(os.Args[2:], os.Stdout, os.Stderr); got != want {
				fmt.Fprintf(os.Stderr, "coach exited %d, want %d\n", got, want)
				os.Exit(1)
			}
			os.Exit(0)
		},
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Root filesystems are slow to make: share them between scripts
			// and runs, as the sandbox tests do.
			env.Setenv("COACH_ROOTFS_DIR", testRootfsDir())
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "sandbox":
				for _, tool := range []string{"bwrap", "mmdebstrap"} {
					if _, err := exec.LookPath(tool); err != nil {
						return false, nil
					}
				}
				return true, nil
			case "registry":
				// distribution's registry, which .ci/run installs.
				return remotetest.Installed(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// registry starts a real OCI registry on 127.0.0.1 for the
			// rest of the script and sets $REGISTRY to its host:port.
			"registry": func(ts *testscript.TestScript, neg bool, args []string) {
				if !remotetest.Installed() {
					ts.Fatalf("distribution's registry is not installed (%s): guard the script with [registry]", remotetest.Binary())
				}
				r, err := remotetest.Run(ts.MkAbs("registry"))
				ts.Check(err)
				ts.Defer(r.Stop)
				ts.Setenv("REGISTRY", r.Host)
			},
			// waitfor FILE REGEXP TIMEOUT waits until FILE matches REGEXP.
			"waitfor": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 3 {
					ts.Fatalf("usage: waitfor file regexp timeout")
				}
				re := regexp.MustCompile(args[1])
				limit, err := time.ParseDuration(args[2])
				ts.Check(err)
				deadline := time.Now().Add(limit)
				for time.Now().Before(deadline) {
					if b, err := os.ReadFile(ts.MkAbs(args[0])); err == nil && re.Match(b) {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				ts.Fatalf("%s did not match %q within %s", args[0], args[1], limit)
			},
			// waitgone waits until no process's command line matches a
			// pattern (pgrep -f): a sandbox whose coach was killed dies
			// with it, but the kernel tears its pid namespace down
			// asynchronously.
			"waitgone": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: waitgone pattern timeout")
				}
				limit, err := time.ParseDuration(args[1])
				ts.Check(err)
				if left := waitGone(args[0], limit); left != "" {
					ts.Fatalf("processes matching %q still run after %s: %s", args[0], limit, left)
				}
			},
		},
	})
}

// waitGone waits at most limit until no process's command line matches
// pattern (pgrep -f), and returns those still running then ("" when none
// is).
func waitGone(pattern string, limit time.Duration) string {
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		out, err := exec.Command("pgrep", "-f", "--", pattern).Output()
		if err != nil && len(out) == 0 {
			return "" // pgrep exits 1 when nothing matches
		}
		if time.Now().After(deadline) {
			return strings.TrimSpace(string(out))
		}
	}
}
