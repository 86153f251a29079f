// Package runners makes the build runners by name (auto, sandbox,
// dagger) and says whether one can run a build's architectures: the
// factory beside package runner, which the runners' own packages cannot
// hold (each imports runner).
package runners

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// Runner names.
const (
	Auto    = "auto"
	Sandbox = "sandbox"
	Dagger  = "dagger"
)

// Options say how to make a runner.
type Options struct {
	// CacheDir holds the sandbox's root filesystems (unless
	// $COACH_ROOTFS_DIR says otherwise).
	CacheDir string
	Log      *slog.Logger
	Events   event.Sink
	// EngineLog asks the Dagger runner for its engine's progress, as
	// debug records.
	EngineLog bool
	// ConnectTimeout bounds the connection to a Dagger engine; zero takes
	// $COACH_DAGGER_CONNECT_TIMEOUT, else the runner's default.
	ConnectTimeout time.Duration
}

// DaggerConfigured reports whether the environment points at a Dagger
// engine: inside `dagger run`, or with an explicit runner host.
func DaggerConfigured() bool {
	return os.Getenv("DAGGER_SESSION_PORT") != "" || os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") != ""
}

// ErrNoRunner is a runner that cannot run here.
var ErrNoRunner = errors.New("no usable runner")

// New makes the named build runner. auto is Dagger when an engine is
// configured or off Linux (where the sandbox cannot run), else the sandbox.
func New(name string, o Options) (runner.Runner, error) {
	if o.CacheDir == "" {
		o.CacheDir = cache.DefaultDir()
	}
	switch name {
	case Auto, "":
		return auto(o)
	case Sandbox:
		r := &sandbox.Runner{Rootfs: o.Rootfs()}
		mode, err := r.Check()
		if err != nil {
			return nil, failure.Stage(event.StageBuild, fmt.Errorf("%w: the sandbox runner cannot run here: %w (see coach doctor)", ErrNoRunner, err))
		}
		logger(o.Log).Debug("sandbox runner", "mode", mode)
		return r, nil
	case Dagger:
		return newDagger(o)
	}
	return nil, failure.Request(fmt.Errorf("runner must be auto, sandbox or dagger, not %q", name))
}

