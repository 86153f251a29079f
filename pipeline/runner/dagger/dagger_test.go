package dagger

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/internal/userns"
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
echo "uid_map: $(awk '{print $1, $2, $3}' /proc/self/uid_map)"
cat /etc/shadow >/dev/null 2>&1 && echo "read /etc/shadow"
script=/coach-ctl/step; script=${script}s
cat "$script" >/dev/null 2>&1 && echo "read coach's script"
echo "sockets: $(for f in /proc/self/fd/*; do readlink "$f"; done | grep -c socket)"
grep -qs 'coach-ctl/step[s]' /proc/[0-9]*/cmdline && echo "saw coach's script run"
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
	// Root of a user namespace whose root is an unprivileged id of the
	// engine's host: no reading what only root may, no socket to coach.
	if !strings.Contains(out, fmt.Sprintf("uid_map: 0 %d %d\n", stepBase, userns.Size)) || strings.Contains(out, "read /etc/shadow") || strings.Contains(out, "read coach's script") {
		t.Errorf("the step holds the engine host's root:\n%s", out)
	}
	if !strings.Contains(out, "sockets: 0\n") {
		t.Errorf("the step holds a socket:\n%s", out)
	}
	// Its own PID namespace, and a /proc of it.
	if strings.Contains(out, "saw coach's script run") {
		t.Errorf("the step sees processes that are not its own:\n%s", out)
	}
}

// proxy forwards connections from a listener to the engine's socket, so a
// test can reach the same engine at another address; sent counts the bytes
// sent to the engine.
func proxy(t *testing.T, l net.Listener, socket string) (sent *atomic.Int64) {
	t.Helper()
	t.Cleanup(func() { l.Close() })
	sent = new(atomic.Int64)
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
				go io.Copy(countingWriter{e, sent}, c)
				io.Copy(c, e)
			}()
		}
	}()
	return sent
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
	if !strings.Contains(stdout.String(), "found-42 in /coach/src\nto-stderr\n") {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	if err := r.Shell(ctx, job, runner.Shell{Stdout: &stdout, Stderr: &stderr}); err == nil || !strings.Contains(err.Error(), "give a command after --") {
		t.Errorf("an interactive shell on the engine: %v", err)
	}
}

// TestLivenessAbandonsAHungEngine: an engine that stops answering (a
// ping that never returns) cancels the run with errStopped within the
// liveness timeout, and marks the engine dead.
func TestLivenessAbandonsAHungEngine(t *testing.T) {
	r := &Runner{LivenessInterval: 10 * time.Millisecond, LivenessTimeout: 50 * time.Millisecond}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	dead := false
	done := make(chan struct{})
	go func() {
		r.watchLiveness(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, func() { dead = true }, cancel)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("a hung engine was waited on for a minute")
	}
	if !errors.Is(context.Cause(ctx), errStopped) || !dead {
		t.Errorf("cause %v, dead %v", context.Cause(ctx), dead)
	}
	// An engine that answers is left alone.
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	go r.watchLiveness(ctx2, func(context.Context) error { return nil }, func() { t.Error("a live engine marked dead") }, cancel2)
	time.Sleep(200 * time.Millisecond)
	if ctx2.Err() != nil {
		t.Errorf("a live engine's run was cancelled: %v", context.Cause(ctx2))
	}
	cancel2(nil)
}

