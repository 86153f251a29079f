// Package dagger runs builds on a Dagger engine (dagger.io/dagger). It is a
// thin adapter: the target's image with its packages installed in a cached
// step, the dependency layers as Directories at the install dir, the source
// from the host, all of a component's steps in one WithExec (steps.go), and
// the layer the Diff of the install dir, exported to the host. Everything
// else is shared with the sandbox runner in pipeline/build. Only this
// package imports the Dagger SDK.
//
// It keeps the sandbox's semantics: no step holds the engine host's root or
// the network, a step sees exactly the job's environment (nothing from the
// image or the engine's session), its output streams whole with stdout and
// stderr interleaved, every step really runs (coach's layer cache decides
// what to rebuild, not the engine's), a build that deletes a dependency's
// file fails, and license files the build made come back to the host.
package dagger

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dg "dagger.io/dagger"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/binfmt"
	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/internal/userns"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

// DefaultConnectTimeout bounds how long connecting may take. An engine that
// is not running at a unix:// or tcp:// address is found out at once (see
// probe); this bounds an engine that is up but does not answer.
const DefaultConnectTimeout = 90 * time.Second

// Runner builds in containers on a Dagger engine. It connects on first use,
// so a build whose every component is cached needs no engine.
type Runner struct {
	// LogOutput receives the engine's progress; nil drops it.
	LogOutput io.Writer
	// ConnectTimeout bounds the connection (DefaultConnectTimeout if 0);
	// it no longer applies once connected.
	ConnectTimeout time.Duration
	// LivenessInterval and LivenessTimeout bound how long a build waits
	// on an engine that stopped answering (DefaultLivenessInterval and
	// DefaultLivenessTimeout if 0).
	LivenessInterval, LivenessTimeout time.Duration

	mu      sync.Mutex
	client  *dg.Client
	connErr error
	cancel  context.CancelFunc
	bases   map[string]*dg.Container
	// dead is set when the engine failed or stopped answering: Close
	// does not wait for it.
	dead bool
	// native is the engine's own architecture (Go's name), once asked.
	native string
	// archOK holds the images (image + arch) whose programs were found
	// to be of the arch, so that each package set's Prepare does not
	// export /bin/sh again.
	archOK map[string]bool
}

var (
	_ runner.Runner          = (*Runner)(nil)
	_ runner.Sheller         = (*Runner)(nil)
	_ runner.Environment     = (*Runner)(nil)
	_ runner.PlatformProber  = (*Runner)(nil)
	_ runner.TargetScheduler = (*Runner)(nil)
	_ runner.Verifier        = (*Runner)(nil)
	_ runner.VerifyMachine   = (*Machine)(nil)
)

// SchedulesTargets says the engine schedules the work: a run gives it
// every target at once.
func (r *Runner) SchedulesTargets() {}

// VerifyEnvironmentID is the image a package of t is verified in.
func (r *Runner) VerifyEnvironmentID(t target.Target, arch string) string {
	return "dagger " + t.Image + " " + arch
}

// New returns a runner that connects when it is first needed.
func New(logOutput io.Writer) *Runner {
	return &Runner{LogOutput: logOutput, bases: map[string]*dg.Container{}, archOK: map[string]bool{}}
}

