// Package sandbox runs builds with bubblewrap over a root filesystem of the
// target made by mmdebstrap. Each step runs in fresh namespaces with no
// network, the rootfs read-only, a private /tmp and HOME, the source
// writable, and the dependencies' layers stacked read-only at the install
// dir under an overlay whose upper directory becomes the component's layer.
// Where overlayfs cannot be mounted, the layers are copied instead and the
// layer is what the build changed in the copy.
package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/binfmt"
	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/internal/userns"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

// Mode is how dependency layers reach the build.
type Mode string

const (
	// Overlay stacks the layers as overlayfs lower dirs; the upper dir is
	// the new layer. Needs root, or a kernel that allows overlayfs in a
	// user namespace.
	Overlay Mode = "overlay"
	// Copy copies the layers and takes what changed as the new layer.
	Copy Mode = "copy"
)

// Runner is the bubblewrap runner.
type Runner struct {
	Rootfs *Rootfs
	// Mode is Overlay or Copy; empty means Overlay where it works.
	Mode Mode

	mu      sync.Mutex
	roots   map[string]string // target/arch -> rootfs dir
	tools   tools
	checked bool
}

type tools struct{ bwrap string }

var (
	_ runner.Runner          = (*Runner)(nil)
	_ runner.Sheller         = (*Runner)(nil)
	_ runner.StepDebugger    = (*Runner)(nil)
	_ runner.Environment     = (*Runner)(nil)
	_ runner.Sysrooter       = (*Runner)(nil)
	_ runner.JobserverSharer = (*Runner)(nil)
	_ runner.PlatformProber  = (*Runner)(nil)
)

// DebugsSteps says the sandbox opens Job.Debug where a step fails.
func (r *Runner) DebugsSteps() {}

// Platforms says which arches run here: this machine's own, and those
// qemu-user runs through binfmt_misc (with the F flag, so that it works
// inside a sandbox's root).
func (r *Runner) Platforms(ctx context.Context, arches []string) (string, map[string]error, error) {
	failed := map[string]error{}
	for _, a := range arches {
		if err := binfmt.CanRun(binfmt.Path(), a); err != nil {
			failed[a] = err
		}
	}
	return target.LookupArch(target.HostArch()).OCIPlatform(), failed, nil
}

func (r *Runner) Name() string { return "sandbox" }

// SharesJobserver says the sandbox passes a job server into its steps.
func (r *Runner) SharesJobserver() bool { return true }

// environmentSchema is mixed into the environment's identity: bump it
// when what a step sees of its environment changes. 2: steps run as root
// of coach's user namespace, not host root, and write layers owned by it.
// 3: each component builds in its target's base root with only its own
// build packages added (EnvKey).
const environmentSchema = 3

// EnvironmentID is the key of the environment a component builds in: the
// target's base root (bootstrap recipe, arch), and the component's own
// build packages over it.
func (r *Runner) EnvironmentID(t target.Target, arch string, packages []string) string {
	return fmt.Sprintf("sandbox/%d %s", environmentSchema, EnvKey(t, arch, packages))
}

// Check reports whether the sandbox can run here: its tools are there and
// coach has ids for the sandboxes' root. It runs nothing: a build whose
// every component comes from the cache never starts a sandbox, and pays
// nothing for one. Probe runs one.
func (r *Runner) Check() (Mode, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Mode, r.check()
}

func (r *Runner) check() error {
	if r.tools.bwrap != "" {
		return nil
	}
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return fmt.Errorf("bubblewrap is not installed: apt-get install bubblewrap")
	}
	for _, tool := range []string{"mount", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the sandbox needs %s (util-linux): apt-get install util-linux", tool)
		}
	}
	if _, err := userns.Current(); err != nil {
		return fmt.Errorf("the sandbox's user namespace: %w", err)
	}
	r.tools.bwrap = bwrap
	return nil
}

// Probe runs a sandbox as a step runs (and one with an overlay, unless
// the mode is Copy) and says which mode the sandbox uses: Overlay where
// overlayfs can be mounted, else Copy. The first build job probes, once.
func (r *Runner) Probe() (Mode, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.probeMode()
}

func (r *Runner) probeMode() (Mode, error) {
	if r.checked {
		return r.Mode, nil
	}
	if err := r.check(); err != nil {
		return "", err
	}
	if r.Mode == "" || r.Mode == Overlay {
		err := r.probe(true)
		switch {
		case err == nil:
			r.Mode = Overlay
		case r.Mode == Overlay:
			return "", fmt.Errorf("overlayfs cannot be mounted here: %v", err)
		default:
			r.Mode = Copy
		}
	}
	if r.Mode == Copy {
		if err := r.probe(false); err != nil {
			return "", fmt.Errorf("bubblewrap cannot run a sandbox here: %v (unprivileged user namespaces may be disabled: sysctl kernel.unprivileged_userns_clone=1, or run as root)", err)
		}
	}
	r.checked = true
	return r.Mode, nil
}

