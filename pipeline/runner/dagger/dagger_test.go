package dagger

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

func TestInstallCommand(t *testing.T) {
	d12, _ := target.Builtin("debian-12")
	got := InstallCommand(d12, []string{"autoconf", "build-essential", "autoconf"})
	if got != "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends autoconf build-essential" {
		t.Errorf("deb: %s", got)
	}
	el9, _ := target.Builtin("el9")
	if got := InstallCommand(el9, []string{"autoconf"}); got != "dnf -y --setopt=install_weak_deps=False install autoconf && dnf clean all" {
		t.Errorf("rpm: %s", got)
	}
}

// A component's environment is the target's base (its image and
// toolchain) and its own packages: another component's packages do not
// change it, and the order or repetition of its own do not either.
func TestEnvironmentIDPerComponent(t *testing.T) {
	d12, _ := target.Builtin("debian-12")
	r := New(nil)
	base := r.EnvironmentID(d12, "amd64", nil)
	if !strings.Contains(base, "build-essential") || strings.Contains(base, " + ") {
		t.Errorf("base: %s", base)
	}
	auto := r.EnvironmentID(d12, "amd64", []string{"libtool", "autoconf"})
	if auto == base || !strings.HasPrefix(auto, base+" + ") || auto != r.EnvironmentID(d12, "amd64", []string{"autoconf", "libtool", "autoconf"}) {
		t.Errorf("with packages: %s", auto)
	}
	if r.EnvironmentID(d12, "arm64", nil) == base {
		t.Error("the architecture is not in the environment")
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

// preparedDebian12 is a runner on the engine (or a skip) with debian-12
// prepared for amd64.
func preparedDebian12(t *testing.T) (*Runner, target.Target) {
	t.Helper()
	r := connect(t)
	tg, _ := target.Builtin("debian-12")
	if err := r.Prepare(context.Background(), tg, "amd64", nil); err != nil {
		t.Fatal(err)
	}
	return r, tg
}

// TestEngineBuild runs a two-step build with a dependency layer on a real
// engine: the layer holds only what the steps added, and a failing step
// becomes a StepError with its exit code.
func TestEngineBuild(t *testing.T) {
	r, tg := preparedDebian12(t)
	ctx := context.Background()
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

// TestEngineStepHasNoNetwork: a build step on the engine sees only a
// loopback, reaches neither the outside nor the engine host through the
// bridge, cannot make a namespace of its own to get out, and finds the
// root read-only but for the install dir, /tmp, HOME and the source: the
// sandbox's promises.
func TestEngineStepHasNoNetwork(t *testing.T) {
	r, tg := preparedDebian12(t)
	ctx := context.Background()
	// The bridge's gateway, as the container's routing table gives it
	// to a step without the defence.
	probe := `set +e
echo "interfaces: $(sed -n 's/^ *\([a-z0-9]*\):.*/\1/p' /proc/net/dev | sort | tr '\n' ' ')"
echo "sysfs: $(ls /sys/class/net | tr '\n' ' ')"
for addr in 10.87.0.1/80 1.1.1.1/80 127.0.0.1/5000; do
  if bash -c "exec 3<>/dev/tcp/$addr" 2>/dev/null; then echo "connected to $addr"; fi
done
unshare -n true 2>/dev/null && echo "made a network namespace"
touch /usr/coach-probe 2>/dev/null && echo "wrote /usr"
touch /etc/coach-probe 2>/dev/null && echo "wrote /etc"
touch /opt/x/written /tmp/written "$HOME/written" written && echo "wrote the install dir, /tmp, HOME and the source"
exit 0`
	var log bytes.Buffer
	job := &runner.Job{Component: "probe", Target: tg, Arch: "amd64", Source: t.TempDir(), Dir: ".", InstallDir: "/opt/x", Output: t.TempDir(), Scratch: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin", "HOME=/coach/home"}, Log: &log, Steps: []runner.Step{runner.ShellStep("probe", probe)}}
	if err := r.Run(ctx, job); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	out := log.String()
	if !strings.Contains(out, "interfaces: lo \n") || !strings.Contains(out, "sysfs: lo \n") || strings.Contains(out, "connected to") || strings.Contains(out, "made a network namespace") {
		t.Errorf("the step has the network or can get it:\n%s", out)
	}
	if strings.Contains(out, "wrote /usr") || strings.Contains(out, "wrote /etc") || !strings.Contains(out, "wrote the install dir, /tmp, HOME and the source") {
		t.Errorf("the root is writable, or what a step must write is not:\n%s", out)
	}
}

// proxy forwards connections from a listener to the engine's socket, so a
// test can reach the same engine at another address.
func proxy(t *testing.T, l net.Listener, socket string) {
	t.Helper()
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				e, err := net.Dial("unix", socket)
				if err != nil {
					return
				}
				defer e.Close()
				go io.Copy(e, c)
				io.Copy(c, e)
			}()
		}
	}()
}

// TestRemoteEngine points coach at an engine that is not the local default:
// another socket, and a tcp:// address (the way to a shared engine on
// another machine), and runs a real query through each.
func TestRemoteEngine(t *testing.T) {
	host := os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST")
	socket, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Skip("no engine on a unix socket is configured (_EXPERIMENTAL_DAGGER_RUNNER_HOST=unix://...), so there is nothing to reach by another address")
	}
	if _, err := net.Dial("unix", socket); err != nil {
		t.Skipf("the engine at %s is not running: %v", host, err)
	}
	other := filepath.Join(t.TempDir(), "other.sock")
	ul, err := net.Listen("unix", other)
	if err != nil {
		t.Fatal(err)
	}
	proxy(t, ul, socket)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy(t, tl, socket)
	for _, addr := range []string{"unix://" + other, "tcp://" + tl.Addr().String()} {
		t.Run(addr[:strings.Index(addr, ":")], func(t *testing.T) {
			t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", addr)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r, err := Connect(ctx, nil)
			if err != nil {
				t.Fatalf("connect through %s: %v", addr, err)
			}
			defer r.Close()
			if Engine() != addr {
				t.Errorf("Engine() = %q, want %q", Engine(), addr)
			}
			version, failed, err := r.Ping(ctx, []string{"docker.io/library/debian:bookworm"})
			if err != nil || len(failed) != 0 {
				t.Fatalf("a query through %s: %v %v", addr, err, failed)
			}
			t.Logf("%s: engine %s answered and pulled debian:bookworm", addr, version)
		})
	}
	// Nothing listening there: a plain error at once.
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "tcp://127.0.0.1:1")
	start := time.Now()
	if _, err := Connect(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "no engine is listening") {
		t.Errorf("a dead address: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a dead address took %s to fail", d)
	}
}

