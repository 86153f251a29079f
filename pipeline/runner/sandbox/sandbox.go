// Package sandbox runs builds with bubblewrap over a root filesystem of the
// target made by mmdebstrap. Each step runs in fresh namespaces with no
// network, the rootfs read-only, a private /tmp and HOME, the source
// writable, and the dependencies' layers stacked read-only at the install
// dir under an overlay whose upper directory becomes the component's layer.
// Where overlayfs cannot be mounted, the layers are copied instead and the
// layer is what the build changed in the copy.
package sandbox

import (
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

func (r *Runner) Run(ctx context.Context, job *runner.Job) error {
	r.mu.Lock()
	rootfs := r.roots[job.Target.Name+"/"+job.Arch]
	mode := r.Mode
	r.mu.Unlock()
	if rootfs == "" {
		return fmt.Errorf("sandbox: Prepare was not called for %s/%s", job.Target.Name, job.Arch)
	}
	for _, p := range append([]string{job.Output, job.Scratch}, job.Layers...) {
		if strings.ContainsAny(p, ",:") {
			return fmt.Errorf("sandbox: path %q contains , or :, which overlayfs options cannot carry; choose another --cache-dir", p)
		}
	}
	base, err := rootArgs(rootfs, job.InstallDir)
	if err != nil {
		return err
	}
	tmp, home := filepath.Join(job.Scratch, "tmp"), filepath.Join(job.Scratch, "home")
	for _, d := range []string{tmp, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	os.Chmod(tmp, 0o1777)
	var ov *pidns.Overlay
	installSrc := ""
	var snap snapshot
	switch mode {
	case Overlay:
		merged, work, empty := filepath.Join(job.Scratch, "merged"), filepath.Join(filepath.Dir(job.Output), "overlay-work"), filepath.Join(job.Scratch, "empty")
		for _, d := range []string{merged, work, empty} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		defer archive.RemoveAll(work)
		lowers := make([]string, 0, len(job.Layers)+1)
		for i := len(job.Layers) - 1; i >= 0; i-- {
			lowers = append(lowers, job.Layers[i])
		}
		if len(lowers) == 0 {
			lowers = []string{empty}
		}
		ov = r.overlay(merged, lowers, job.Output, work)
		installSrc = merged
	case Copy:
		staging := filepath.Join(job.Scratch, "install")
		if err := os.MkdirAll(staging, 0o755); err != nil {
			return err
		}
		for _, l := range job.Layers {
			if err := confine.CopyTreeDirs(l, staging); err != nil {
				return fmt.Errorf("sandbox: copy dependency layer: %w", err)
			}
		}
		if snap, err = takeSnapshot(staging); err != nil {
			return err
		}
		installSrc = staging
	}
	for i, st := range job.Steps {
		runner.WriteStepHeader(job, i)
		args := []string{r.tools.bwrap,
			"--unshare-all", "--die-with-parent", "--new-session", "--hostname", "coach-build",
			"--clearenv"}
		args = append(args, base...)
		args = append(args,
			"--dev", "/dev", "--proc", "/proc", "--dir", "/run",
			"--bind", tmp, "/tmp",
			"--bind", home, runner.HomeDir,
			"--bind", job.Source, runner.SourceMount,
			"--bind", installSrc, job.InstallDir,
			"--chdir", filepath.Join(runner.SourceMount, job.Dir, st.Dir))
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
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			args = append(args, "--setenv", k, v)
		}
		args = append(args, "--")
		args = append(args, st.Argv...)
		if err := r.exec(ctx, job, args, ov, extra...); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) && ctx.Err() == nil {
				return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: ee.ExitCode()}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: -1, Err: err}
		}
	}
	switch mode {
	case Overlay:
		return cleanUpper(job.Output)
	default:
		return snap.diff(installSrc, job.Output)
	}
}