// TestEngineStepEndsWithItsConnection: when coach's end of the
// connections goes (coach killed, or the engine that tunnels them), the
// script on the engine kills the step and everything in its container at
// once, instead of leaving it to run on.
func TestEngineStepEndsWithItsConnection(t *testing.T) {
	r, tg := preparedDebian12(t)
	testHookStep = func(i int, h *hostEnd) { go func() { time.Sleep(time.Second); h.Close() }() }
	// (Close tells the script to stop, then closes the connections: the
	// engine's tunnel does not pass a close on to the container.)
	t.Cleanup(func() { testHookStep = nil })
	var log bytes.Buffer
	job := &runner.Job{Component: "orphan", Target: tg, Arch: "amd64", Source: t.TempDir(), Dir: ".", InstallDir: "/opt/x", Output: t.TempDir(), Scratch: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin"}, Log: &log, Steps: []runner.Step{runner.ShellStep("long", "sleep 60; echo survived")}}
	err := r.Run(context.Background(), job)
	// Killed, the script's exec fails (SIGKILL); left to run, it would
	// end after the step and exit 0.
	var se *runner.StepError
	if !errors.As(err, &se) || se.Err == nil || !strings.Contains(se.Err.Error(), "137") {
		t.Errorf("the step outlived its connection: %v\n%s", err, log.String())
	}
}

// TestEngineVerifyMachineIsConfined: what verify runs on the engine runs
// as root of a user namespace mapped to unprivileged ids, with no network
// unless asked, keeps its state from one script to the next, and a link
// it leaves where the next script's /dev or resolver goes takes nothing
// of coach's out of the machine.
func TestEngineVerifyMachineIsConfined(t *testing.T) {
	r := connect(t)
	tg, _ := target.Builtin("debian-12")
	ctx := context.Background()
	pkg := filepath.Join(t.TempDir(), "x.deb")
	os.WriteFile(pkg, []byte("not really a package"), 0o644)
	vm, err := r.Machine(ctx, tg, "amd64", []string{pkg})
	if err != nil {
		t.Fatal(err)
	}
	out, err := vm.Run(ctx, `echo "uid_map: $(awk '{print $1, $2, $3}' /proc/self/uid_map)"
echo "id: $(id -u)"
echo "interfaces: $(sed -n 's/^ *\([a-z0-9]*\):.*/\1/p' /proc/net/dev | sort | tr '\n' ' ')"
grep -qs 'coach-ctl/machin[e]' /proc/[0-9]*/cmdline && echo "saw coach's script run"
ls /coach/pkgs
touch /var/lib/coach-was-here
rm -f /etc/hosts && ln -s /coach-ctl/machine /etc/hosts
exit 3`, false)
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("the script's exit: %v\n%s", err, out)
	}
	want := []string{fmt.Sprintf("uid_map: 0 %d %d\n", stepBase, userns.Size), "id: 0\n", "interfaces: lo \n", "x.deb\n"}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in the machine's output:\n%s", w, out)
		}
	}
	if strings.Contains(out, "saw coach's script run") {
		t.Errorf("the machine sees coach's processes:\n%s", out)
	}
	// The next script: the state is kept, the resolver's files are the
	// engine's again, and the network is there when asked for.
	out, err = vm.Run(ctx, `test -e /var/lib/coach-was-here && echo kept
test -f /etc/hosts && ! test -L /etc/hosts && echo "hosts is a file"
echo "interfaces: $(sed -n 's/^ *\([a-z0-9]*\):.*/\1/p' /proc/net/dev | sort | tr '\n' ' ')"`, true)
	if err != nil || !strings.Contains(out, "kept\n") || !strings.Contains(out, "hosts is a file\n") || strings.Contains(out, "interfaces: lo \n") {
		t.Errorf("the second script: %v\n%s", err, out)
	}
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// TestEngineUploadsOnlyWhatItLacks: a second build of the same component
// in a new session (as the next coach run would) sends the engine almost
// nothing of its 8 MB of source and dependency layer: both are read from
// content-addressed paths, which the engine mirrors. And a source that
// changed where the engine compares only sizes and times (the same path,
// size and mtime, other bytes) is sent again, not served stale from the
// mirror.
func TestEngineUploadsOnlyWhatItLacks(t *testing.T) {
	host := os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST")
	socket, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Skip("no engine on a unix socket is configured (_EXPERIMENTAL_DAGGER_RUNNER_HOST=unix://...), so there is nothing to count through")
	}
	if _, err := net.Dial("unix", socket); err != nil {
		t.Skipf("the engine at %s is not running: %v", host, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sent := proxy(t, l, socket)
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "tcp://"+l.Addr().String())
	dep, work := t.TempDir(), t.TempDir()
	when := time.Unix(1700000000, 0)
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	os.MkdirAll(filepath.Join(dep, "embedded/lib"), 0o755)
	os.WriteFile(filepath.Join(dep, "embedded/lib/libdep.a"), random(4<<20), 0o644)
	build := func(blob []byte) (int64, string) {
		// The source laid out again, as a build unpacks it: the bytes
		// and times given, at the same place.
		src := filepath.Join(work, "src")
		os.RemoveAll(src)
		os.MkdirAll(src, 0o755)
		os.WriteFile(filepath.Join(src, "blob"), blob, 0o644)
		os.Chtimes(filepath.Join(src, "blob"), when, when)
		before := sent.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		r, err := Connect(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		tg, _ := target.Builtin("debian-12")
		if err := r.Prepare(ctx, tg, "amd64", nil); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		job := &runner.Job{Component: "big", Target: tg, Arch: "amd64", Source: src, Dir: ".", InstallDir: "/opt/x", Layers: []string{dep}, Output: t.TempDir(), Scratch: t.TempDir(),
			Env: []string{"PATH=/usr/bin:/bin"}, Log: &log,
			Steps: []runner.Step{runner.ShellStep("use", "sha256sum blob && mkdir -p /opt/x/bin && wc -c /opt/x/embedded/lib/libdep.a > /opt/x/bin/size")}}
		if err := r.Run(ctx, job); err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if _, err := os.Stat(filepath.Join(src, "blob")); err != nil {
			t.Errorf("the source is not back where it was: %v", err)
		}
		return sent.Load() - before, log.String()
	}
	blob := random(4 << 20)
	first, _ := build(blob)
	second, _ := build(blob)
	t.Logf("sent to the engine: %d bytes on the first build, %d on the second", first, second)
	if second > 1<<20 {
		t.Errorf("the second build sent %d bytes (the first %d): what the engine holds was sent again", second, first)
	}
	other := random(4 << 20)
	_, log := build(other)
	if sum := sha256.Sum256(other); !strings.Contains(log, hex.EncodeToString(sum[:])) {
		t.Errorf("the build saw a stale source (want sha256 %x):\n%s", sum, log)
	}
}

// TestFollowEndsWithItsContext: reading a step's output that never ends
// (an engine that stopped, with its connections open) returns when the
// run is cancelled, as liveness does; and a connection without the token
// is refused.
func TestFollowEndsWithItsContext(t *testing.T) {
	h, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dial := func(line string) net.Conn {
		c, err := net.Dial("tcp", h.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, line)
		return c
	}
	stranger := dial("not-the-token ctl\nstart 0\n")
	ctl := dial(h.token + " ctl\nstart 0\n")
	dial(h.token + " out 0\nsome output, and then nothing\n")
	ctx, cancel := context.WithCancelCause(context.Background())
	var started []int
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		_, err := h.follow(ctx, &out, func(i int) { started = append(started, i) })
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	cancel(errStopped)
	select {
	case err := <-done:
		if !errors.Is(err, errStopped) && err == nil {
			t.Errorf("follow ended with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("follow did not end with its context")
	}
	if len(started) != 1 || !strings.Contains(out.String(), "some output") {
		t.Errorf("started %v, output %q", started, out.String())
	}
	stranger.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := stranger.Read(make([]byte, 1)); err == nil {
		t.Error("a connection without the token was kept")
	}
	_ = ctl
}

// TestEngineStepDirIsEnteredAsTheStep: a step's directory is entered by
// the step's own root, so a link an earlier step left there (to the
// script's private directory) takes it nowhere the step could not go.
func TestEngineStepDirIsEnteredAsTheStep(t *testing.T) {
	r, tg := preparedDebian12(t)
	var log bytes.Buffer
	link := runner.ShellStep("link", "ln -s /coach-ctl/run private")
	follow := runner.ShellStep("follow", "pwd; ls")
	follow.Dir = "private"
	job := &runner.Job{Component: "linkdir", Target: tg, Arch: "amd64", Source: t.TempDir(), Dir: ".", InstallDir: "/opt/x", Output: t.TempDir(), Scratch: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin"}, Log: &log, Steps: []runner.Step{link, follow}}
	err := r.Run(context.Background(), job)
	var se *runner.StepError
	if !errors.As(err, &se) || se.Step != 1 || strings.Contains(log.String(), "/coach-ctl/run\n") {
		t.Errorf("the step entered the script's directory through a link: %v\n%s", err, log.String())
	}
}
