package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/internal/userns"
	"github.com/coach-build/coach/pipeline/mirror"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

// rootfsSchema is mixed into rootfs keys; bump it when the way a rootfs is
// made changes.
// 2: build roots too have their owners shifted into coach's user
// namespace (apt installs build environments over them there).
const rootfsSchema = 2

// Rootfs makes and caches one root filesystem per target, architecture and
// package set, under <Dir>/<target>-<key>/, with mmdebstrap for the Debian
// family. A rootfs is made in a temporary directory and renamed into place,
// under a lock shared with other processes, so it is made once and a
// half-made one is never used.
type Rootfs struct {
	Dir string
	// Log receives mmdebstrap's output.
	Log io.Writer
	// Logger, when set, hears when a root filesystem is being made and when
	// it is done: a minute or more in which nothing else happens.
	Logger *slog.Logger
	// Events, when set, hears a RootfsStarted and a RootfsFinished event
	// around the making of each root filesystem.
	Events event.Sink
	// Archives expands a target's mirror://name; nil means the host's.
	Archives *mirror.Set
}

// RootfsInfo is stored beside a rootfs.
type RootfsInfo struct {
	Target    string    `json:"target"`
	Arch      string    `json:"arch"`
	Suite     string    `json:"suite"`
	Mirror    string    `json:"mirror"`
	Packages  []string  `json:"packages"`
	Key       string    `json:"key"`
	CreatedAt time.Time `json:"created_at"`
	Seconds   float64   `json:"seconds"`
}

// Key identifies a rootfs by everything that decides its content.
func Key(t target.Target, arch string, packages []string) string {
	return key(t, arch, packages, true)
}

// CleanKey is the key of a target's clean root filesystem, the one
// packages are verified in, with packages added (rpm, to check an rpm in
// a Debian root).
func CleanKey(t target.Target, arch string, packages ...string) string {
	return key(t, arch, packages, false)
}

func key(t target.Target, arch string, packages []string, toolchain bool) string {
	in := struct {
		Schema    int
		Bootstrap target.Bootstrap
		Arch      string
		Packages  []string
		// Owners is the id range a root's owners are shifted into (see
		// Rootfs.Clean).
		Owners string `json:",omitempty"`
	}{rootfsSchema, t.Bootstrap, arch, packageSet(t, packages, toolchain), ""}
	if ids, err := userns.Current(); err == nil && ids.Ranged() {
		in.Owners = fmt.Sprintf("%d:%d", ids.UID, ids.GID)
	}
	return digest.JSON(in)
}

// packageSet is what mmdebstrap installs: the target's toolchain (unless a
// clean root is wanted) and the given packages, sorted, each once.
func packageSet(t target.Target, packages []string, toolchain bool) []string {
	var pkgs []string
	if toolchain {
		pkgs = slices.Clone(t.Toolchain)
	}
	return runner.PackageSet(append(pkgs, packages...))
}

// debArch is Debian's name for a Go architecture.
func debArch(goarch string) string { return target.LookupArch(goarch).Deb }

// InfoFile is the file a complete root filesystem has; its modification
// time is when it was last used.
const InfoFile = ".coach-rootfs.json"

func touch(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
}

// ErrNoSpace is a root filesystem that could not be made for want of
// disk space: it wraps syscall.ENOSPC, which the CLI turns into exit 1.
var ErrNoSpace = fmt.Errorf("no space left on device (%w)", syscall.ENOSPC)

// ErrNoBootstrap is returned for targets the sandbox cannot make a rootfs
// for (the rpm family, without a registry).
var ErrNoBootstrap = errors.New("no bootstrap recipe")

// Ensure returns the build environment of a target with packages: its
// base root (the essentials and the toolchain), or, with packages, an
// environment of them over the base (see EnvKey). Each is made once.
func (r *Rootfs) Ensure(ctx context.Context, t target.Target, arch string, packages []string) (string, error) {
	base, err := r.ensure(ctx, t, arch, nil, true)
	if err != nil || len(packages) == 0 {
		return base, err
	}
	return r.environment(ctx, t, arch, base, packages)
}

