// Package runner defines what a build backend does: run one component's
// build steps in an isolated environment for its target, with its
// dependencies' layers visible at the install dir, and hand back what the
// steps added there as the component's layer. Everything else (sources,
// patches, environment, caching, merging) is shared and lives in
// pipeline/build, so backends stay small.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/target"
)

// Paths every runner provides inside the build environment.
const (
	// SourceMount is where Job.Source appears, writable.
	SourceMount = "/coach/src"
	// HomeDir is HOME: writable, private to the component.
	HomeDir = "/coach/home"
)

// Runner is a build backend.
type Runner interface {
	// Name is the backend's name: sandbox, dagger, fake.
	Name() string
	// Prepare readies the environment for a target with the given distro
	// packages on top of its toolchain. It is called before Run for each
	// target and may take minutes the first time.
	Prepare(ctx context.Context, t target.Target, arch string, packages []string) error
	// Run executes job's steps in order and fills job.Output with what
	// they added under job.InstallDir. A failing step is a *StepError.
	Run(ctx context.Context, job *Job) error
}

// Job is one component's build on one target.
type Job struct {
	Component string
	Version   string
	Target    target.Target
	Arch      string
	// Packages are the distro packages the environment has besides the
	// toolchain (the same set Prepare was given).
	Packages []string
	// Source is the host directory mounted at SourceMount; Dir is the
	// working directory relative to it.
	Source string
	Dir    string
	// InstallDir is where the layers are seen, e.g. /opt/hello.
	InstallDir string
	// Layers are host directories, each holding a dependency's files as
	// they appear under InstallDir, in dependency order. They are read-only
	// to the build.
	Layers []string
	// Output is an empty host directory that receives the layer.
	Output string
	// Scratch is a host directory the runner may use for its own work
	// (overlay work dirs, /tmp, HOME).
	Scratch string
	Env     []string // KEY=VALUE, the complete environment
	Steps   []Step
	// Timeout stops the build when its steps together run longer (0:
	// never); a step's own Timeout may stop it sooner.
	Timeout time.Duration
	// Log receives every step's output.
	Log io.Writer
	// Collect are files, relative to Source, that the build may have
	// made (license files) and that must be in Source on the host when
	// Run returns. A runner that works on Source itself has nothing to do.
	Collect []string
	// KeepFailed asks a runner that works on a copy of Source to put the
	// copy's state back into Source when a step fails, for inspection.
	KeepFailed bool
	// NoCache asks a runner with a cache of its own (an engine's) to run
	// every step again.
	NoCache bool
	// Debug, when set, asks a runner that can (a Sheller) to open this
	// shell in the environment of a step that fails, as the step left
	// it, before it returns the step's error.
	Debug *Shell
	// OnStep, when set, hears each step start (StartStep), before its
	// output: the builder turns it into a step event and a log line.
	OnStep func(i int)
	// Jobserver, when set, is the GNU make job server the builds of the
	// run share. A runner that can pass it into the build environment
	// does so and puts its flags in MAKEFLAGS (unless the definition set
	// MAKEFLAGS); one that cannot ignores it.
	Jobserver Jobserver
}

// What a runner may do besides Runner's three methods is a capability: a
// named interface here, which each backend that has it pins at compile
// time (var _ runner.Sheller = (*Runner)(nil)), and which callers ask for
// by type, never by the runner's name.

// JobserverSharer passes the run's make job server into its build
// environment (Job.Jobserver), so that all builds share one pool.
type JobserverSharer interface {
	Runner
	SharesJobserver() bool
}

// SharesJobserver reports whether r is a JobserverSharer that shares.
func SharesJobserver(r Runner) bool {
	s, ok := r.(JobserverSharer)
	return ok && s.SharesJobserver()
}

// Environment is a runner whose build environment has an identity of its
// own: the sandbox's root filesystem (its key covers every component's
// build_packages, since they all build in one root), the Dagger image. It
// goes into every layer's key, so that a layer is never reused from
// another environment and layers of two environments never meet in one
// tree.
type Environment interface {
	EnvironmentID(t target.Target, arch string, packages []string) string
}

// Sysrooter has the target's root filesystem on the host, where checks
// that need to see the target's files (the health check's system
// libraries) find them; "" before Prepare.
type Sysrooter interface {
	Sysroot(t target.Target, arch string, packages []string) string
}