// auto picks the runner and says why: Dagger off Linux (the sandbox
// needs it) or when an engine is configured and answers; the sandbox when
// none is configured, or when the configured one does not answer and the
// sandbox can run here (with a warning: --runner dagger fails instead).
func auto(o Options) (runner.Runner, error) {
	log := logger(o.Log)
	if runtime.GOOS != "linux" {
		log.Info("runner auto: dagger, since the sandbox needs Linux", "engine", dagger.Engine())
		return New(Dagger, o)
	}
	if !DaggerConfigured() {
		log.Debug("runner auto: the sandbox, since no Dagger engine is configured")
		return New(Sandbox, o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := dagger.Listening(ctx)
	cancel()
	if err == nil {
		log.Info("runner auto: dagger, since an engine is configured and listens", "engine", dagger.Engine())
		return New(Dagger, o)
	}
	sb, serr := New(Sandbox, o)
	if serr != nil {
		// Neither: the engine's failure is the one to fix.
		return New(Dagger, o)
	}
	log.Warn("runner auto: the configured Dagger engine does not answer, so the sandbox builds instead (--runner dagger would fail)", "engine", dagger.Engine(), "err", err)
	return sb, nil
}

// NewVerifyRunner picks where verify installs: a bubblewrap scratch root
// (auto, where bubblewrap is), else a container on the Dagger engine.
func NewVerify(name string, o Options) (runner.Runner, error) {
	if name == Auto || name == "" {
		name = Sandbox
		if _, err := exec.LookPath("bwrap"); err != nil || runtime.GOOS != "linux" {
			if DaggerConfigured() || runtime.GOOS != "linux" {
				name = Dagger
			}
		}
	}
	switch name {
	case Sandbox:
		return &sandbox.Runner{}, nil
	case Dagger:
		return newDagger(o)
	}
	return nil, failure.Request(fmt.Errorf("runner must be auto, sandbox or dagger, not %q", name))
}

// Rootfs is the sandbox's root filesystems of the options' cache.
func (o Options) Rootfs() *sandbox.Rootfs {
	return &sandbox.Rootfs{Dir: cache.New(o.CacheDir).Rootfs(), Logger: o.Log, Events: o.Events}
}

// newDagger returns the Dagger runner, which connects only when a
// component must be built.
func newDagger(o Options) (runner.Runner, error) {
	var engineLog io.Writer
	if o.EngineLog {
		l := logger(o.Log)
		engineLog = event.NewLineWriter(func(line string) {
			if strings.TrimSpace(line) != "" {
				l.Debug(line, "runner", Dagger)
			}
		})
	}
	r := dagger.New(engineLog)
	r.ConnectTimeout = o.ConnectTimeout
	if v := os.Getenv("COACH_DAGGER_CONNECT_TIMEOUT"); v != "" && o.ConnectTimeout == 0 {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, failure.Request(fmt.Errorf("COACH_DAGGER_CONNECT_TIMEOUT: %w", err))
		}
		r.ConnectTimeout = d
	}
	return r, nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// CanRun refuses, before anything is built, arches the runner cannot run
// programs of, with the fix: the sandbox runs a foreign arch under
// qemu-user through this machine's binfmt_misc, an engine under its host's
// emulation (a probe program says). A runner that cannot say is let be.
func CanRun(ctx context.Context, r runner.Runner, arches []string) error {
	p, ok := r.(runner.PlatformProber)
	if !ok || !slices.ContainsFunc(arches, func(a string) bool { return a != target.HostArch() }) {
		return nil
	}
	_, failed, err := p.Platforms(ctx, arches)
	if err != nil {
		return err
	}
	for _, a := range arches {
		if failed[a] != nil {
			return failure.Request(failed[a])
		}
	}
	return nil
}

// Sysroot is the sandbox's root filesystem of a target with the given
// build packages (the one its components built in, when they are the
// plan's: build.Packages), made if needed, or "" (system libraries judged
// by name) where there is none.
func Sysroot(ctx context.Context, t target.Target, arch string, packages []string, o Options) string {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if t.Bootstrap.Tool == "" {
		log.Warn("no root filesystem for this target here; system libraries are judged by name only", "target", t.Name)
		return ""
	}
	if o.CacheDir == "" {
		o.CacheDir = cache.DefaultDir()
	}
	dir, err := o.Rootfs().Ensure(ctx, t, cmp.Or(arch, runtime.GOARCH), packages)
	if err != nil {
		log.Warn("cannot make the target's root filesystem; system libraries are judged by name only", "target", t.Name, "err", err)
		return ""
	}
	return dir
}

// ImagePinner returns what resolves a project's target images to digests,
// or nil when images are not pinned this time.
func ImagePinner(mode string, log *slog.Logger) (func(context.Context, *spec.Project) (map[string]string, error), func(), error) {
	switch mode {
	case "never":
		return nil, func() {}, nil
	case "auto", "":
		if !DaggerConfigured() {
			return nil, func() {}, nil
		}
	case "always":
	default:
		return nil, nil, failure.Request(errors.New("--pin-images must be auto, always or never"))
	}
	r := dagger.New(nil)
	pin := func(ctx context.Context, p *spec.Project) (map[string]string, error) {
		out := map[string]string{}
		for _, name := range p.Targets {
			t, err := p.Target(name)
			if err != nil || t.Image == "" {
				continue
			}
			ref, err := r.PinImage(ctx, t.Image)
			if err != nil {
				if mode == "always" {
					return nil, err
				}
				// Kept as it was: an image this engine cannot reach is
				// not a reason to refuse the rest of the lock.
				log.Warn("image not pinned", "target", name, "image", t.Image, "err", err)
				continue
			}
			out[name] = ref
		}
		return out, nil
	}
	return pin, func() { r.Close() }, nil
}
