package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

// packageIdentity reads a package's name and target from its file name:
// name_version-iteration+tag_arch.deb or name-version-iteration.tag.arch.rpm.
func packageIdentity(file string) (name string, t target.Target, err error) {
	base := filepath.Base(file)
	var tag, format string
	switch {
	case strings.HasSuffix(base, ".deb"):
		parts := strings.Split(strings.TrimSuffix(base, ".deb"), "_")
		if len(parts) != 3 || !strings.Contains(parts[1], "+") {
			return "", t, fmt.Errorf("%s is not named name_version-iteration+tag_arch.deb", base)
		}
		name, tag, format = parts[0], parts[1][strings.LastIndex(parts[1], "+")+1:], target.FormatDeb
	case strings.HasSuffix(base, ".rpm"):
		parts := strings.Split(strings.TrimSuffix(base, ".rpm"), ".")
		if len(parts) < 3 {
			return "", t, fmt.Errorf("%s is not named name-version-iteration.tag.arch.rpm", base)
		}
		tag, format = parts[len(parts)-2], target.FormatRPM
		nv := strings.Join(parts[:len(parts)-2], ".")
		fields := strings.Split(nv, "-")
		if len(fields) < 3 {
			return "", t, fmt.Errorf("%s is not named name-version-iteration.tag.arch.rpm", base)
		}
		name = strings.Join(fields[:len(fields)-2], "-")
	default:
		return "", t, fmt.Errorf("%s is neither a .deb nor an .rpm", base)
	}
	for _, n := range target.BuiltinNames() {
		c, _ := target.Builtin(n)
		if c.DistTag == tag && c.Format == format {
			return name, c, nil
		}
	}
	return "", t, fmt.Errorf("%s: no target has the dist tag %q; give --target", base, tag)
}

