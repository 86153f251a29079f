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

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/internal/pidns"
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

type tools struct{ bwrap, mount string }

var _ runner.Runner = (*Runner)(nil)

func (r *Runner) Name() string { return "sandbox" }

// SharesJobserver says the sandbox passes a job server into its steps.
func (r *Runner) SharesJobserver() bool { return true }

// EnvironmentID is the key of the root filesystem the target's components
// build in: the target's bootstrap recipe, the arch and the package set.
func (r *Runner) EnvironmentID(t target.Target, arch string, packages []string) string {
	return "sandbox " + Key(t, arch, packages)
}

// Check reports whether the sandbox can run here, and which mode it uses.
func (r *Runner) Check() (Mode, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.check()
}

func (r *Runner) check() (Mode, error) {
	if r.checked {
		return r.Mode, nil
	}
	var err error
	if r.tools.bwrap, err = exec.LookPath("bwrap"); err != nil {
		return "", fmt.Errorf("bubblewrap is not installed: apt-get install bubblewrap")
	}
	if out, err := exec.Command(r.tools.bwrap, "--unshare-all", "--ro-bind", "/", "/", "true").CombinedOutput(); err != nil {
		return "", fmt.Errorf("bubblewrap cannot create namespaces here: %v: %s (unprivileged user namespaces may be disabled: sysctl kernel.unprivileged_userns_clone=1, or run as root)", err, strings.TrimSpace(string(out)))
	}
	if r.Mode == "" || r.Mode == Overlay {
		r.tools.mount, _ = exec.LookPath("mount")
		if err := r.probeOverlay(); err != nil {
			if r.Mode == Overlay {
				return "", err
			}
			r.Mode = Copy
		} else {
			r.Mode = Overlay
		}
	}
	r.checked = true
	return r.Mode, nil
}