// probe runs true in a sandbox of the host's /usr, as a step runs, with an
// overlay at /coach/probe if asked.
func (r *Runner) probe(overlay bool) error {
	dir, err := os.MkdirTemp("", "coach-sandbox-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	layout := &pidns.Layout{Staging: filepath.Join(dir, "root"), Mounts: []pidns.Mount{{Kind: pidns.Tmpfs},
		{Kind: pidns.ReadOnly, Source: "/usr", Target: "/usr"}}}
	os.Mkdir(layout.Staging, 0o755)
	for _, l := range []string{"bin", "lib", "lib64"} {
		if link, err := os.Readlink("/" + l); err == nil {
			layout.Mounts = append(layout.Mounts, pidns.Mount{Kind: pidns.Symlink, Source: link, Target: "/" + l})
		} else if st, err := os.Stat("/" + l); err == nil && st.IsDir() {
			layout.Mounts = append(layout.Mounts, pidns.Mount{Kind: pidns.ReadOnly, Source: "/" + l, Target: "/" + l})
		}
	}
	for _, d := range []string{"/proc", "/dev"} {
		layout.Mounts = append(layout.Mounts, pidns.Mount{Kind: pidns.Dir, Options: "0755", Target: d})
	}
	if overlay {
		for _, d := range []string{"lower", "upper", "work"} {
			os.Mkdir(filepath.Join(dir, d), 0o755)
		}
		if err := userns.Chown(filepath.Join(dir, "upper")); err != nil {
			return err
		}
		layout.Mounts = append(layout.Mounts, pidns.Mount{Kind: pidns.Overlay, Target: "/coach/probe",
			Options: pidns.OverlayOptions([]string{filepath.Join(dir, "lower")}, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))})
	}
	args := pidns.Bwrap{Path: r.tools.bwrap}.Args()
	out, err := pidns.Command(append(args, "true"), layout).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (r *Runner) Prepare(ctx context.Context, t target.Target, arch string, packages []string) error {
	r.mu.Lock()
	if err := r.check(); err != nil {
		r.mu.Unlock()
		return err
	}
	r.mu.Unlock()
	dir, err := r.Rootfs.Ensure(ctx, t, arch, packages)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.roots == nil {
		r.roots = map[string]string{}
	}
	r.roots[runner.PreparedID(t, arch, packages)] = dir
	return nil
}

// Sysroot is the environment Prepare made for a target and packages, for
// checks that need to see the target's files ("" before Prepare).
func (r *Runner) Sysroot(t target.Target, arch string, packages []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.roots[runner.PreparedID(t, arch, packages)]
}

// hidden are the rootfs entries the sandbox does not expose: kernel
// filesystems are mounted fresh, and the rest is the host's business.
var hidden = map[string]bool{"proc": true, "dev": true, "sys": true, "tmp": true, "run": true, "home": true, "root": true, "mnt": true, "media": true, "lost+found": true, "boot": true}

// rootLayout is the sandbox's filesystem of a root filesystem: a tmpfs
// root, where mount points (the install dir, /coach) can be made, with
// the rootfs bound read-only entry by entry, and fresh /proc, /dev, /run
// and /tmp mount points. The top-level entry holding the install dir
// (/opt for /opt/hello) is left out, so the install dir can be mounted
// there.
func rootLayout(rootfs, installDir, staging string) (*pidns.Layout, error) {
	top := strings.SplitN(strings.TrimPrefix(installDir, "/"), "/", 2)[0]
	entries, err := os.ReadDir(rootfs)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, err
	}
	l := &pidns.Layout{Staging: staging, Mounts: []pidns.Mount{{Kind: pidns.Tmpfs}}}
	for _, e := range entries {
		name := e.Name()
		if hidden[name] || strings.HasPrefix(name, ".") || name == top {
			continue
		}
		p := filepath.Join(rootfs, name)
		if e.Type()&fs.ModeSymlink != 0 {
			link, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			l.Mounts = append(l.Mounts, pidns.Mount{Kind: pidns.Symlink, Source: link, Target: "/" + name})
		} else if e.IsDir() {
			l.Mounts = append(l.Mounts, pidns.Mount{Kind: pidns.ReadOnly, Source: p, Target: "/" + name})
		}
	}
	for _, d := range []string{"/proc", "/dev", "/run", "/tmp"} {
		l.Mounts = append(l.Mounts, pidns.Mount{Kind: pidns.Dir, Options: "0755", Target: d})
	}
	return l, nil
}