// claim reports whether the root (or environment) at dir is made, and
// records it as used; when it is not, claim holds dir's lock, which the
// caller releases with unlock once it has made it, so that it is made
// once however many processes want it.
func (r *Rootfs) claim(ctx context.Context, dir string) (made bool, unlock func(), err error) {
	info := filepath.Join(dir, InfoFile)
	if _, err := os.Stat(info); err == nil {
		touch(info) // last used, for cache gc
		return true, nil, nil
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return false, nil, err
	}
	if unlock, err = lockfile.Lock(ctx, dir+".lock", 100*time.Millisecond); err != nil {
		return false, nil, err
	}
	if _, err := os.Stat(info); err == nil {
		unlock()
		return true, nil, nil
	}
	return false, unlock, nil
}

// removeRoot removes a root or a partial one without crossing a mount
// point, even once ctx is done.
func removeRoot(ctx context.Context, dir, path string) {
	confine.RemoveAll(context.WithoutCancel(ctx), dir, filepath.Base(path))
}

// Clean returns a rootfs of the target as a fresh installation has it: no
// toolchain, no -dev packages, with the given packages added (rpm, to
// check an rpm in a Debian root). Packages are verified in overlays of it.
// When coach runs as root its owners are shifted into the range of
// coach's user namespace, so that in a sandbox root owns it as on a real
// system, and host root owns none of it.
func (r *Rootfs) Clean(ctx context.Context, t target.Target, arch string, packages ...string) (string, error) {
	return r.ensure(ctx, t, arch, packages, false)
}