func (a *app) verifyCommand() *cobra.Command {
	var previous, tname, cacheDir, runnerName string
	cmd := &cobra.Command{
		Use:   "verify <package>...",
		Short: "Install, upgrade, remove and purge packages in a clean root of their target",
		Long: `verify installs each package into a fresh copy of a clean root filesystem of
its target (made with mmdebstrap, without any build tools), with the distro's
own tooling so that its runtime dependencies resolve from the target's
repositories, runs the project's verify commands, checks that every file is
owned by root and the links exist, upgrades from --previous if given, then
removes and purges it and checks that nothing is left. rpm packages go
through rpm --root with their scriptlets run. Every hook invocation is
recorded with its arguments.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cacheDir == "" {
				cacheDir = defaultCacheDir()
			}
			// The checks come from the project definitions, when this is
			// the repository that defines the packages.
			var projects map[string]*spec.Project
			if repo, err := pipeline.Load(a.dir); err == nil {
				projects = repo.Projects
			}
			ctx, stop := signalContext()
			defer stop()
			r, err := a.verifyRunner(runnerName, cacheDir)
			if err != nil {
				return err
			}
			if c, ok := r.(io.Closer); ok {
				defer c.Close()
			}
			var reps []*verify.Report
			var failures []error
			for _, pkgFile := range args {
				rep, err := a.verifyOne(ctx, r, pkgFile, previous, tname, cacheDir, projects)
				if err != nil {
					return err
				}
				reps = append(reps, rep)
				if !rep.OK {
					f := rep.Failed()
					failures = append(failures, fmt.Errorf("%s: step %q failed: %s", rep.Package, f.Name, f.Detail))
				}
			}
			if a.json {
				a.writeJSON(reps)
			} else {
				for _, r := range reps {
					writeVerify(a, r)
				}
			}
			if len(failures) > 0 {
				return withCode(exitVerify, errors.Join(failures...))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&previous, "previous", "", "an older package to install first and upgrade from")
	cmd.Flags().StringVarP(&tname, "target", "t", "", "the package's target (default: from its dist tag)")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "cache directory (clean root filesystems)")
	cmd.Flags().StringVar(&runnerName, "runner", "auto", "where to install: auto, sandbox (a clean root in bubblewrap) or dagger (a clean container on the engine); auto: sandbox where bubblewrap is, else dagger")
	return cmd
}

// verifyRunner picks where verify installs: a bubblewrap scratch root, or
// a container on the Dagger engine.
func (a *app) verifyRunner(name, cacheDir string) (runner.Runner, error) {
	if name == "auto" {
		name = "sandbox"
		if _, err := exec.LookPath("bwrap"); err != nil || runtime.GOOS != "linux" {
			if daggerConfigured() || runtime.GOOS != "linux" {
				name = "dagger"
			}
		}
	}
	switch name {
	case "sandbox":
		return &sandbox.Runner{}, nil
	case "dagger":
		return newDaggerRunner(a)
	}
	return nil, usageError(errors.New("--runner must be auto, sandbox or dagger"))
}

// verifyOne verifies a package; projects (which may be nil) supply the
// checks of the project named like the package.
func (a *app) verifyOne(ctx context.Context, r runner.Runner, pkgFile, previous, tname, cacheDir string, projects map[string]*spec.Project) (*verify.Report, error) {
	if _, err := os.Stat(pkgFile); err != nil {
		return nil, usageError(err)
	}
	name, t, err := packageIdentity(pkgFile)
	if err != nil && tname == "" {
		return nil, usageError(err)
	}
	if tname != "" {
		var ok bool
		if t, ok = target.Builtin(tname); !ok {
			return nil, usageError(fmt.Errorf("unknown target %q", tname))
		}
	}
	project := projects[name]
	if project == nil {
		a.log.Warn("no project definition for the package here: checking the install/remove cycle only", "package", name)
	}
	abs, _ := filepath.Abs(pkgFile)
	prev := ""
	if previous != "" {
		prev, _ = filepath.Abs(previous)
	}
	opts := verify.Options{
		Package: abs, Previous: prev, Name: name, Target: t, Arch: runtime.GOARCH, Project: project,
		Roots:   &sandbox.Rootfs{Dir: rootfsDir(cacheDir), Logger: a.log},
		WorkDir: filepath.Join(cacheDir, "verify"),
	}
	if d, ok := r.(*dagger.Runner); ok {
		// A clean container of the target on the engine: no bubblewrap or
		// mmdebstrap on the host.
		opts.NewMachine = func(ctx context.Context, t target.Target, arch string, pkgs []string) (verify.Machine, func(), error) {
			m, err := d.Machine(ctx, t, arch, pkgs)
			if err != nil {
				return nil, nil, err
			}
			return m, func() {}, nil
		}
	}
	rep, err := verify.Verify(ctx, opts)
	if ctx.Err() != nil {
		return rep, withCode(exitInterrupted, fmt.Errorf("verify %s: interrupted; its scratch root was removed", filepath.Base(pkgFile)))
	}
	return rep, err
}

func writeVerify(a *app, r *verify.Report) {
	status := "passed"
	if !r.OK {
		status = "FAILED"
	}
	fmt.Fprintf(a.stdout, "verify %s on %s: %s (%.1fs)\n", r.Package, r.Target, status, r.Seconds)
	for _, s := range r.Steps {
		mark := "ok  "
		switch {
		case s.Skipped:
			mark = "skip"
		case !s.OK:
			mark = "FAIL"
		}
		fmt.Fprintf(a.stdout, "  %s %s (%.1fs)\n", mark, s.Name, s.Seconds)
		if !s.OK && !s.Skipped {
			fmt.Fprintf(a.stdout, "       %s\n", s.Detail)
			for _, line := range strings.Split(s.Output, "\n") {
				fmt.Fprintf(a.stdout, "       | %s\n", line)
			}
		}
	}
	for _, h := range r.Hooks {
		fmt.Fprintf(a.stdout, "  hook %-9s %-10s %s\n", h.Script, h.Args, "("+h.Step+")")
	}
}
