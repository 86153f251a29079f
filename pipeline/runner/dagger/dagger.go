// Package dagger runs builds on a Dagger engine (dagger.io/dagger). It is a
// thin adapter: the target's image with its packages installed in a cached
// step, the dependency layers as Directories at the install dir, the source
// from the host, each step a WithExec, and the layer the Diff of the install
// dir, exported to the host. Everything else is shared with the sandbox
// runner in pipeline/build. Only this package imports the Dagger SDK.
//
// It keeps the sandbox's semantics: a step sees exactly the job's
// environment (nothing from the image or the engine's session), its output
// is kept whole with stdout and stderr interleaved, every step really runs
// (coach's layer cache decides what to rebuild, not the engine's), a build
// that deletes a dependency's file fails, and license files the build made
// come back to the host.
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

	"github.com/coach-build/coach/pipeline/binfmt"
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

	mu      sync.Mutex
	client  *dg.Client
	connErr error
	cancel  context.CancelFunc
	bases   map[string]*dg.Container
	// pollers read a running step's output: the build's base, or, for
	// a foreign arch, the target's image on the engine's own platform,
	// so that polling does not run under emulation beside the step.
	pollers map[string]*dg.Container
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
	return &Runner{LogOutput: logOutput, bases: map[string]*dg.Container{}, pollers: map[string]*dg.Container{}, archOK: map[string]bool{}}
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
		done := make(chan error, 1)
		go func(c *dg.Client) { done <- c.Close() }(r.client)
		select {
		case err = <-done:
		case <-time.After(closeTimeout):
			err = fmt.Errorf("the Dagger session did not end within %s", closeTimeout)
		}
		r.client = nil
	}
	if r.cancel != nil {
		r.cancel()
	}
	return err
}

// closeTimeout bounds Close.
const closeTimeout = 15 * time.Second

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
	poller := installed
	if native, err := c.DefaultPlatform(ctx); err == nil && !strings.HasSuffix(string(native), "/"+arch) {
		poller = c.Container(dg.ContainerOpts{Platform: native}).From(t.Image)
	}
	r.mu.Lock()
	r.bases[runner.PreparedID(t, arch, packages)] = installed
	r.pollers[runner.PreparedID(t, arch, packages)] = poller
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

// Paths in the build container that are coach's own.
const (
	logDir = "/coach/.log" // the logs volume, shared with the poller: a directory per job
	// logsVolume is the one cache volume every job's step logs go
	// through, each job in a directory of its own that it removes when it
	// ends: a volume per job would be left in the engine for good.
	logsVolume = "coach-logs"
	stepRC     = "/coach/.step.rc"
	depsList   = "/coach/.deps"
)

// stepScript runs the step with its output (stdout and stderr, in order)
// in a file and its exit code in another, and always succeeds itself: so
// the output is whole (the engine keeps only the tail of an exec's output)
// and a failed step's state can still be read. $COACH_LOG names the
// step's log file in the shared volume.
const stepScript = `log=$1; shift; mkdir -p "${log%/*}"; "$@" >"$log" 2>&1 </dev/null; echo $? >` + stepRC

// confine is the prefix of every build step's command line: it runs the
// rest as the sandbox runs a step, which Dagger's exec alone does not.
// Dagger gives every exec the engine's network (a step could reach the
// mirror, the internet, the engine host's services through the bridge)
// and a writable root. So, with the root capabilities the exec is given
// for this prefix alone, in a clean environment and by absolute paths
// (nothing a build wrote is run or loaded while they are held):
//   - a network namespace of its own, with only a loopback that is down,
//     and /sys remounted so that it lists only that;
//   - a mount namespace in which the root is read-only, but for the
//     install dir, /tmp, /var/tmp and /coach (the source, HOME, the
//     logs), bound over themselves first (so no later step can change
//     the programs this prefix runs with its capabilities);
//   - then the step, with a container root's default capabilities and no
//     way to gain more (no_new_privs, the bounding set cut down), so it
//     can make no namespace of its own and undo nothing.
//
// unshare, mount and setpriv are util-linux's (essential on Debian;
// installed with the toolchain on rpm targets).
func confine(installDir string) []string {
	return []string{
		"/usr/bin/unshare", "--net", "--mount", "--", "/bin/sh", "-c", confineScript, "coach-confine", installDir,
	}
}