// PackageSet is a list of distro packages as environments are keyed by
// it: sorted, each once.
func PackageSet(packages []string) []string {
	pkgs := slices.Clone(packages)
	slices.Sort(pkgs)
	return slices.Compact(pkgs)
}

// PreparedID names the environment Prepare made for a target, arch and
// package set, for a backend's map of them.
func PreparedID(t target.Target, arch string, packages []string) string {
	return t.Name + "/" + arch + "/" + strings.Join(PackageSet(packages), ",")
}

// SysrootOf is the target's root filesystem as r builds in it, prepared
// first when it is not there yet (every component came from the cache);
// "" when r has none on the host or cannot make it.
func SysrootOf(ctx context.Context, r Runner, t target.Target, arch string, packages []string) string {
	s, ok := r.(Sysrooter)
	if !ok {
		return ""
	}
	if dir := s.Sysroot(t, arch, packages); dir != "" {
		return dir
	}
	if r.Prepare(ctx, t, arch, packages) != nil {
		return ""
	}
	return s.Sysroot(t, arch, packages)
}

// PlatformProber says which architectures it can run programs of (native
// or emulated): before a build for a foreign arch, a runner that cannot is
// refused with the fix. native is its own platform ("linux/amd64").
type PlatformProber interface {
	Platforms(ctx context.Context, arches []string) (native string, failed map[string]error, err error)
}

// StepDebugger honours Job.Debug: it opens the shell where a step failed,
// as the step left it (the sandbox).
type StepDebugger interface {
	Sheller
	DebugsSteps()
}

// TargetScheduler schedules work itself (an engine): every target of a
// run is given to it at once, rather than one after the other.
type TargetScheduler interface {
	SchedulesTargets()
}

// VerifyMachine is a clean installation of a target in which verify runs
// its checks, one shell script at a time.
type VerifyMachine interface {
	Run(ctx context.Context, script string, net bool) (string, error)
	RPMOptions() []string
	Where() string
}

// Verifier makes clean machines of a target for verify (an engine's
// containers), with the package files at /coach/pkgs; a runner without it
// is verified in the sandbox's clean roots.
type Verifier interface {
	Machine(ctx context.Context, t target.Target, arch string, packages []string) (VerifyMachine, error)
	// VerifyEnvironmentID identifies the machine a package of t is
	// verified in, for the verify cache's key.
	VerifyEnvironmentID(t target.Target, arch string) string
}

// Jobserver is what a runner needs of a job server: descriptors of its
// pipe for one step, and the MAKEFLAGS naming them.
type Jobserver interface {
	ChildFiles() (r, w *os.File, err error)
	MakeFlags(rfd, wfd int) string
}

// Shell is an interactive command in a job's build environment.
type Shell struct {
	// Argv is the command; empty means the environment's shell.
	Argv []string
	// Stdin, Stdout and Stderr are the shell's; when Stdin is a terminal
	// the shell gets it as its controlling terminal, in the foreground.
	Stdin          *os.File
	Stdout, Stderr io.Writer
	// Prompt names the environment in the shell's prompt.
	Prompt string
}

// Sheller is a runner that can open a shell in a job's environment: the
// job's source at its working directory, its dependencies' layers at the
// install dir (writable, what the shell writes there is thrown away), and
// the environment its steps get. Job.Steps is not run.
type Sheller interface {
	Shell(ctx context.Context, job *Job, sh Shell) error
}

// ShellExitError is a shell that ran and exited with a status other than
// zero; coach shell exits with the same status.
type ShellExitError struct{ Code int }

func (e *ShellExitError) Error() string {
	return fmt.Sprintf("the shell exited with status %d", e.Code)
}

// Step is one command. Argv runs without a shell; a shell step is
// ["/bin/sh", "-e", "-c", line].
type Step struct {
	Name string
	Argv []string
	// Dir is relative to the job's Dir.
	Dir string
	Env []string // added to the job's Env
	// Timeout stops the step when it runs longer (0: never).
	Timeout time.Duration
}

