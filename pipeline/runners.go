package pipeline

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
)

// Runner names.
const (
	RunnerAuto    = "auto"
	RunnerSandbox = "sandbox"
	RunnerDagger  = "dagger"
)

// RunnerOptions say how to make a runner.
type RunnerOptions struct {
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

// DefaultCacheDir is $COACH_CACHE_DIR, else the user's cache directory +
// /coach.
func DefaultCacheDir() string { return fetch.DefaultDir() }

// RootfsDir is $COACH_ROOTFS_DIR, else rootfs/ in the cache: root
// filesystems are large and slow to make, so several caches may share them.
func RootfsDir(cacheDir string) string {
	if d := os.Getenv("COACH_ROOTFS_DIR"); d != "" {
		return d
	}
	return filepath.Join(cacheDir, "rootfs")
}

// DaggerConfigured reports whether the environment points at a Dagger
// engine: inside `dagger run`, or with an explicit runner host.
func DaggerConfigured() bool {
	return os.Getenv("DAGGER_SESSION_PORT") != "" || os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") != ""
}

// ErrNoRunner is a runner that cannot run here.
var ErrNoRunner = errors.New("no usable runner")

// NewRunner makes the named build runner. auto is Dagger when an engine is
// configured or off Linux (where the sandbox cannot run), else the sandbox.
func NewRunner(name string, o RunnerOptions) (runner.Runner, error) {
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir()
	}
	switch name {
	case RunnerAuto, "":
		if DaggerConfigured() || runtime.GOOS != "linux" {
			return NewRunner(RunnerDagger, o)
		}
		return NewRunner(RunnerSandbox, o)
	case RunnerSandbox:
		r := &sandbox.Runner{Rootfs: o.rootfs()}
		mode, err := r.Check()
		if err != nil {
			return nil, stage(event.StageBuild, fmt.Errorf("%w: the sandbox runner cannot run here: %w (see coach doctor)", ErrNoRunner, err))
		}
		logger(o.Log).Debug("sandbox runner", "mode", mode)
		return r, nil
	case RunnerDagger:
		return newDagger(o)
	}
	return nil, failure.Request(fmt.Errorf("runner must be auto, sandbox or dagger, not %q", name))
}

// NewVerifyRunner picks where verify installs: a bubblewrap scratch root
// (auto, where bubblewrap is), else a container on the Dagger engine.
func NewVerifyRunner(name string, o RunnerOptions) (runner.Runner, error) {
	if name == RunnerAuto || name == "" {
		name = RunnerSandbox
		if _, err := exec.LookPath("bwrap"); err != nil || runtime.GOOS != "linux" {
			if DaggerConfigured() || runtime.GOOS != "linux" {
				name = RunnerDagger
			}
		}
	}
	switch name {
	case RunnerSandbox:
		return &sandbox.Runner{}, nil
	case RunnerDagger:
		return newDagger(o)
	}
	return nil, failure.Request(fmt.Errorf("runner must be auto, sandbox or dagger, not %q", name))
}

func (o RunnerOptions) rootfs() *sandbox.Rootfs {
	return &sandbox.Rootfs{Dir: RootfsDir(o.CacheDir), Logger: o.Log, Events: o.Events}
}

// newDagger returns the Dagger runner, which connects only when a
// component must be built.
func newDagger(o RunnerOptions) (runner.Runner, error) {
	var engineLog io.Writer
	if o.EngineLog {
		l := logger(o.Log)
		engineLog = event.NewLineWriter(func(line string) {
			if strings.TrimSpace(line) != "" {
				l.Debug(line, "runner", RunnerDagger)
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