// Connect returns a runner connected now: inside `dagger run`
// (DAGGER_SESSION_PORT), or through the dagger CLI, which honours
// _EXPERIMENTAL_DAGGER_RUNNER_HOST.
func Connect(ctx context.Context, logOutput io.Writer) (*Runner, error) {
	r := New(logOutput)
	if _, err := r.connect(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Engine names the engine the SDK will use, for messages.
func Engine() string {
	if h := os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST"); h != "" {
		return h
	}
	if os.Getenv("DAGGER_SESSION_PORT") != "" {
		return "the `dagger run` session"
	}
	return "the default engine (the dagger CLI's)"
}

// connect makes the session once. The session lives until Close: the SDK
// ties its session process to the context it is given, so that context is
// the runner's own, cancelled by the deadline only while Connect has not
// returned.
func (r *Runner) connect(ctx context.Context) (*dg.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil || r.connErr != nil {
		return r.client, r.connErr
	}
	timeout := r.ConnectTimeout
	if timeout == 0 {
		timeout = DefaultConnectTimeout
	}
	if err := probe(ctx); err != nil {
		r.connErr = connectError(err)
		return nil, r.connErr
	}
	sess, cancel := context.WithCancel(context.Background())
	opts := []dg.ClientOpt{}
	if r.LogOutput != nil {
		opts = append(opts, dg.WithLogOutput(r.LogOutput))
	}
	// The SDK waits for its session process up to five minutes whatever
	// its context says, so the wait is ours: Connect runs aside, and a
	// deadline or a cancelled ctx stops waiting for it. A session process
	// left behind ends when coach does (its stdin closes).
	type conn struct {
		c   *dg.Client
		err error
	}
	done := make(chan conn, 1)
	go func() {
		c, err := dg.Connect(sess, opts...)
		if err == nil {
			// One real query: Connect can return before an engine answers.
			if _, err = c.Version(sess); err != nil {
				c.Close()
			}
		}
		done <- conn{c, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var res conn
	select {
	case res = <-done:
	case <-timer.C:
		res.err = fmt.Errorf("no answer within %s", timeout)
	case <-ctx.Done():
		res.err = ctx.Err()
	}
	if res.err != nil {
		cancel()
		r.connErr = connectError(res.err)
		return nil, r.connErr
	}
	c := res.c
	r.client, r.cancel = c, cancel
	return c, nil
}

// probe dials the engine's address when it is a socket or a TCP address,
// so that an engine that is not running fails in milliseconds instead of
// after the SDK's retries.
// Listening reports whether an engine listens at the configured unix://
// or tcp:// address (nil for the addresses only the SDK can reach:
// docker-container://, kube-pod://, a `dagger run` session). It opens a
// connection and closes it: milliseconds, no session.
func Listening(ctx context.Context) error { return probe(ctx) }

func probe(ctx context.Context) error {
	host := os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST")
	network, addr := "", ""
	switch {
	case strings.HasPrefix(host, "unix://"):
		network, addr = "unix", strings.TrimPrefix(host, "unix://")
	case strings.HasPrefix(host, "tcp://"):
		network, addr = "tcp", strings.TrimPrefix(host, "tcp://")
	default:
		return nil // docker-image://, kube-pod://, a `dagger run` session: the SDK's business
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("no engine is listening (%v)", err)
	}
	return conn.Close()
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// connectError is one plain line: where coach looked, and why it failed.
func connectError(err error) error {
	return fmt.Errorf("connect to the Dagger engine at %s: %s; start the engine, or point _EXPERIMENTAL_DAGGER_RUNNER_HOST at one", Engine(), firstLine(err))
}

// Close ends the engine session, if there is one.
func (r *Runner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if r.client != nil {
		// The SDK waits up to five minutes for its session process to
		// drain; an engine that died never answers, so the wait is bounded.
		wait := closeTimeout
		if r.dead {
			wait = deadCloseTimeout
		}
		done := make(chan error, 1)
		go func(c *dg.Client) { done <- c.Close() }(r.client)
		select {
		case err = <-done:
		case <-time.After(wait):
			if !r.dead {
				err = fmt.Errorf("the Dagger session did not end within %s", wait)
			}
		}
		r.client = nil
	}
	if r.cancel != nil {
		r.cancel()
	}
	return err
}

// closeTimeout bounds Close; deadCloseTimeout, when the engine failed (its
// session process ends with coach).
const (
	closeTimeout     = 15 * time.Second
	deadCloseTimeout = time.Second
)

func (r *Runner) Name() string { return "dagger" }

// EnvironmentID is the environment a component builds in: the target's
// image (by digest when the lock file pins it, coach lock, else by its
// tag) with the toolchain installed, then the component's own build
// packages, as the sandbox keys it (one base per target, a layer of
// packages per set).
func (r *Runner) EnvironmentID(t target.Target, arch string, packages []string) string {
	id := "dagger " + t.Image + " " + arch + " " + InstallCommand(t, toolchain(t))
	if pkgs := runner.PackageSet(packages); len(pkgs) > 0 {
		id += " + " + InstallCommand(t, pkgs)
	}
	return id
}

// toolchain is what the runner installs in every build container: the
// target's toolchain, and on rpm targets util-linux (for confine;
// Debian's is essential).
func toolchain(t target.Target) []string {
	if t.Format == target.FormatRPM && !slices.Contains(t.Toolchain, "util-linux") {
		return append(slices.Clone(t.Toolchain), "util-linux") // unshare, mount, setpriv
	}
	return t.Toolchain
}

// InstallCommand is the shell command that installs packages in a
// target's image.
func InstallCommand(t target.Target, packages []string) string {
	list := strings.Join(runner.PackageSet(packages), " ")
	if t.Format == target.FormatRPM {
		return "dnf -y --setopt=install_weak_deps=False install " + list + " && dnf clean all"
	}
	return "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " + list
}

// cacheDirs are the package manager caches kept across builds.
func cacheDirs(t target.Target) []string {
	if t.Format == target.FormatRPM {
		return []string{"/var/cache/dnf"}
	}
	return []string{"/var/cache/apt/archives", "/var/lib/apt/lists"}
}

// PinImage resolves an image reference to one pinned by digest
// (repository@sha256:...), as the engine's registry serves it now.
func (r *Runner) PinImage(ctx context.Context, image string) (string, error) {
	c, err := r.connect(ctx)
	if err != nil {
		return "", err
	}
	ref, err := c.Container().From(image).ImageRef(ctx)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %s", image, firstLine(err))
	}
	if !strings.Contains(ref, "@sha256:") {
		return "", fmt.Errorf("resolve %s: the engine gave %q, with no digest", image, ref)
	}
	return ref, nil
}

// Ping connects and pulls each image, for coach doctor: which engine
// answered, and which images it could not get.
func (r *Runner) Ping(ctx context.Context, images []string) (version string, failed map[string]error, err error) {
	c, err := r.connect(ctx)
	if err != nil {
		return "", nil, err
	}
	if version, err = c.Version(ctx); err != nil {
		return "", nil, err
	}
	failed = map[string]error{}
	for _, img := range images {
		if _, err := c.Container().From(img).Sync(ctx); err != nil {
			failed[img] = errors.New(firstLine(err))
		}
	}
	return version, failed, nil
}

// Platforms says which architectures the engine runs programs of: its own
// platform, and for each other arch of arches whether a probe program of
// that arch (binfmt.Probe, in an empty container) runs, which needs the
// engine's host to emulate it (qemu-user through binfmt_misc).
func (r *Runner) Platforms(ctx context.Context, arches []string) (native string, failed map[string]error, err error) {
	c, err := r.connect(ctx)
	if err != nil {
		return "", nil, err
	}
	p, err := c.DefaultPlatform(ctx)
	if err != nil {
		return "", nil, err
	}
	native = string(p)
	failed = map[string]error{}
	for _, arch := range arches {
		if strings.HasSuffix(native, "/"+arch) {
			continue
		}
		prog, err := binfmt.Probe(arch)
		if err != nil {
			failed[arch] = err
			continue
		}
		// From a file: a string argument of the API is text, which
		// would mangle the program's bytes.
		dir, err := os.MkdirTemp("", "coach-probe-")
		if err != nil {
			return "", nil, err
		}
		defer os.RemoveAll(dir)
		file := filepath.Join(dir, "probe-"+arch)
		if err := os.WriteFile(file, prog, 0o755); err != nil {
			return "", nil, err
		}
		_, err = c.Container(dg.ContainerOpts{Platform: dg.Platform(target.LookupArch(arch).OCIPlatform())}).
			WithFile("/coach-probe", c.Host().File(file), dg.ContainerWithFileOpts{Permissions: 0o755}).
			WithEnvVariable("COACH_PROBE", strconv.FormatInt(time.Now().UnixNano(), 10)). // run now, not from the engine's cache
			WithExec([]string{"/coach-probe"}).
			Sync(ctx)
		if err != nil {
			failed[arch] = fmt.Errorf("a linux/%s program did not run on the engine (%s): %s; register qemu-user's interpreters with the F flag on the engine's host (apt-get install qemu-user-static binfmt-support; or docker run --privileged --rm tonistiigi/binfmt --install %s), then coach doctor", arch, native, firstLine(err), arch)
		}
	}
	return native, failed, nil
}

var gqlMessage = regexp.MustCompile(`"message":"((?:[^"\\]|\\.)*)"`)

// firstLine is an engine error as one plain line: no colours, and the
// message of a GraphQL error body rather than the body.
func firstLine(err error) string {
	msg := strings.TrimSpace(ansi.ReplaceAllString(err.Error(), ""))
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if m := gqlMessage.FindStringSubmatch(msg); m != nil {
		if u, err := strconv.Unquote(`"` + m[1] + `"`); err == nil {
			msg = u
		}
	}
	return msg
}

func (r *Runner) Prepare(ctx context.Context, t target.Target, arch string, packages []string) error {
	if t.Image == "" {
		return fmt.Errorf("target %s has no image for the dagger runner", t.Name)
	}
	c, err := r.connect(ctx)
	if err != nil {
		return err
	}
	ctr := c.Container(dg.ContainerOpts{Platform: dg.Platform(target.LookupArch(arch).OCIPlatform())}).From(t.Image)
	r.mu.Lock()
	checked := r.archOK[t.Image+" "+arch]
	r.mu.Unlock()
	if !checked {
		if err := checkImageArch(ctx, ctr, t.Image, arch); err != nil {
			return err
		}
		r.mu.Lock()
		r.archOK[t.Image+" "+arch] = true
		r.mu.Unlock()
	}
	for _, d := range cacheDirs(t) {
		ctr = ctr.WithMountedCache(d, c.CacheVolume("coach-"+t.Name+"-"+arch+strings.ReplaceAll(d, "/", "-")))
	}
	// The engine caches each install by its inputs (the image, the
	// command): the toolchain once per target, then the component's
	// packages over it, once per set. Its output is kept whole and
	// interleaved, like a build step's.
	installed := ctr
	for _, pkgs := range [][]string{toolchain(t), runner.PackageSet(packages)} {
		if len(pkgs) == 0 {
			continue
		}
		cmd := InstallCommand(t, pkgs)
		installed = installed.WithExec([]string{"/bin/sh", "-c", `(` + cmd + `) >/coach-install.log 2>&1; echo $? >/coach-install.rc`})
		out, rc, err := result(ctx, installed, "/coach-install.log", "/coach-install.rc")
		if err != nil {
			return fmt.Errorf("prepare %s: install the build packages in %s: %s", t.Name, t.Image, firstLine(err))
		}
		if rc != 0 {
			return fmt.Errorf("prepare %s: installing the build packages in %s exited with code %d:\n%s\n(the command: %s)", t.Name, t.Image, rc, lastLines(out, 40), cmd)
		}
	}
	for _, d := range cacheDirs(t) {
		installed = installed.WithoutMount(d)
	}
	installed = installed.WithoutFile("/coach-install.log").WithoutFile("/coach-install.rc")
	r.mu.Lock()
	r.bases[runner.PreparedID(t, arch, packages)] = installed
	r.mu.Unlock()
	return nil
}

// checkImageArch refuses an image whose programs are not of arch: an
// engine asked for linux/arm64 of an image that has no such variant runs
// its amd64 variant, and the build would make an arm64 package of x86-64
// programs. The image's /bin/sh is exported to the host (no exec, so no
// emulation; Contents would carry it as text, which is lossy) and its ELF
// machine compared.
func checkImageArch(ctx context.Context, ctr *dg.Container, image, arch string) error {
	want := target.LookupArch(arch)
	dir, err := os.MkdirTemp("", "coach-image-arch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	host := filepath.Join(dir, "sh")
	if _, err := ctr.File("/bin/sh").Export(ctx, host); err != nil {
		return fmt.Errorf("prepare: read /bin/sh of %s: %s", image, firstLine(err))
	}
	f, err := elf.Open(host)
	if err != nil {
		return fmt.Errorf("prepare: /bin/sh of %s is not an ELF program: %v", image, err)
	}
	defer f.Close()
	if f.Machine != want.Machine || f.Class != want.Class {
		return fmt.Errorf("the image %s has no %s variant: the engine gave its %s %s programs for %s; push a multi-platform image with a %s variant, or set the target's image to one", image, want.OCIPlatform(), f.Class, f.Machine, want.OCIPlatform(), want.OCIPlatform())
	}
	return nil
}

// result reads what a wrapped exec wrote: its whole output and its exit
// code.
func result(ctx context.Context, ctr *dg.Container, logFile, rcFile string) (string, int, error) {
	rc, err := ctr.File(rcFile).Contents(ctx)
	if err != nil {
		return "", 0, err
	}
	out, err := ctr.File(logFile).Contents(ctx)
	if err != nil {
		return "", 0, err
	}
	code, err := strconv.Atoi(strings.TrimSpace(rc))
	if err != nil {
		return out, 0, fmt.Errorf("exit code %q: %w", rc, err)
	}
	return out, code, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// staged is a job's environment on the engine before its first step.
type staged struct {
	c *dg.Client
	// ctr is the target's base with the dependencies' layers at the
	// install dir, the source mounted and an empty HOME, all of them the
	// steps' root's.
	ctr  *dg.Container
	deps *dg.Directory // the dependencies' layers, merged, as in ctr
}

// stage makes job's environment on the engine. A nonce in the container
// (never in a step's environment, which is set with env -i) makes the
// engine run every exec: whether a component is rebuilt is coach's
// cache's decision, and a failed step is never replayed from the engine's
// cache.
//
// What it sends is content-addressed, so that what the engine holds from
// an earlier build is not sent again (the engine keeps a mirror of each
// path it read from the client and sends only what changed in it): a
// layer's directory is named by its key and never changes, and the source
// is read from a directory named by the digest of its tree.
func (r *Runner) stage(ctx context.Context, job *runner.Job) (*staged, func(), error) {
	c, err := r.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	base := r.bases[runner.PreparedID(job.Target, job.Arch, job.Packages)]
	r.mu.Unlock()
	if base == nil {
		return nil, nil, fmt.Errorf("dagger: Prepare was not called for %s/%s", job.Target.Name, job.Arch)
	}
	deps := c.Directory()
	for _, l := range job.Layers {
		deps = deps.WithDirectory(".", c.Host().Directory(l))
	}
	deps = c.Directory().WithDirectory(".", deps, dg.DirectoryWithDirectoryOpts{Owner: owner})
	src, restore, err := addressed(job.Source)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	ctr := base.
		WithEnvVariable("COACH_RUN", hex.EncodeToString(nonce)).
		WithDirectory(job.InstallDir, deps, dg.ContainerWithDirectoryOpts{Owner: owner}).
		WithMountedDirectory(runner.SourceMount, c.Host().Directory(src), dg.ContainerWithMountedDirectoryOpts{Owner: owner}).
		WithDirectory(runner.HomeDir, c.Directory(), dg.ContainerWithDirectoryOpts{Owner: owner})
	return &staged{c: c, ctr: ctr, deps: deps}, restore, nil
}

// addressed moves the source tree to a directory beside it named by the
// digest of its contents, for as long as the job runs on the engine (the
// returned func moves it back, once however often it is called): the
// engine then sends again only the files whose contents it has not seen at
// that path. What a killed run left there is removed first.
func addressed(src string) (string, func(), error) {
	d, err := digest.Tree(src)
	if err != nil {
		return "", nil, fmt.Errorf("dagger: digest the source: %w", err)
	}
	dst := filepath.Join(filepath.Dir(src), "src-"+strings.TrimPrefix(d, "sha256:")[:32])
	if err := archive.RemoveAll(dst); err != nil {
		return "", nil, fmt.Errorf("dagger: remove what a run left at %s: %w", dst, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return "", nil, err
	}
	var back sync.Once
	return dst, func() { back.Do(func() { os.Rename(dst, src) }) }, nil
}

// Liveness: while steps run, the engine is asked its version every
// LivenessInterval; no answer within LivenessTimeout fails the build.
const (
	DefaultLivenessInterval = 30 * time.Second
	DefaultLivenessTimeout  = 60 * time.Second
)

// testHookStep, when set, is called as step i starts, with coach's end of
// the connections.
var testHookStep func(i int, h *hostEnd)

// errStopped is the cause of a run cancelled because the engine stopped
// answering.
var errStopped = errors.New("the engine stopped answering")

// runSteps runs steps in job's staged container in one exec (see
// stepsScript), its output to w and each step's start to onStart, the
// steps' timeouts as the job's, and returns the container after it.
func (r *Runner) runSteps(ctx context.Context, s *staged, job *runner.Job, depFiles []string, w io.Writer, onStart func(int)) (*dg.Container, stepsResult, error) {
	steps := job.Steps
	h, err := listen()
	if err != nil {
		return nil, stepsResult{}, err
	}
	defer h.Close()
	port := h.port()
	native, err := r.nativeArch(ctx, job.Arch)
	if err != nil {
		return nil, stepsResult{}, err
	}
	ctr := withIDMappers(s.ctr)
	if native != nil {
		ctr = ctr.WithMountedDirectory(nativeDir, s.c.Container(dg.ContainerOpts{Platform: dg.Platform(native.OCIPlatform())}).From(job.Target.Image).Rootfs())
	}
	ctr = ctr.
		WithServiceBinding(serviceHost, s.c.Host().Service([]dg.PortForward{{Backend: port, Frontend: port, Protocol: dg.NetworkProtocolTcp}})).
		WithNewFile(ctlDir+"/steps", stepsScript(job, steps, port, h.token, native), dg.ContainerWithNewFileOpts{Permissions: 0o700}).
		WithNewFile(ctlDir+"/deps", strings.Join(depFiles, "\n")+"\n", dg.ContainerWithNewFileOpts{Permissions: 0o600}).
		WithExec([]string{"/bin/bash", ctlDir + "/steps"}, dg.ContainerWithExecOpts{InsecureRootCapabilities: true})

	execCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		timer    *time.Timer
		timedOut *runner.StepError
	)
	start := time.Now()
	arm := func(i int) {
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
		onStart(i)
		if testHookStep != nil {
			testHookStep(i, h)
		}
		d, of := job.StepTimeout(i, start, time.Now())
		if d == 0 {
			return
		}
		limit := steps[i].Timeout
		if of == "component" {
			limit = job.Timeout
		}
		se := &runner.StepError{Component: job.Component, Step: i, StepName: steps[i].Name, ExitCode: -1, TimedOut: limit, TimeoutOf: of}
		timer = time.AfterFunc(d, func() {
			mu.Lock()
			timedOut = se
			mu.Unlock()
			cancel(errors.New("timed out"))
		})
	}
	defer func() {
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
	}()

	synced := make(chan error, 1)
	go func() {
		_, err := ctr.Sync(execCtx)
		synced <- err
	}()
	followCtx, stopFollow := context.WithCancelCause(execCtx)
	defer stopFollow(nil)
	type followed struct {
		res stepsResult
		err error
	}
	fch := make(chan followed, 1)
	go func() {
		res, err := h.follow(followCtx, w, arm)
		fch <- followed{res, err}
	}()
	go r.watchLiveness(execCtx, func(ctx context.Context) error { _, err := s.c.Version(ctx); return err }, func() { r.markDead(s.c) }, cancel)

	var syncErr error
	var f followed
	select {
	case syncErr = <-synced:
		// What the script wrote before it ended may still be on its way.
		grace := 30 * time.Second
		if syncErr != nil {
			grace = 2 * time.Second
		}
		select {
		case f = <-fch:
		case <-time.After(grace):
			stopFollow(errors.New("the steps' output did not end"))
			f = <-fch
		}
	case f = <-fch:
		// The exec ends by itself: its script kills the steps when its
		// connections end, and liveness bounds an engine that hangs.
		syncErr = <-synced
	}
	mu.Lock()
	te := timedOut
	mu.Unlock()
	stepAt := func(err error) error {
		i := max(f.res.last, 0)
		return &runner.StepError{Component: job.Component, Step: i, StepName: steps[i].Name, ExitCode: -1, Err: err}
	}
	switch {
	case te != nil:
		return nil, f.res, te
	case ctx.Err() != nil:
		return nil, f.res, ctx.Err()
	case errors.Is(context.Cause(execCtx), errStopped):
		return nil, f.res, stepAt(fmt.Errorf("the Dagger engine at %s stopped answering (no reply within %s); the build was abandoned", Engine(), r.livenessTimeout()))
	case syncErr != nil:
		r.markDead(s.c)
		return nil, f.res, stepAt(fmt.Errorf("the Dagger engine at %s failed during the step: %s", Engine(), firstLine(syncErr)))
	case f.err != nil:
		return nil, f.res, stepAt(f.err)
	case !f.res.done, f.res.code == 0 && f.res.last != len(steps)-1:
		return nil, f.res, stepAt(fmt.Errorf("the build's script on the engine ended after step %d of %d", f.res.last+1, len(steps)))
	}
	return ctr, f.res, nil
}

// watchLiveness cancels ctx with errStopped (and calls dead) when ping,
// a query to the engine, does not succeed within the liveness timeout.
func (r *Runner) watchLiveness(ctx context.Context, ping func(context.Context) error, dead func(), cancel context.CancelCauseFunc) {
	every := r.LivenessInterval
	if every == 0 {
		every = DefaultLivenessInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		vctx, vcancel := context.WithTimeout(ctx, r.livenessTimeout())
		err := ping(vctx)
		vcancel()
		if err != nil && ctx.Err() == nil {
			dead()
			cancel(errStopped)
			return
		}
	}
}

func (r *Runner) livenessTimeout() time.Duration {
	if r.LivenessTimeout == 0 {
		return DefaultLivenessTimeout
	}
	return r.LivenessTimeout
}

// nativeArch is the engine's own architecture when arch is another (nil
// when arch is the engine's).
func (r *Runner) nativeArch(ctx context.Context, arch string) (*target.Arch, error) {
	c, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	native := r.native
	r.mu.Unlock()
	if native == "" {
		p, err := c.DefaultPlatform(ctx)
		if err != nil {
			return nil, fmt.Errorf("dagger: the engine's platform: %s", firstLine(err))
		}
		native = path.Base(string(p))
		r.mu.Lock()
		r.native = native
		r.mu.Unlock()
	}
	if native == arch {
		return nil, nil
	}
	a, ok := target.ArchOf(native)
	if !ok || a.Go != native {
		return nil, fmt.Errorf("dagger: the engine's platform %s is not an architecture coach knows", native)
	}
	return &a, nil
}

// markDead notes that the engine of c failed: Close does not wait for it.
func (r *Runner) markDead(c *dg.Client) {
	r.mu.Lock()
	if r.client == c {
		r.dead = true
	}
	r.mu.Unlock()
}

func (r *Runner) Run(ctx context.Context, job *runner.Job) error {
	s, restore, err := r.stage(ctx, job)
	if err != nil {
		return err
	}
	defer restore()
	var depFiles []string
	for _, l := range job.Layers {
		files, err := layerFiles(l)
		if err != nil {
			return err
		}
		depFiles = append(depFiles, files...)
	}
	ctr, res, err := r.runSteps(ctx, s, job, depFiles, job.Log, job.StartStep)
	if err != nil {
		return err
	}
	if res.code != 0 {
		if job.KeepFailed {
			restore()
			if _, err := ctr.Directory(runner.SourceMount).Export(ctx, job.Source, dg.DirectoryExportOpts{Wipe: true}); err != nil {
				fmt.Fprintf(job.Log, "coach: could not export the failed build's source tree: %s\n", firstLine(err))
			}
		}
		return &runner.StepError{Component: job.Component, Step: res.last, StepName: job.Steps[res.last].Name, ExitCode: res.code}
	}
	if len(res.gone) > 0 {
		return fmt.Errorf("the build deleted files of its dependencies, which a layer cannot do: %s", strings.Join(res.gone, ", "))
	}
	restore()
	for _, f := range job.Collect {
		p := path.Join(runner.SourceMount, filepath.ToSlash(f))
		if _, err := ctr.File(p).Export(ctx, filepath.Join(job.Source, f)); err != nil && ctx.Err() == nil {
			// Missing: the host's license collection says which.
			continue
		}
	}
	layer := s.deps.Diff(ctr.Directory(job.InstallDir))
	if _, err := layer.Export(ctx, job.Output); err != nil {
		return fmt.Errorf("dagger: export the layer of %s: %s", job.Component, firstLine(err))
	}
	return nil
}

// Shell runs sh's command in the job's build environment on the engine, as
// a build step runs (the same namespaces, ids and confinement): the
// target's image with the build packages, the dependencies' layers at the
// install dir, the source at its working directory, the steps'
// environment. The engine attaches an interactive terminal only to the
// dagger CLI's own sessions, so a command is needed; its output (stdout
// and stderr together) streams to sh.Stdout. What it changes is thrown
// away.
func (r *Runner) Shell(ctx context.Context, job *runner.Job, sh runner.Shell) error {
	if len(sh.Argv) == 0 {
		return fmt.Errorf("the dagger runner cannot open an interactive shell (the engine attaches terminals only to the dagger CLI's own sessions): give a command after --, or use --runner sandbox")
	}
	s, restore, err := r.stage(ctx, job)
	if err != nil {
		return err
	}
	defer restore()
	shell := *job
	shell.Steps = []runner.Step{{Name: "shell", Argv: sh.Argv}}
	shell.Timeout = 0
	_, res, err := r.runSteps(ctx, s, &shell, nil, sh.Stdout, func(int) {})
	if err != nil {
		var se *runner.StepError
		if errors.As(err, &se) && se.Err != nil {
			return se.Err
		}
		return err
	}
	if res.code != 0 {
		return &runner.ShellExitError{Code: res.code}
	}
	return nil
}

// layerFiles lists a layer's non-directory entries, relative to it.
func layerFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out, err
}

// Machine is a clean container of a target on the engine, for verify: each
// script runs on the state the last one left, and the packages are at
// /coach/pkgs.
//
// What verify runs (maintainer scripts, verify: commands) is untrusted,
// so it runs as build steps do: as root of a user namespace whose root is
// stepBase on the engine's host, in a PID namespace, without the network
// but for the download of the distribution's packages. The machine's root
// filesystem is a directory (the image's, given to that root) which the
// script enters with chroot; the script that sets it up runs as the
// container's root from the pristine image, which nothing verify runs can
// change, and enters no path verify could have made a link: /dev, /proc,
// /sys and the resolver's files are made fresh by the engine before each
// script.
type Machine struct {
	c     *dg.Client
	tools *dg.Container // the pristine image: the setup's programs
	root  *dg.Directory // the machine's filesystem
	image string
}

// ExitError is a machine script that exited non-zero.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exited with code %d", e.Code) }

// ExitCode is the script's exit code.
func (e *ExitError) ExitCode() int { return e.Code }

// machineDir is where the machine's root is mounted in the setup's
// container.
const machineDir = "/coach-machine"

// Machine starts a clean container of the target's image with packages
// (host files) copied to /coach/pkgs.
func (r *Runner) Machine(ctx context.Context, t target.Target, arch string, packages []string) (runner.VerifyMachine, error) {
	if t.Image == "" {
		return nil, fmt.Errorf("target %s has no image for the dagger runner", t.Name)
	}
	c, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	img := c.Container(dg.ContainerOpts{Platform: dg.Platform(target.LookupArch(arch).OCIPlatform())}).From(t.Image)
	// The setup's programs are the engine's own platform's: under
	// emulation no process can make a user namespace (nativeUnshare).
	native, err := r.nativeArch(ctx, arch)
	if err != nil {
		return nil, err
	}
	tools := img
	if native != nil {
		tools = c.Container(dg.ContainerOpts{Platform: dg.Platform(native.OCIPlatform())}).From(t.Image)
	}
	if t.Format == target.FormatRPM {
		// unshare, setpriv and mount, installed from the distribution by
		// its package manager before anything of the package is there.
		tools = img.WithExec([]string{"/bin/sh", "-c", InstallCommand(t, []string{"util-linux"})})
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	tools = tools.WithEnvVariable("COACH_RUN", hex.EncodeToString(nonce)) // a verify always runs
	pkgs := c.Directory()
	for _, p := range packages {
		pkgs = pkgs.WithFile(filepath.Base(p), c.Host().File(p))
	}
	root := c.Directory().
		WithDirectory(".", img.Rootfs(), dg.DirectoryWithDirectoryOpts{Owner: owner}).
		WithDirectory("coach/pkgs", pkgs, dg.DirectoryWithDirectoryOpts{Owner: owner})
	return &Machine{c: c, tools: tools, root: root, image: t.Image}, nil
}

// Run runs script as root of the machine's user namespace, with the
// network only when net is set.
func (m *Machine) Run(ctx context.Context, script string, net bool) (string, error) {
	root := m.root
	for _, d := range []string{"dev", "proc", "sys"} {
		root = root.WithoutDirectory(d).WithDirectory(d, m.c.Directory(), dg.DirectoryWithDirectoryOpts{Owner: owner})
	}
	if net {
		for _, f := range []string{"etc/resolv.conf", "etc/hosts"} {
			root = root.WithoutFile(f).WithNewFile(f, "", dg.DirectoryWithNewFileOpts{Permissions: 0o644})
		}
	}
	// The script, the real root's and readable: verify cannot change it.
	root = root.WithoutFile(".coach-script").WithNewFile(".coach-script", script, dg.DirectoryWithNewFileOpts{Permissions: 0o644})
	unshareNet := "--net"
	if net {
		unshareNet = ""
	}
	ctr := withIDMappers(m.tools).
		WithMountedDirectory(machineDir, root).
		WithNewFile(ctlDir+"/machine", machineScript, dg.ContainerWithNewFileOpts{Permissions: 0o700}).
		WithExec([]string{"/bin/sh", ctlDir + "/machine", strconv.Itoa(stepBase), strconv.Itoa(userns.Size), unshareNet, "/usr/bin/unshare"}, dg.ContainerWithExecOpts{InsecureRootCapabilities: true})
	out, code, err := result(ctx, ctr, ctlDir+"/out", ctlDir+"/rc")
	if err != nil {
		return "", errors.New(firstLine(err))
	}
	m.root = ctr.Directory(machineDir).WithoutFile(".coach-script")
	if code != 0 {
		return out, &ExitError{code}
	}
	return out, nil
}

// machineScript runs /.coach-script in the machine (see Machine), as
// the container's root with the pristine image's programs: $1 and $2 the
// range the machine's root maps to, $3 --net or nothing. The script's
// output goes to /coach-ctl/out and its exit code to /coach-ctl/rc.
const machineScript = procSetup + `export PATH=` + ctlDir + `/bin:/usr/sbin:/usr/bin:/sbin:/bin
base=$1 size=$2 net=$3 userns_unshare=$4 m=` + machineDir + `
resolver=
[ -n "$net" ] || resolver="/etc/resolv.conf /etc/hosts"
export resolver
unmask_proc
# The machine's / is its root's too (the engine mounts it as its own).
chown -h "$base:$base" "$m" || exit 96
# setup: in the script's network (none) and mount namespaces, as the real
# root, with the machine's fresh /dev and /sys.
setup='m=$1; shift
/bin/mount --rbind /dev "$m/dev" || exit 125
/bin/mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$m/sys" || exit 125
for f in $resolver; do
  # Only a file the engine made: no link on the way out of the machine.
  if [ -f "$f" ] && [ "$(readlink -f "$m$f")" = "$m$f" ] && [ -f "$m$f" ]; then /bin/mount --bind "$f" "$m$f" || exit 125; fi
done
exec "$@"'
# inner: PID 1 and root of the user and PID namespaces; it mounts their
# /proc, then enters the machine (chroot, from the pristine image) with a
# container root's capabilities at most.
inner='m=$1; shift
P=$m/proc
'"$mount_proc"'
exec ` + dropPrivs + ` /usr/sbin/chroot "$m" /bin/sh -c "cd / && exec /bin/sh /.coach-script"'
/usr/bin/unshare $net --mount -- /bin/sh -c "$setup" coach-setup "$m" \
  ` + usernsUnshare + ` /bin/sh -c "$inner" coach-machine "$m" >/coach-ctl/out 2>&1 </dev/null
echo $? >/coach-ctl/rc
exit 0
`

// RPMOptions are none: rpm runs inside the target's own container.
func (m *Machine) RPMOptions() []string { return nil }

// Where says the checks run in a container of the target's image.
func (m *Machine) Where() string {
	return fmt.Sprintf("a clean container of %s on the Dagger engine, as root of a user namespace (engine host ids %d-%d), with no network but for the download of the distribution's packages", m.image, stepBase, stepBase+userns.Size-1)
}

// CacheEntries describes the entries of the engine's local cache (cache
// volumes among them), for tests and diagnostics.
func (r *Runner) CacheEntries(ctx context.Context) ([]string, error) {
	c, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := c.Engine().LocalCache().EntrySet().Entries(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		d, err := e.Description(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