const confineScript = `set -e
install=$1; shift
/bin/mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
for d in "$install" /tmp /var/tmp /coach; do
  if [ -d "$d" ]; then /bin/mount --rbind "$d" "$d"; fi
done
/bin/mount -o remount,bind,ro /
exec /usr/bin/setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+sys_chroot,+mknod,+audit_write,+setfcap -- "$@"`

// pollInterval is how often a running step's output is read.
const pollInterval = 2 * time.Second

// follow copies what the step writes to its log file in the shared volume
// into w while the step runs, reading it from a container of its own every
// pollInterval, until stop is closed; then it reads the rest.
func follow(ctx context.Context, poller *dg.Container, file string, w io.Writer, stop <-chan struct{}) error {
	offset := 0
	read := func(n int) error {
		out, err := poller.WithEnvVariable("COACH_POLL", strconv.Itoa(n)).
			WithExec([]string{"/bin/sh", "-c", `tail -c +$(( $1 + 1 )) "$2" 2>/dev/null || true`, "coach-poll", strconv.Itoa(offset), file}).
			Stdout(ctx)
		if err != nil {
			return err
		}
		offset += len(out)
		io.WriteString(w, out)
		return nil
	}
	for n := 0; ; n++ {
		select {
		case <-stop:
			return read(n)
		case <-time.After(pollInterval):
			if err := read(n); err != nil && ctx.Err() != nil {
				return err
			}
		}
	}
}

// staged is a job's environment on the engine before its first step.
type staged struct {
	c *dg.Client
	// ctr is the target's base with the dependencies' layers at the
	// install dir, the source mounted and an empty HOME.
	ctr    *dg.Container
	deps   *dg.Directory // the dependencies' layers, merged
	poller *dg.Container // where a running step's output is read
	run    string        // the nonce in ctr and poller
}