func (r *Rootfs) ensure(ctx context.Context, t target.Target, arch string, packages []string, toolchain bool) (string, error) {
	if t.Bootstrap.Tool != "mmdebstrap" {
		return "", fmt.Errorf("target %s: %w: the sandbox runner makes root filesystems with mmdebstrap, for the Debian family only; build %s with --runner dagger and a registry", t.Name, ErrNoBootstrap, t.Name)
	}
	key := key(t, arch, packages, toolchain)
	name := t.Name
	if !toolchain {
		name += "-clean"
	}
	dir := filepath.Join(r.Dir, name+"-"+strings.TrimPrefix(key, "sha256:")[:16])
	ready, unlock, err := r.claim(ctx, dir)
	if err != nil || ready {
		return dir, err
	}
	defer unlock()
	mm, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return "", fmt.Errorf("target %s needs mmdebstrap to make its root filesystem: apt-get install mmdebstrap", t.Name)
	}
	// An incomplete leftover without its info file, and this process id's
	// own leftover, are removed without crossing a mount point.
	remove := func(path string) { removeRoot(ctx, r.Dir, path) }
	remove(dir)
	tmp := dir + fmt.Sprintf(".partial-%d", os.Getpid())
	remove(tmp)
	archives := r.Archives
	if archives == nil {
		archives = mirror.Host()
	}
	mirrorURL, err := archives.Expand(t.Bootstrap.Mirror)
	if err != nil {
		return "", fmt.Errorf("target %s: bootstrap mirror: %w", t.Name, err)
	}
	pkgs := packageSet(t, packages, toolchain)
	// As root, mmdebstrap writes the directory itself. As a user it works
	// in a user namespace (--mode=unshare), and a directory it wrote would
	// be owned by the user's subordinate ids, which the user can neither
	// finish, use as its own nor remove; so it writes a tarball, unpacked
	// below as the user, owned by the user.
	mode, format, output := "root", "directory", tmp
	if os.Geteuid() != 0 {
		mode, format, output = "unshare", "tar", tmp+".tar"
		defer os.Remove(output)
	}
	args := []string{
		"--variant=apt", "--mode=" + mode, "--format=" + format,
		"--architectures=" + debArch(arch),
		"--components=" + strings.Join(t.Bootstrap.Components, ","),
		"--include=" + strings.Join(append(pkgs, "ca-certificates"), ","),
		"--aptopt=Acquire::Retries \"3\"",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--", t.Bootstrap.Suite, output, mirrorURL,
	}
	start := time.Now()
	if r.Logger != nil {
		r.Logger.Info("making root filesystem (once per target and package set)", "target", t.Name, "arch", arch, "suite", t.Bootstrap.Suite, "packages", strings.Join(pkgs, ","), "dir", dir)
	}
	r.Events.Emit(event.Event{Kind: event.RootfsStarted, Target: t.Name, Message: "making the " + t.Bootstrap.Suite + " " + debArch(arch) + " root filesystem with mmdebstrap"})
	made := errors.New("interrupted")
	defer func() {
		e := event.Event{Kind: event.RootfsFinished, Target: t.Name, Seconds: time.Since(start).Seconds()}
		if made != nil {
			e.Error = made.Error()
		}
		r.Events.Emit(e)
	}()
	var out bytes.Buffer
	cmd := pidns.Contained(ctx, mm, args...)
	w := io.Writer(&out)
	if r.Log != nil {
		w = io.MultiWriter(&out, r.Log)
	}
	if r.Logger != nil {
		w = io.MultiWriter(w, &phaseWriter{log: r.Logger, target: t.Name, start: start})
		done := make(chan struct{})
		defer close(done)
		go func() {
			tick := time.NewTicker(15 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					r.Logger.Info("still making root filesystem", "target", t.Name, "seconds", time.Since(start).Round(time.Second).Seconds())
				}
			}
		}()
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		remove(tmp)
		made = err
		if strings.Contains(out.String(), "No space left on device") {
			return "", fmt.Errorf("make the %s root filesystem in %s: %w", t.Name, r.Dir, ErrNoSpace)
		}
		return "", fmt.Errorf("make the %s root filesystem: mmdebstrap %s: %v\n%s", t.Name, strings.Join(args, " "), err, lastLines(out.String(), 30))
	}
	if format == "tar" {
		if err := unpackUserRoot(ctx, output, tmp); err != nil {
			remove(tmp)
			return "", fmt.Errorf("make the %s root filesystem: %w", t.Name, err)
		}
	}
	{
		if err := userns.ShiftTree(tmp); err != nil {
			remove(tmp)
			return "", fmt.Errorf("make the %s root filesystem: give it to the sandboxes' ids: %w", t.Name, err)
		}
	}
	data, _ := json.MarshalIndent(RootfsInfo{Target: t.Name, Arch: arch, Suite: t.Bootstrap.Suite, Mirror: t.Bootstrap.Mirror, Packages: pkgs, Key: key, CreatedAt: time.Now(), Seconds: time.Since(start).Seconds()}, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, ".coach-rootfs.json"), data, 0o644); err != nil {
		remove(tmp)
		return "", err
	}
	if err := durable.Publish(tmp, dir); err != nil {
		remove(tmp)
		return "", err
	}
	made = nil
	if r.Logger != nil {
		r.Logger.Info("made root filesystem", "target", t.Name, "seconds", time.Since(start).Round(100*time.Millisecond).Seconds(), "dir", dir)
	}
	return dir, nil
}

// unpackUserRoot unpacks mmdebstrap's tarball of a root filesystem into dir
// as the user: owners are not kept (every file is the user's, which the
// sandbox maps to root), device nodes are left out (the sandbox mounts its
// own /dev).
func unpackUserRoot(ctx context.Context, tarball, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "tar", "-x", "--no-same-owner", "--exclude=./dev/*", "-f", tarball, "-C", dir)
	pidns.DieWithParent(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("unpack %s: %v: %s", tarball, err, lastLines(string(out), 10))
	}
	return nil
}

// phaseWriter logs mmdebstrap's progress lines ("I: downloading packages
// with apt...") as they come, so that the minute a root filesystem takes
// is not silent.
type phaseWriter struct {
	log    *slog.Logger
	target string
	start  time.Time
	buf    []byte
}

func (p *phaseWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
		if phase, ok := strings.CutPrefix(line, "I: "); ok {
			p.log.Info("making root filesystem: "+strings.TrimSuffix(phase, "..."), "target", p.target, "seconds", time.Since(p.start).Round(time.Second).Seconds())
		}
	}
	return len(b), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
