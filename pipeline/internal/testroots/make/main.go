// Command make makes the root filesystems most of the test suite uses, in
// testroots.Dir(): the build roots of the repository's curl (Debian 12
// and 13) and hello (Debian 12, on this host and, when this machine can
// emulate it, on the other architecture) and verify's clean roots
// (Debian 12 for both architectures, Debian 12 with rpm, Debian 13).
// .ci/run runs it before go test:
//
//	go run ./pipeline/internal/testroots/make
//
// A root that exists is used as it is; the output says how long each took.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coach-build/coach/pipeline/binfmt"
	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/target"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "make test roots:", err)
		os.Exit(1)
	}
}

// parallel is how many roots are made at once: mmdebstrap waits on the
// mirror and on dpkg as much as on the CPU.
const parallel = 3

type task struct {
	what string
	make func() (string, error)
}

func run(ctx context.Context) error {
	root, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	roots := &sandbox.Rootfs{Dir: testroots.Dir()}
	var tasks []task
	// The emulated roots first: they take longest.
	foreign := target.Foreign()
	emulated := foreign != target.HostArch() && binfmt.CanRun(binfmt.Path(), foreign) == nil
	arches := []string{target.HostArch()}
	if emulated {
		arches = []string{foreign, target.HostArch()}
	}
	for _, arch := range arches {
		// The build roots the tests build in: hello's for Debian 12 on
		// each architecture, curl's for Debian 12 and 13 (the
		// real-software tests) on this host.
		builds := []struct{ project, target string }{{"hello", "debian-12"}}
		if arch == target.HostArch() {
			builds = append(builds, struct{ project, target string }{"curl", "debian-12"}, struct{ project, target string }{"curl", "debian-13"})
		}
		for _, b := range builds {
			prep, err := project.Prepare(root, b.project, project.Options{Targets: []string{b.target}, Arch: arch})
			if err != nil {
				return err
			}
			t := prep.Plan.TargetList()[0]
			// The base root, each component's environment over it,
			// and the environment of them all the health check
			// resolves system libraries in; the base is made once
			// (under its lock) for all of them.
			sets := map[string][]string{"": nil, strings.Join(build.Packages(prep.Plan, t), ","): build.Packages(prep.Plan, t)}
			for _, n := range prep.Plan.Nodes {
				pkgs := build.ComponentPackages(n, t)
				sets[strings.Join(pkgs, ",")] = pkgs
			}
			for name, pkgs := range sets {
				tasks = append(tasks, task{"build environment " + target.Label(t.Name, arch) + " (" + b.project + ") [" + name + "]", func() (string, error) {
					return roots.Ensure(ctx, t, arch, pkgs)
				}})
			}
		}
		// Verify's clean roots: Debian 12 on each architecture, and on
		// this host Debian 12 with rpm (for rpms) and Debian 13.
		d12, _ := target.Builtin("debian-12")
		tasks = append(tasks, task{"clean root " + target.Label("debian-12", arch), func() (string, error) { return roots.Clean(ctx, d12, arch) }})
		if arch == target.HostArch() {
			d13, _ := target.Builtin("debian-13")
			tasks = append(tasks,
				task{"clean root debian-12 +rpm", func() (string, error) { return roots.Clean(ctx, d12, arch, "rpm") }},
				task{"clean root debian-13", func() (string, error) { return roots.Clean(ctx, d13, arch) }})
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, parallel)
	)
	// The semaphore is taken in the tasks' order, so that the longest
	// (the emulated roots, first in the list) start first.
	for _, t := range tasks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			dir, err := t.make()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.what, err))
				return
			}
			fmt.Printf("%-40s %6.1fs  %s\n", t.what, time.Since(start).Seconds(), dir)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
