package pipeline

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runners"
	"github.com/coach-build/coach/pipeline/target"
)

// ShellRequest opens a shell in the build environment of one component.
type ShellRequest struct {
	Root, Project string
	// Target is the target whose environment it is; it may be empty when
	// the project has one target. Arch is the architecture (the
	// machine's own when empty).
	Target, Arch string
	// Component is the component whose build environment it is; empty
	// means the project's last software (the one its package is for).
	Component string
	// Argv is the command to run; empty means an interactive shell.
	Argv []string
	// Stdin, Stdout and Stderr are the shell's (os.Stdin and the like
	// when nil).
	Stdin          *os.File
	Stdout, Stderr io.Writer
	Locked         bool
	Overrides      map[string]string
	// Runner, RunnerName, CacheDir, Mirrors, Offline, Jobs and MakeJobs
	// are as in BuildRequest: the dependencies are built (or come from
	// the cache) as coach build would build them.
	Runner         runner.Runner
	RunnerName     string
	CacheDir       string
	Mirrors        []string
	Offline        bool
	Jobs, MakeJobs int
	Log            *slog.Logger
	Events         event.Sink
}

// Shell opens a shell in a component's build environment, as its first
// step would see it: its dependencies' layers at the install dir, its
// source unpacked and patched at the working directory, the environment
// its steps get (CPPFLAGS, LDFLAGS, PATH, PKG_CONFIG_PATH ...). What the
// shell changes is thrown away. A shell that exits with a status other
// than 0 returns a *runner.ShellExitError with it.
func Shell(ctx context.Context, req ShellRequest) error {
	s, err := open(ctx, req.CacheDir, req.Log, req.Events)
	if err != nil {
		return err
	}
	defer s.close()
	opts := project.Options{Locked: req.Locked, Overrides: req.Overrides, Arch: req.Arch}
	if req.Target != "" {
		opts.Targets = []string{req.Target}
	}
	prep, err := project.Prepare(req.Root, req.Project, opts)
	if err != nil {
		return err
	}
	t, err := prep.OnlyTarget()
	if err != nil {
		return err
	}
	component, err := prep.Component(req.Component)
	if err != nil {
		return err
	}
	f, err := s.fetcher(req.Root, req.Mirrors, req.Offline)
	if err != nil {
		return err
	}
	if (req.RunnerName == "" || req.RunnerName == runners.Auto) && len(req.Argv) == 0 && runtime.GOOS == "linux" {
		// An interactive shell needs the sandbox: the engine attaches
		// terminals only to the dagger CLI's own sessions.
		req.RunnerName = runners.Sandbox
	}
	r, err := s.runner(req.Runner, runners.New, req.RunnerName, false)
	if err != nil {
		return err
	}
	arch := prep.Plan.Arch
	if err := runners.CanRun(ctx, r, []string{arch}); err != nil {
		return err
	}
	workDir := s.cache.Work(prep.Project.Name, target.Label(t.Name, arch)+"-shell")
	if err := s.lockWork(ctx, workDir); err != nil {
		return err
	}
	jobs, makeJobs := build.SplitJobs(req.Jobs, req.MakeJobs, runtime.NumCPU())
	b := &build.Builder{Runner: r, Fetcher: f, Layers: s.cache.LayerCache(), WorkDir: workDir, Jobs: jobs, MakeJobs: makeJobs, Log: s.log, Events: s.sink}
	sh := runner.Shell{Argv: req.Argv, Stdin: cmp.Or(req.Stdin, os.Stdin), Stdout: cmp.Or[io.Writer](req.Stdout, os.Stdout), Stderr: cmp.Or[io.Writer](req.Stderr, os.Stderr)}
	if arch != target.HostArch() {
		s.log.Info("the shell runs under qemu-user emulation", "arch", arch)
	}
	return b.Shell(ctx, prep.Plan, prep.Project, req.Root, t, component, sh)
}
