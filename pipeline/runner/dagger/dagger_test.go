package dagger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

func TestInstallCommand(t *testing.T) {
	d12, _ := target.Builtin("debian-12")
	got := InstallCommand(d12, []string{"autoconf", "build-essential"})
	if !strings.HasPrefix(got, "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ") || strings.Count(got, "build-essential") != 1 || !strings.Contains(got, "autoconf") {
		t.Errorf("deb: %s", got)
	}
	el9, _ := target.Builtin("el9")
	if got := InstallCommand(el9, []string{"autoconf"}); !strings.HasPrefix(got, "dnf -y --setopt=install_weak_deps=False install ") || !strings.Contains(got, "gcc") {
		t.Errorf("rpm: %s", got)
	}
}

// connect returns a runner when an engine is reachable, and skips otherwise.
func connect(t *testing.T) *Runner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := Connect(ctx, nil)
	if err != nil {
		t.Skipf("no Dagger engine is reachable, so the engine tests are skipped (run under `dagger run go test`, or set _EXPERIMENTAL_DAGGER_RUNNER_HOST; offline also _EXPERIMENTAL_DAGGER_CLI_BIN): %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestEngineBuild runs a two-step build with a dependency layer on a real
// engine: the layer holds only what the steps added, and a failing step
// becomes a StepError with its exit code.
func TestEngineBuild(t *testing.T) {
	r := connect(t)
	ctx := context.Background()
	tg, _ := target.Builtin("debian-12")
	if err := r.Prepare(ctx, tg, "amd64", nil); err != nil {
		t.Fatal(err)
	}
	dep, src, out := t.TempDir(), t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(dep, "embedded/include"), 0o755)
	os.WriteFile(filepath.Join(dep, "embedded/include/dep.h"), []byte("#define DEP 42\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.c"), []byte("#include <dep.h>\nint main(void){return DEP-42;}\n"), 0o644)
	var log bytes.Buffer
	job := &runner.Job{Component: "app", Target: tg, Arch: "amd64", Source: src, Dir: ".", InstallDir: "/opt/x", Layers: []string{dep}, Output: out, Scratch: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin", "CPPFLAGS=-I/opt/x/embedded/include"}, Log: &log,
		Steps: []runner.Step{runner.ShellStep("compile", "cc $CPPFLAGS -o app main.c"), runner.ShellStep("install", "mkdir -p /opt/x/bin && cp app /opt/x/bin/")}}
	if err := r.Run(ctx, job); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if _, err := os.Stat(filepath.Join(out, "bin/app")); err != nil {
		t.Errorf("layer lacks bin/app: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "embedded/include/dep.h")); err == nil {
		t.Error("the layer holds the dependency's file")
	}
	job.Output, job.Steps = t.TempDir(), []runner.Step{runner.ShellStep("fail", "exit 7")}
	var se *runner.StepError
	if err := r.Run(ctx, job); !errors.As(err, &se) || se.ExitCode != 7 {
		t.Errorf("failing step: %v", err)
	}
}