// TestPinImage resolves a target's image to its digest and builds the
// target's environment from the digest.
func TestPinImage(t *testing.T) {
	r := connect(t)
	ctx := context.Background()
	tg, _ := target.Builtin("debian-12")
	pin, err := r.PinImage(ctx, tg.Image)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pin, "docker.io/library/debian") || !strings.Contains(pin, "@sha256:") {
		t.Fatalf("pin = %q", pin)
	}
	again, err := r.PinImage(ctx, pin)
	if err != nil || again != pin {
		t.Errorf("pinning the pin: %q %v", again, err)
	}
	tg.Image = pin
	if err := r.Prepare(ctx, tg, "amd64", nil); err != nil {
		t.Fatalf("prepare from %s: %v", pin, err)
	}
	t.Logf("%s", pin)
}

// timedLog records when each line arrived.
type timedLog struct {
	mu    sync.Mutex
	buf   strings.Builder
	times map[string]time.Time
}

func (l *timedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if _, ok := l.times[line]; !ok && line != "" {
			l.times[line] = time.Now()
		}
	}
	return len(p), nil
}

// TestEngineStreamsOutput: a step that prints a line every second shows
// each line while it runs, not when it ends, and the output is whole and in
// order at the end.
func TestEngineStreamsOutput(t *testing.T) {
	r, tg := preparedDebian12(t)
	ctx := context.Background()
	log := &timedLog{times: map[string]time.Time{}}
	job := &runner.Job{Component: "ticker", Target: tg, Arch: "amd64", Source: t.TempDir(), Dir: ".", InstallDir: "/opt/x", Output: t.TempDir(), Scratch: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin"}, Log: log,
		Steps: []runner.Step{runner.ShellStep("tick", "for i in 1 2 3 4 5; do echo tick $i; sleep 1; done; echo err >&2; echo done")}}
	if err := r.Run(ctx, job); err != nil {
		t.Fatalf("%v\n%s", err, log.buf.String())
	}
	if got := log.buf.String(); !strings.Contains(got, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\nerr\ndone\n") {
		t.Errorf("the output is not whole and in order:\n%s", got)
	}
	first, last := log.times["tick 1"], log.times["done"]
	if first.IsZero() || last.IsZero() {
		t.Fatalf("lines missing: %v", log.times)
	}
	// Written at once when the step ended, they would arrive together.
	if gap := last.Sub(first); gap < 2*time.Second {
		t.Errorf("tick 1 arrived %s before the last line: the output is not streamed", gap)
	} else {
		t.Logf("tick 1 arrived %s before the last line of the 5-second step", gap.Round(100*time.Millisecond))
	}
}