// probeOverlay mounts a throwaway overlay in a private mount namespace.
func (r *Runner) probeOverlay() error {
	if r.tools.mount == "" {
		return errors.New("overlay mode needs mount (util-linux)")
	}
	dir, err := os.MkdirTemp("", "coach-overlay-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	ov := r.overlay(filepath.Join(dir, "merged"), []string{filepath.Join(dir, "lower")}, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	out, err := pidns.Command([]string{"true"}, ov).CombinedOutput()
	if err != nil {
		return fmt.Errorf("overlayfs cannot be mounted here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// overlay is the overlayfs mount of the layers at merged, made by the
// build's init in a private mount namespace (see pidns).
func (r *Runner) overlay(merged string, lowers []string, upper, work string) *pidns.Overlay {
	opts := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	if os.Geteuid() != 0 {
		opts += ",userxattr"
	}
	return &pidns.Overlay{Mount: r.tools.mount, Options: opts, Target: merged}
}

func (r *Runner) Prepare(ctx context.Context, t target.Target, arch string, packages []string) error {
	r.mu.Lock()
	if _, err := r.check(); err != nil {
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
	r.roots[t.Name+"/"+arch] = dir
	return nil
}

// Sysroot is the root filesystem Prepare made for a target, for checks
// that need to see the target's files ("" before Prepare).
func (r *Runner) Sysroot(t target.Target, arch string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.roots[t.Name+"/"+arch]
}

// hidden are the rootfs entries the sandbox does not expose: kernel
// filesystems are mounted fresh, and the rest is the host's business.
var hidden = map[string]bool{"proc": true, "dev": true, "sys": true, "tmp": true, "run": true, "home": true, "root": true, "mnt": true, "media": true, "lost+found": true, "boot": true}

// rootArgs binds the rootfs read-only, entry by entry, so that the sandbox
// root stays a tmpfs where mount points (the install dir, /coach) can be
// made.
// The top-level entry holding the install dir (/opt for /opt/hello) is left
// out too, so the install dir can be mounted there.
func rootArgs(rootfs, installDir string) ([]string, error) {
	top := strings.SplitN(strings.TrimPrefix(installDir, "/"), "/", 2)[0]
	entries, err := os.ReadDir(rootfs)
	if err != nil {
		return nil, err
	}
	var args []string
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
			args = append(args, "--symlink", link, "/"+name)
		} else if e.IsDir() {
			args = append(args, "--ro-bind", p, "/"+name)
		}
	}
	return args, nil
}

// env is a job's build environment on the host: what every step of it
// sees.
type env struct {
	base       []string // the rootfs, entry by entry
	tmp, home  string
	installSrc string         // the host directory seen at the install dir
	ov         *pidns.Overlay // the overlay that makes installSrc, if any
	mode       Mode
	snap       snapshot // Copy mode: the staging tree before the steps
	rootfs     string
	cleanup    func()
}

// setup makes the job's environment: its root filesystem, private /tmp and
// HOME, and its dependencies' layers at the install dir under an overlay
// whose upper directory is job.Output (or a copy of them).
func (r *Runner) setup(job *runner.Job) (*env, error) {
	r.mu.Lock()
	rootfs := r.roots[job.Target.Name+"/"+job.Arch]
	mode := r.Mode
	r.mu.Unlock()
	if rootfs == "" {
		return nil, fmt.Errorf("sandbox: Prepare was not called for %s/%s", job.Target.Name, job.Arch)
	}
	for _, p := range append([]string{job.Output, job.Scratch}, job.Layers...) {
		if strings.ContainsAny(p, ",:") {
			return nil, fmt.Errorf("sandbox: path %q contains , or :, which overlayfs options cannot carry; choose another --cache-dir", p)
		}
	}
	base, err := rootArgs(rootfs, job.InstallDir)
	if err != nil {
		return nil, err
	}
	e := &env{base: base, mode: mode, rootfs: rootfs, cleanup: func() {},
		tmp: filepath.Join(job.Scratch, "tmp"), home: filepath.Join(job.Scratch, "home")}
	for _, d := range []string{e.tmp, e.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	os.Chmod(e.tmp, 0o1777)
	switch mode {
	case Overlay:
		merged, work, empty := filepath.Join(job.Scratch, "merged"), filepath.Join(filepath.Dir(job.Output), "overlay-work"), filepath.Join(job.Scratch, "empty")
		for _, d := range []string{merged, work, empty} {
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
		e.ov = r.overlay(merged, lowers, job.Output, work)
		e.installSrc = merged
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
		if e.snap, err = takeSnapshot(staging); err != nil {
			return nil, err
		}
		e.installSrc = staging
	}
	return e, nil
}

// args is the bubblewrap command line of one command in the environment,
// up to and including the "--" before the command: working directory dir
// (relative to the job's), environment vars. A step runs in a session of
// its own; an interactive shell keeps the terminal's.
func (r *Runner) args(job *runner.Job, e *env, dir string, vars []string, interactive bool) []string {
	args := []string{r.tools.bwrap, "--unshare-all", "--die-with-parent"}
	if !interactive {
		args = append(args, "--new-session")
	}
	args = append(args, "--hostname", "coach-build", "--clearenv")
	args = append(args, e.base...)
	args = append(args,
		"--dev", "/dev", "--proc", "/proc", "--dir", "/run",
		"--bind", e.tmp, "/tmp",
		"--bind", e.home, runner.HomeDir,
		"--bind", job.Source, runner.SourceMount,
		"--bind", e.installSrc, job.InstallDir,
		"--chdir", filepath.Join(runner.SourceMount, job.Dir, dir))
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	return append(args, "--")
}

func (r *Runner) Run(ctx context.Context, job *runner.Job) error {
	e, err := r.setup(job)
	if err != nil {
		return err
	}
	defer e.cleanup()
	for i, st := range job.Steps {
		runner.WriteStepHeader(job, i)
		env := append(slices.Clone(job.Env), st.Env...)
		// The job server's pipe, at fds 4 and 5 of the step (after the
		// init's handshake at 3), and in MAKEFLAGS.
		var extra []*os.File
		if job.Jobserver != nil && !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "MAKEFLAGS=") }) {
			jr, jw, err := job.Jobserver.ChildFiles()
			if err != nil {
				return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: -1, Err: err}
			}
			extra = []*os.File{jr, jw}
			env = append(env, "MAKEFLAGS="+job.Jobserver.MakeFlags(4, 5))
		}
		args := append(r.args(job, e, st.Dir, env, false), st.Argv...)
		if err := r.exec(ctx, job, args, e.ov, extra...); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) && ctx.Err() == nil {
				if job.Debug != nil {
					r.debug(ctx, job, e, i, ee.ExitCode())
				}
				return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: ee.ExitCode()}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: -1, Err: err}
		}
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
	return interactive(ctx, args, e.ov, sh)
}