// stage makes job's environment on the engine. A nonce in the container
// (never in a step's environment, which is set with env -i) makes the
// engine run every exec: whether a component is rebuilt is coach's
// cache's decision, and a failed step is never replayed from the engine's
// cache.
func (r *Runner) stage(ctx context.Context, job *runner.Job) (*staged, error) {
	c, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	base := r.bases[runner.PreparedID(job.Target, job.Arch, job.Packages)]
	pollBase := r.pollers[runner.PreparedID(job.Target, job.Arch, job.Packages)]
	r.mu.Unlock()
	if base == nil {
		return nil, fmt.Errorf("dagger: Prepare was not called for %s/%s", job.Target.Name, job.Arch)
	}
	deps := c.Directory()
	for _, l := range job.Layers {
		deps = deps.WithDirectory(".", c.Host().Directory(l, dg.HostDirectoryOpts{NoCache: true}))
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	run := hex.EncodeToString(nonce)
	ctr := base.
		WithEnvVariable("COACH_RUN", run).
		WithDirectory(job.InstallDir, deps).
		WithMountedDirectory(runner.SourceMount, c.Host().Directory(job.Source, dg.HostDirectoryOpts{NoCache: true})).
		WithDirectory(runner.HomeDir, c.Directory())
	return &staged{c: c, ctr: ctr, deps: deps, poller: pollBase.WithEnvVariable("COACH_RUN", run), run: run}, nil
}

func (r *Runner) Run(ctx context.Context, job *runner.Job) error {
	s, err := r.stage(ctx, job)
	if err != nil {
		return err
	}
	var depFiles []string
	for _, l := range job.Layers {
		files, err := layerFiles(l)
		if err != nil {
			return err
		}
		depFiles = append(depFiles, files...)
	}
	logs := s.c.CacheVolume(logsVolume)
	shared := dg.ContainerWithMountedCacheOpts{Sharing: dg.CacheSharingModeShared}
	poller := s.poller.WithMountedCache(logDir, logs, shared)
	ctr, deps := s.ctr.WithMountedCache(logDir, logs, shared), s.deps
	jobLogs := logDir + "/" + s.run
	defer func() {
		// The job's logs leave the volume with it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		poller.WithEnvVariable("COACH_CLEAN", s.run).WithExec([]string{"rm", "-rf", "--", jobLogs}).Sync(cctx)
	}()
	start := time.Now()
	for i, st := range job.Steps {
		job.StartStep(i)
		env := append(slices.Clone(job.Env), st.Env...)
		logFile := fmt.Sprintf("%s/step-%d.log", jobLogs, i)
		argv := append(confine(job.InstallDir), "/usr/bin/env", "-i")
		argv = append(append(argv, env...), "/bin/sh", "-c", stepScript, "coach-step", logFile)
		argv = append(argv, st.Argv...)
		// The root capabilities are for confine's unshare and mounts
		// alone: it drops them before the step runs.
		done := ctr.WithWorkdir(path.Join(runner.SourceMount, job.Dir, st.Dir)).WithExec(argv, dg.ContainerWithExecOpts{InsecureRootCapabilities: true})
		// The step's output streams while it runs: read from the shared
		// volume by a poller, as the step writes it.
		stop := make(chan struct{})
		followed := make(chan error, 1)
		go func() {
			followed <- follow(ctx, poller, logFile, job.Log, stop)
		}()
		// Past its timeout the step's query is cancelled, and the engine
		// stops the exec.
		sctx, cancel, timedOut := job.StepContext(ctx, i, start)
		rc, err := done.File(stepRC).Contents(sctx)
		cancel()
		close(stop)
		ferr := <-followed
		if te := timedOut(); te != nil {
			return te
		}
		if err == nil {
			err = ferr
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: -1, Err: fmt.Errorf("the Dagger engine at %s failed during the step: %s", Engine(), firstLine(err))}
		}
		code, err := strconv.Atoi(strings.TrimSpace(rc))
		if err != nil {
			return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: -1, Err: fmt.Errorf("exit code %q: %w", rc, err)}
		}
		if code != 0 {
			if job.KeepFailed {
				if _, err := done.Directory(runner.SourceMount).Export(ctx, job.Source, dg.DirectoryExportOpts{Wipe: true}); err != nil {
					fmt.Fprintf(job.Log, "coach: could not export the failed build's source tree: %s\n", firstLine(err))
				}
			}
			return &runner.StepError{Component: job.Component, Step: i, StepName: st.Name, ExitCode: code}
		}
		ctr = done
	}
	if err := r.checkDeletions(ctx, ctr, job, depFiles); err != nil {
		return err
	}
	for _, f := range job.Collect {
		p := path.Join(runner.SourceMount, filepath.ToSlash(f))
		if _, err := ctr.File(p).Export(ctx, filepath.Join(job.Source, f)); err != nil && ctx.Err() == nil {
			// Missing: the host's license collection says which.
			continue
		}
	}
	layer := deps.Diff(ctr.Directory(job.InstallDir))
	if _, err := layer.Export(ctx, job.Output); err != nil {
		return fmt.Errorf("dagger: export the layer of %s: %s", job.Component, firstLine(err))
	}
	return nil
}