// env is a job's build environment on the host: what every step of it
// sees.
type env struct {
	layout    *pidns.Layout // the root filesystem, /tmp, HOME, the source and the install dir
	tmp, home string
	// installSrc is the host directory seen at the install dir in Copy
	// mode; in Overlay mode the layout mounts the overlay there.
	installSrc string
	mode       Mode
	snap       snapshot // Copy mode: the staging tree before the steps
	rootfs     string
	cleanup    func()
}

// setup makes the job's environment: its root filesystem, private /tmp and
// HOME, and its dependencies' layers at the install dir under an overlay
// whose upper directory is job.Output (or a copy of them). Everything a
// step may write is owned by the root of coach's user namespace, which
// steps run as.
func (r *Runner) setup(job *runner.Job) (*env, error) {
	mode, err := r.Probe()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	rootfs := r.roots[runner.PreparedID(job.Target, job.Arch, job.Packages)]
	r.mu.Unlock()
	if rootfs == "" {
		return nil, fmt.Errorf("sandbox: Prepare was not called for %s/%s with %v", job.Target.Name, job.Arch, job.Packages)
	}
	for _, p := range append([]string{job.Output, job.Scratch}, job.Layers...) {
		if strings.ContainsAny(p, ",:") {
			return nil, fmt.Errorf("sandbox: path %q contains , or :, which overlayfs options cannot carry; choose another --cache-dir", p)
		}
	}
	layout, err := rootLayout(rootfs, job.InstallDir, filepath.Join(job.Scratch, "root"))
	if err != nil {
		return nil, err
	}
	e := &env{layout: layout, mode: mode, rootfs: rootfs, cleanup: func() {},
		tmp: filepath.Join(job.Scratch, "tmp"), home: filepath.Join(job.Scratch, "home")}
	for _, d := range []string{e.tmp, e.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := userns.Chown(d); err != nil {
			return nil, err
		}
	}
	os.Chmod(e.tmp, 0o1777)
	if err := userns.ChownTree(job.Source); err != nil {
		return nil, fmt.Errorf("sandbox: give the source to the build's user: %w", err)
	}
	if err := userns.Chown(job.Output); err != nil {
		return nil, err
	}
	layout.Mounts = append(layout.Mounts,
		pidns.Mount{Kind: pidns.ReadWrite, Source: e.tmp, Target: "/tmp"},
		pidns.Mount{Kind: pidns.ReadWrite, Source: e.home, Target: runner.HomeDir},
		pidns.Mount{Kind: pidns.ReadWrite, Source: job.Source, Target: runner.SourceMount})
	switch mode {
	case Overlay:
		work, empty := filepath.Join(filepath.Dir(job.Output), "overlay-work"), filepath.Join(job.Scratch, "empty")
		for _, d := range []string{work, empty} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		e.cleanup = func() { archive.RemoveAll(work) }
		lowers := make([]string, 0, len(job.Layers)+1)
		for i := len(job.Layers) - 1; i >= 0; i-- {
			lowers = append(lowers, job.Layers[i])
		}
		if len(lowers) == 0 {
			lowers = []string{empty}
		}
		layout.Mounts = append(layout.Mounts, pidns.Mount{Kind: pidns.Overlay, Target: job.InstallDir, Options: pidns.OverlayOptions(lowers, job.Output, work)})
	case Copy:
		staging := filepath.Join(job.Scratch, "install")
		if err := os.MkdirAll(staging, 0o755); err != nil {
			return nil, err
		}
		for _, l := range job.Layers {
			if err := confine.CopyTreeDirs(l, staging); err != nil {
				return nil, fmt.Errorf("sandbox: copy dependency layer: %w", err)
			}
		}
		if err := userns.ChownTree(staging); err != nil {
			return nil, err
		}
		if e.snap, err = takeSnapshot(staging); err != nil {
			return nil, err
		}
		e.installSrc = staging
		layout.Mounts = append(layout.Mounts, pidns.Mount{Kind: pidns.ReadWrite, Source: staging, Target: job.InstallDir})
	}
	return e, nil
}

// args is the bubblewrap command line of one command in the environment,
// up to and including the "--" before the command: working directory dir
// (relative to the job's), environment vars. A step runs in a session of
// its own; an interactive shell keeps the terminal's.
func (r *Runner) args(job *runner.Job, e *env, dir string, vars []string, interactive bool) []string {
	return pidns.Bwrap{Path: r.tools.bwrap, Interactive: interactive, Hostname: "coach-build", Env: vars,
		Dir: filepath.Join(runner.SourceMount, job.Dir, dir)}.Args()
}