// TestPrepareFailureNamesTheTarget: a build package that does not exist
// fails Prepare with the target, the image and apt's own words.
func TestPrepareFailureNamesTheTarget(t *testing.T) {
	r := connect(t)
	tg, _ := target.Builtin("debian-12")
	err := r.Prepare(context.Background(), tg, "amd64", []string{"coach-no-such-package"})
	if err == nil {
		t.Fatal("installing a package that does not exist succeeded")
	}
	for _, want := range []string{"prepare debian-12", tg.Image, "coach-no-such-package", "exited with code"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
}

// TestImageWithoutTheArchIsRefused: an image with no linux/arm64 variant
// (the amd64-only tag .ci/dagger-arm64-image keeps beside the
// multi-platform one) is refused for arm64 before anything is built,
// naming the image and the platform; the engine would otherwise run its
// amd64 programs and the package would hold x86-64 code.
func TestImageWithoutTheArchIsRefused(t *testing.T) {
	r := connect(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the amd64-only image is this amd64 engine's")
	}
	tg, _ := target.Builtin("debian-12")
	tg.Image = tg.Image[:strings.LastIndex(tg.Image, ":")] + ":bookworm-amd64" // the target's repository, the amd64-only tag
	if _, err := r.PinImage(context.Background(), tg.Image); err != nil {
		t.Skipf("the engine's registry has no amd64-only tag %s (.ci/dagger-arm64-image adds it): %v", tg.Image, err)
	}
	err := r.Prepare(context.Background(), tg, "arm64", nil)
	if err == nil || !strings.Contains(err.Error(), "the image "+tg.Image+" has no linux/arm64 variant") || !strings.Contains(err.Error(), "EM_X86_64") {
		t.Fatalf("an amd64-only image for arm64: %v", err)
	}
}

// TestEngineKeepsFailedState: with KeepFailed, the failed container's
// source tree (what configure left, say) comes back to the host; license
// files a successful build generates come back too.
func TestEngineKeepsFailedState(t *testing.T) {
	r, tg := preparedDebian12(t)
	ctx := context.Background()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "configure"), []byte("#!/bin/sh\n"), 0o755)
	var log bytes.Buffer
	job := &runner.Job{Component: "x", Target: tg, Arch: "amd64", Source: src, Dir: ".", InstallDir: "/opt/x", Output: t.TempDir(), Scratch: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin"}, Log: &log, KeepFailed: true,
		Steps: []runner.Step{runner.ShellStep("configure", "echo 'checking for foo... no' > config.log; exit 1")}}
	var se *runner.StepError
	if err := r.Run(ctx, job); !errors.As(err, &se) || se.ExitCode != 1 {
		t.Fatalf("the failing step: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(src, "config.log")); err != nil || !strings.Contains(string(b), "checking for foo") {
		t.Errorf("the failed build's config.log is not on the host: %q %v", b, err)
	}
	src2 := t.TempDir()
	job = &runner.Job{Component: "y", Target: tg, Arch: "amd64", Source: src2, Dir: ".", InstallDir: "/opt/y", Output: t.TempDir(), Scratch: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin"}, Log: &log, Collect: []string{"LICENSE"},
		Steps: []runner.Step{runner.ShellStep("generate", "echo 'generated license text' > LICENSE")}}
	if err := r.Run(ctx, job); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(src2, "LICENSE")); err != nil || string(b) != "generated license text\n" {
		t.Errorf("the generated license file did not come back: %q %v", b, err)
	}
}

// TestEngineShell runs a command in a job's build environment on the
// engine: it sees the source, the dependency's layer at the install dir
// and the steps' environment; its output and exit status come back, and
// an interactive shell is refused with the reason.
func TestEngineShell(t *testing.T) {
	r, tg := preparedDebian12(t)
	ctx := context.Background()
	dep, src := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(dep, "embedded/include"), 0o755)
	os.WriteFile(filepath.Join(dep, "embedded/include/dep.h"), []byte("#define DEP 42\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.c"), []byte("#include <dep.h>\nint main(void){return DEP-42;}\n"), 0o644)
	job := &runner.Job{Component: "app", Target: tg, Arch: "amd64", Source: src, Dir: ".", InstallDir: "/opt/x", Layers: []string{dep}, Output: t.TempDir(), Scratch: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin", "CPPFLAGS=-I/opt/x/embedded/include"}, Log: io.Discard}
	var stdout, stderr bytes.Buffer
	err := r.Shell(ctx, job, runner.Shell{Argv: []string{"/bin/sh", "-c", `cc $CPPFLAGS -fsyntax-only main.c && echo "found-$((40+2)) in $(pwd)"; echo to-stderr >&2; exit 5`}, Stdout: &stdout, Stderr: &stderr})
	var se *runner.ShellExitError
	if !errors.As(err, &se) || se.Code != 5 {
		t.Errorf("the command's status: %v, want 5", err)
	}
	if !strings.Contains(stdout.String(), "found-42 in /coach/src") || !strings.Contains(stderr.String(), "to-stderr") {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	if err := r.Shell(ctx, job, runner.Shell{Stdout: &stdout, Stderr: &stderr}); err == nil || !strings.Contains(err.Error(), "give a command after --") {
		t.Errorf("an interactive shell on the engine: %v", err)
	}
}