// Shell runs sh's command in the job's build environment on the engine:
// the target's image with the build packages, the dependencies' layers at
// the install dir, the source at its working directory, the steps'
// environment. The engine attaches an interactive terminal only to the
// dagger CLI's own sessions, so a command is needed; its output is
// printed when it ends. What it changes is thrown away.
func (r *Runner) Shell(ctx context.Context, job *runner.Job, sh runner.Shell) error {
	if len(sh.Argv) == 0 {
		return fmt.Errorf("the dagger runner cannot open an interactive shell (the engine attaches terminals only to the dagger CLI's own sessions): give a command after --, or use --runner sandbox")
	}
	s, err := r.stage(ctx, job)
	if err != nil {
		return err
	}
	argv := append(append([]string{"/usr/bin/env", "-i"}, job.Env...), sh.Argv...)
	done := s.ctr.
		WithWorkdir(path.Join(runner.SourceMount, job.Dir)).
		WithExec(argv, dg.ContainerWithExecOpts{Expect: dg.ReturnTypeAny})
	code, err := done.ExitCode(ctx)
	if err != nil {
		return fmt.Errorf("the Dagger engine at %s failed to run the command: %s", Engine(), firstLine(err))
	}
	if out, err := done.Stdout(ctx); err == nil {
		io.WriteString(sh.Stdout, out)
	}
	if out, err := done.Stderr(ctx); err == nil {
		io.WriteString(sh.Stderr, out)
	}
	if code != 0 {
		return &runner.ShellExitError{Code: code}
	}
	return nil
}

// checkDeletions fails the build if it deleted a file of its dependencies:
// a Diff cannot express that, and the sandbox refuses it too.
func (r *Runner) checkDeletions(ctx context.Context, ctr *dg.Container, job *runner.Job, depFiles []string) error {
	if len(depFiles) == 0 {
		return nil
	}
	script := `cd "$1" && while IFS= read -r f; do [ -e "$f" ] || [ -L "$f" ] || printf '%s\n' "$f"; done <` + depsList
	out, err := ctr.WithNewFile(depsList, strings.Join(depFiles, "\n")+"\n").
		WithExec([]string{"/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "/bin/sh", "-c", script, "coach-check", job.InstallDir}).
		Stdout(ctx)
	if err != nil {
		return fmt.Errorf("dagger: check %s's dependencies: %s", job.Component, firstLine(err))
	}
	if gone := strings.Fields(out); len(gone) > 0 {
		return fmt.Errorf("the build deleted files of its dependencies, which a layer cannot do: %s", strings.Join(gone, ", "))
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
type Machine struct {
	ctr   *dg.Container
	image string
}

// ExitError is a machine script that exited non-zero.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exited with code %d", e.Code) }

// ExitCode is the script's exit code.
func (e *ExitError) ExitCode() int { return e.Code }

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
	nonce := make([]byte, 8)
	rand.Read(nonce)
	ctr := c.Container(dg.ContainerOpts{Platform: dg.Platform(target.LookupArch(arch).OCIPlatform())}).From(t.Image).
		WithEnvVariable("COACH_RUN", hex.EncodeToString(nonce)). // a verify always runs
		WithEnvVariable("DEBIAN_FRONTEND", "noninteractive").
		WithDirectory("/coach/pkgs", c.Directory())
	for _, p := range packages {
		ctr = ctr.WithFile(path.Join("/coach/pkgs", filepath.Base(p)), c.Host().File(p))
	}
	return &Machine{ctr: ctr, image: t.Image}, nil
}

// Run runs script as root in the machine. The engine gives every exec the
// network, so net cannot take it away here.
func (m *Machine) Run(ctx context.Context, script string, net bool) (string, error) {
	next := m.ctr.WithExec([]string{"/bin/sh", "-c", `( ` + script + "\n) >/coach/.out 2>&1 </dev/null; echo $? >/coach/.rc"})
	out, code, err := result(ctx, next, "/coach/.out", "/coach/.rc")
	if err != nil {
		return "", errors.New(firstLine(err))
	}
	m.ctr = next
	if code != 0 {
		return out, &ExitError{code}
	}
	return out, nil
}

// RPMOptions are none: rpm runs inside the target's own container.
func (m *Machine) RPMOptions() []string { return nil }

// Where says the checks run in a container of the target's image.
func (m *Machine) Where() string {
	return "a clean container of " + m.image + " on the Dagger engine (the engine's containers have its network in every step)"
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