// StepTimeout is how long step i, starting at now, may run in a job whose
// first step started at start: its own timeout, or what is left of the
// job's, whichever ends first (0: no limit). of says whose it is: "step"
// or "component".
func (j *Job) StepTimeout(i int, start, now time.Time) (d time.Duration, of string) {
	d, of = j.Steps[i].Timeout, "step"
	if j.Timeout > 0 {
		left := max(j.Timeout-now.Sub(start), time.Millisecond)
		if d == 0 || left < d {
			d, of = left, "component"
		}
	}
	return d, of
}

// StepContext is ctx limited to step i's timeout (StepTimeout), and the
// StepError to return when the step ran into it rather than ctx ending.
func (j *Job) StepContext(ctx context.Context, i int, start time.Time) (context.Context, context.CancelFunc, func() *StepError) {
	d, of := j.StepTimeout(i, start, time.Now())
	if d == 0 {
		return ctx, func() {}, func() *StepError { return nil }
	}
	sctx, cancel := context.WithTimeout(ctx, d)
	limit := j.Steps[i].Timeout
	if of == "component" {
		limit = j.Timeout
	}
	return sctx, cancel, func() *StepError {
		if ctx.Err() != nil || !errors.Is(sctx.Err(), context.DeadlineExceeded) {
			return nil
		}
		return &StepError{Component: j.Component, Step: i, StepName: j.Steps[i].Name, ExitCode: -1, TimedOut: limit, TimeoutOf: of}
	}
}

// StepError is a build step that failed.
type StepError struct {
	Component string
	Step      int // 0-based index in Job.Steps
	StepName  string
	ExitCode  int
	// Filled in by the executor:
	Tail    []string // the last lines of output
	LogPath string
	WorkDir string // kept for inspection, if it was
	Err     error  // set when the step could not be run at all
	// TimedOut is the timeout the step ran into (TimeoutOf: "step" or
	// "component"); it was killed with everything it started.
	TimedOut  time.Duration
	TimeoutOf string
}

func (e *StepError) Error() string {
	var b strings.Builder
	switch {
	case e.TimedOut > 0 && e.TimeoutOf == "component":
		fmt.Fprintf(&b, "build %s: step %d (%s) timed out: the component's steps ran longer than its timeout: %s; it was stopped with everything it started", e.Component, e.Step+1, e.StepName, e.TimedOut)
	case e.TimedOut > 0:
		fmt.Fprintf(&b, "build %s: step %d (%s) timed out after %s (its timeout:); it was stopped with everything it started", e.Component, e.Step+1, e.StepName, e.TimedOut)
	case e.Err != nil:
		fmt.Fprintf(&b, "build %s: step %d (%s) could not run: %v", e.Component, e.Step+1, e.StepName, e.Err)
	default:
		fmt.Fprintf(&b, "build %s: step %d (%s) exited with code %d", e.Component, e.Step+1, e.StepName, e.ExitCode)
	}
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "\n--- last %d lines of output\n%s", len(e.Tail), strings.Join(e.Tail, "\n"))
	}
	if e.LogPath != "" {
		fmt.Fprintf(&b, "\n--- full log: %s", e.LogPath)
	}
	if e.WorkDir != "" {
		fmt.Fprintf(&b, "\n--- work directory kept: %s", e.WorkDir)
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// StepHeader starts the line written to a build log before each step,
// e.g. "==> step 2/3: make install": for the person reading the log.
// Nothing reads it back: step boundaries reach the builder as calls
// (Job.StartStep), so a build whose own output starts a line with it
// (makepkg-style tools) shows no step of its own.
const StepHeader = "==> "

// StartStep says step i of the job starts: a runner calls it before each
// step, before the step writes anything to Log. The builder's OnStep
// hears it; without one, the header line goes to Log.
func (j *Job) StartStep(i int) {
	if j.OnStep != nil {
		j.OnStep(i)
		return
	}
	fmt.Fprint(j.Log, StepHeaderLine(j, i))
}

// StepHeaderLine is the log line that marks step i of job.
func StepHeaderLine(j *Job, i int) string {
	return fmt.Sprintf("%sstep %d/%d: %s\n", StepHeader, i+1, len(j.Steps), j.Steps[i].Name)
}

// ShellStep makes a step that runs a command line with sh -e -c.
func ShellStep(name, line string) Step {
	return Step{Name: name, Argv: []string{"/bin/sh", "-e", "-c", line}}
}
