// Command make makes the root filesystems most of the test suite uses, in
// testroots.Dir(): the debian-12 build roots of the repository's hello
// project (for the host, and for the other architecture when this
// machine can emulate it) and verify's clean
// roots (debian-12, debian-12 with rpm, debian-13). .ci/run runs it
// before go test:
//
//	go run ./pipeline/internal/testroots/make
//
// A root that exists is used as it is; the output says how long each took.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
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

func run(ctx context.Context) error {
	root, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	roots := &sandbox.Rootfs{Dir: testroots.Dir()}
	timed := func(what string, f func() (string, error)) error {
		start := time.Now()
		dir, err := f()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		fmt.Printf("%-40s %6.1fs  %s\n", what, time.Since(start).Seconds(), dir)
		return nil
	}
	arches := []string{target.HostArch()}
	if f := target.Foreign(); f != target.HostArch() && binfmt.CanRun(binfmt.Path(), f) == nil {
		arches = append(arches, f)
	}
	for _, arch := range arches {
		prep, err := project.Prepare(root, "hello", project.Options{Targets: []string{"debian-12"}, Arch: arch})
		if err != nil {
			return err
		}
		for _, t := range prep.Plan.TargetList() {
			if err := timed("build root "+target.Label(t.Name, arch), func() (string, error) {
				return roots.Ensure(ctx, t, arch, build.Packages(prep.Plan, t))
			}); err != nil {
				return err
			}
		}
	}
	for _, c := range []struct {
		name  string
		extra []string
	}{{"debian-12", nil}, {"debian-12", []string{"rpm"}}, {"debian-13", nil}} {
		t, _ := target.Builtin(c.name)
		what := "clean root " + c.name
		if len(c.extra) > 0 {
			what += " +" + c.extra[0]
		}
		if err := timed(what, func() (string, error) { return roots.Clean(ctx, t, target.HostArch(), c.extra...) }); err != nil {
			return err
		}
	}
	return nil
}
