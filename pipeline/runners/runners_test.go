package runners

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/runner/fake"
	"github.com/coach-build/coach/pipeline/target"
)

// engineRunner is a fake whose engine says which arches it runs.
type engineRunner struct {
	fake.Runner
	failed map[string]error
	asked  [][]string
}

func (r *engineRunner) Platforms(_ context.Context, arches []string) (string, map[string]error, error) {
	r.asked = append(r.asked, arches)
	return "linux/" + target.HostArch(), r.failed, nil
}

// TestCanRunAsksTheEngine: a foreign arch the engine cannot run is refused
// before anything builds, with the runner's fix; the machine's own arch does not
// cost a probe.
func TestCanRunAsksTheEngine(t *testing.T) {
	foreign := "arm64"
	if target.HostArch() == "arm64" {
		foreign = "amd64"
	}
	r := &engineRunner{failed: map[string]error{foreign: errors.New("a linux/" + foreign + " program did not run; register qemu-user's interpreters (apt-get install qemu-user-static) on the engine's host")}}
	err := CanRun(context.Background(), r, []string{target.HostArch(), foreign})
	var re *failure.RequestError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "qemu-user-static") || !strings.Contains(err.Error(), "did not run") {
		t.Fatalf("canRun = %v; want a request error with the fix", err)
	}
	r.asked = nil
	if err := CanRun(context.Background(), r, []string{target.HostArch()}); err != nil || len(r.asked) != 0 {
		t.Errorf("the host's arch: %v, probes %v", err, r.asked)
	}
	r.failed = map[string]error{}
	if err := CanRun(context.Background(), r, []string{foreign}); err != nil {
		t.Errorf("an engine that runs %s was refused: %v", foreign, err)
	}
}

// TestAutoSaysWhyAndFallsBack: auto with an engine configured that does
// not answer builds with the sandbox (usable here), with a warning that
// says why; with one that listens it is Dagger, and says so.
func TestAutoSaysWhyAndFallsBack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the sandbox is Linux's")
	}
	if _, err := New(Sandbox, Options{CacheDir: t.TempDir()}); err != nil {
		t.Skipf("the sandbox cannot run here: %v", err)
	}
	dir := t.TempDir()
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix://"+filepath.Join(dir, "nobody.sock"))
	r, err := New(Auto, Options{CacheDir: t.TempDir(), Log: log})
	if err != nil || r.Name() != Sandbox || !strings.Contains(logs.String(), "the configured Dagger engine does not answer, so the sandbox builds instead") {
		t.Errorf("no engine: runner %v, err %v, log:\n%s", r, err, logs.String())
	}

	sock := filepath.Join(dir, "engine.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	logs.Reset()
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix://"+sock)
	r, err = New(Auto, Options{CacheDir: t.TempDir(), Log: log})
	if err != nil || r.Name() != Dagger || !strings.Contains(logs.String(), "runner auto: dagger, since an engine is configured and listens") {
		t.Errorf("an engine: runner %v, err %v, log:\n%s", r, err, logs.String())
	}
}
