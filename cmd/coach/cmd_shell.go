package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/runner"
)

// shellResult is what coach shell --json reports.
type shellResult struct {
	Project   string `json:"project"`
	Component string `json:"component"`
	Target    string `json:"target"`
	Arch      string `json:"arch,omitempty"`
	// ExitStatus is the shell's (or the command's) exit status.
	ExitStatus int `json:"exit_status"`
}

func (a *app) shellCommand() *cobra.Command {
	var req pipeline.ShellRequest
	var sf sourceFlags
	var proj projectFlags
	var targets, arches []string
	cmd := &cobra.Command{
		Use:   "shell <project> [component] [-- command [arg ...]]",
		Short: "Open a shell in a component's build environment",
		Long: `shell opens a shell where a component's build steps run, as its first step
would see it: the target's root filesystem, the component's dependencies
built (or taken from the cache) and stacked at the install dir, its source
fetched, unpacked and patched at the working directory, and the exact
environment of its steps (CPPFLAGS, LDFLAGS, PATH, PKG_CONFIG_PATH ...), in
the same sandbox, with no network. The component defaults to the project's
last software. After -- comes a command to run instead of the shell. On the
Dagger runner the command runs in the component's container, confined as a
build step is, and its output (stdout and stderr together) streams as it
runs (the engine attaches interactive terminals only to the dagger CLI's own
sessions, so a command is needed there).

Nothing the shell does is kept: what it writes at the install dir and in the
source is thrown away when it exits. To get a shell where a step failed, as
the step left it, use coach build --debug.

Once the shell has run, coach shell exits with its status (or the
command's); before that, with coach's own exit codes. With --json the
shell's standard output goes to standard error, and the document says the
status.`,
		Args:              cobra.ArbitraryArgs, // checked before --, below,
		ValidArgsFunction: a.completeProjectComponent,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			if n := cmd.ArgsLenAtDash(); n >= 0 {
				req.Argv = args[n:]
				args = args[:n]
			}
			if len(args) < 1 || len(args) > 2 {
				return usageError(fmt.Errorf("give the project and at most one component before --"))
			}
			var err error
			if req.Arch, err = oneArch(arches, "a shell"); err != nil {
				return err
			}
			if len(targets) > 1 {
				return usageError(fmt.Errorf("a shell is in one target's environment: give one -t, not %d", len(targets)))
			}
			req.Root, req.Project = a.dir, args[0]
			if len(args) == 2 {
				req.Component = args[1]
			}
			if len(targets) == 1 {
				req.Target = targets[0]
			}
			req.CacheDir, req.Mirrors, req.Offline = sf.cache(), sf.mirrors, sf.offline
			req.Log, req.Events = a.log, a.events
			// The process's own stdout: an interactive shell's terminal.
			req.Stdout, req.Stderr = a.rawStdout, a.stderr
			if a.json {
				req.Stdout = a.stderr // stdout carries the one document
			}
			if req.Overrides, err = proj.parsedOverrides(); err != nil {
				return err
			}
			err = pipeline.Shell(ctx, req)
			var se *runner.ShellExitError
			if err == nil || errors.As(err, &se) {
				res := shellResult{Project: req.Project, Component: req.Component, Target: req.Target, Arch: req.Arch}
				if se != nil {
					res.ExitStatus = se.Code
				}
				a.output(res)
				if se != nil {
					return &shellExit{code: se.Code}
				}
			}
			return err
		},
	}
	fl := cmd.Flags()
	sf.registerCache(fl)
	sf.registerSources(fl)
	a.targetFlag(cmd, &targets, "the target whose build environment it is (needed when the project has more than one)")
	a.archFlag(cmd, &arches, "the architecture, amd64 or arm64 (one: a shell is in one environment; default: this machine's); a foreign one runs under qemu-user emulation")
	fl.StringVar(&req.RunnerName, "runner", "auto", "auto, sandbox or dagger (dagger runs a command given after --, not an interactive shell)")
	fl.IntVarP(&req.Jobs, "jobs", "j", 0, "dependencies built at once, when they are not cached")
	fl.BoolVar(&req.Locked, "locked", false, "fail if the lock file is missing or out of date")
	proj.register(fl, false)
	return cmd
}

// shellExit is a shell's own exit status, passed on as coach's: not a
// failure of coach's to report.
type shellExit struct{ code int }

func (e *shellExit) Error() string { return fmt.Sprintf("the shell exited with status %d", e.code) }