func (r *Runner) Run(ctx context.Context, job *runner.Job) error {
	e, err := r.setup(job)
	if err != nil {
		return err
	}
	defer e.cleanup()
	// The job server's pipe, at fds 4 and 5 of every step (after the
	// init's descriptor 3), and in MAKEFLAGS unless a step sets it.
	var extra []*os.File
	makeflags := ""
	if job.Jobserver != nil {
		jr, jw, err := job.Jobserver.ChildFiles()
		if err != nil {
			return &runner.StepError{Component: job.Component, Step: 0, StepName: job.Steps[0].Name, ExitCode: -1, Err: err}
		}
		extra, makeflags = []*os.File{jr, jw}, "MAKEFLAGS="+job.Jobserver.MakeFlags(4, 5)
	}
	// One session for the job's steps: the layout is made once.
	steps := filepath.Join(job.Scratch, "steps")
	if err := os.MkdirAll(steps, 0o700); err != nil {
		return err
	}
	sess, err := pidns.StartSession(e.layout, steps, job.Log, extra...)
	for _, f := range extra {
		f.Close() // the init has its copies
	}
	if err != nil {
		return &runner.StepError{Component: job.Component, Step: 0, StepName: job.Steps[0].Name, ExitCode: -1, Err: err}
	}
	defer sess.Close()
	start := time.Now()
	for i, st := range job.Steps {
		job.StartStep(i)
		env := append(slices.Clone(job.Env), st.Env...)
		if makeflags != "" && !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "MAKEFLAGS=") }) {
			env = append(env, makeflags)
		}
		// A step past its timeout is killed with the session: every
		// process it started dies with the pid namespace.
		sctx, cancel, timedOut := job.StepContext(ctx, i, start)
		code, err := sess.Run(sctx, append(r.args(job, e, st.Dir, env, false), st.Argv...))
		cancel()
		if te := timedOut(); te != nil {
			return te
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: -1, Err: err}
		case code != 0:
			if job.Debug != nil {
				// The shell gets the step's layout afresh: the session's
				// overlay must be gone first.
				sess.Close()
				r.debug(ctx, job, e, i, code)
			}
			return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: code}
		}
	}
	if err := sess.Close(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	switch e.mode {
	case Overlay:
		return cleanUpper(job.Output)
	default:
		return e.snap.diff(e.installSrc, job.Output)
	}
}

// Shell opens sh in the job's environment, at its working directory, with
// its environment; what it writes at the install dir lands in job.Output,
// which the caller throws away.
func (r *Runner) Shell(ctx context.Context, job *runner.Job, sh runner.Shell) error {
	e, err := r.setup(job)
	if err != nil {
		return err
	}
	defer e.cleanup()
	return r.shell(ctx, job, e, "", job.Env, sh)
}

// debug opens job.Debug where step i failed: its directory, its
// environment, the source and install dir as it left them.
func (r *Runner) debug(ctx context.Context, job *runner.Job, e *env, i, code int) {
	st := job.Steps[i]
	sh := *job.Debug
	fmt.Fprintf(sh.Stderr, "\ncoach: %s: step %d/%d (%s) exited with code %d.\ncoach: a shell where it ran, as it left the source and %s; exit to go on.\n",
		job.Component, i+1, len(job.Steps), st.Name, code, job.InstallDir)
	if err := r.shell(ctx, job, e, st.Dir, append(slices.Clone(job.Env), st.Env...), sh); err != nil {
		var se *runner.ShellExitError
		if !errors.As(err, &se) {
			fmt.Fprintf(sh.Stderr, "coach: the debug shell could not run: %v\n", err)
		}
	}
}

func (r *Runner) shell(ctx context.Context, job *runner.Job, e *env, dir string, vars []string, sh runner.Shell) error {
	argv := sh.Argv
	if len(argv) == 0 {
		argv = []string{"/bin/sh", "-i"}
		if _, err := os.Stat(filepath.Join(e.rootfs, "bin", "bash")); err == nil {
			argv = []string{"/bin/bash", "--norc", "--noprofile", "-i"}
		}
	}
	vars = slices.Clone(vars)
	if t := os.Getenv("TERM"); t != "" {
		vars = append(vars, "TERM="+t)
	}
	prompt := cmp.Or(sh.Prompt, job.Component)
	vars = append(vars, "PS1=(coach "+prompt+") \\w\\$ ")
	args := append(r.args(job, e, dir, vars, true), argv...)
	return interactive(ctx, args, e.layout, sh)
}

// IDs says which host ids the root of the sandboxes is: coach's range of
// subordinate ids when it runs as root, the user otherwise.
func IDs() (userns.IDs, error) { return userns.Current() }
