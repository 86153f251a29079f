package confinement_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/mirror"
)

// attempts is how many lines the probe prints where it runs fully: host
// root, the clock, two sysctl writes, the disk, devtmpfs, a tmpfs, a
// remount, loopback, the secret, the chroot escape, and the mirror (a
// lookup when it is named, and a connection).
func attempts(mirrorAddr string) int {
	n := 11
	if mirrorAddr != "" {
		n++
		if host, _, _ := net.SplitHostPort(mirrorAddr); net.ParseIP(host) == nil {
			n++
		}
	}
	return n
}

// lines collects the probe's lines from events and writers.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Emit(e event.Event) {
	if e.Kind == event.ComponentOutput || e.Kind == event.StageOutput {
		l.mu.Lock()
		l.buf.WriteString(e.Line + "\n")
		l.mu.Unlock()
	}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// probes returns the probe lines printed at each position.
func (l *lines) probes() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if i := strings.Index(line, "PROBE "); i >= 0 {
			f := strings.Fields(line[i:])
			if len(f) > 2 && strings.Contains(line, ": ") && !strings.Contains(line, "not installed yet") {
				out[f[1]] = append(out[f[1]], line[i:])
			}
		}
	}
	return out
}

const hookHead = "#!/bin/sh\np=/var/lib/coach-probe/probe\n"

var repoFiles = map[string]string{
	"software/probe.yaml": `name: probe
license: MIT
versions: [{version: 1.0.0, path: probe}]
build:
  - ./probe build
  - mkdir -p {{.InstallDir}}/bin && cp probe {{.InstallDir}}/bin/probe
`,
	"projects/probe.yaml": `name: probe
description: tries to reach the host from every place coach runs code
maintainer: M <m@example.com>
license: MIT
version: 1.0.0
iteration: 1
software: [probe]
targets: [debian-12, el9]
package:
  strip: false
verify:
  - /opt/probe/bin/probe verify
`,
	// The package's own file is gone when preinst (first install) and
	// postrm run: postinst keeps a copy outside the package, which purge
	// (deb) or erase (rpm, $1 = 0) removes.
	"scripts/probe/preinst":  hookHead + "if [ -x \"$p\" ]; then \"$p\" preinst; else echo \"PROBE preinst: not installed yet\"; fi\nexit 0\n",
	"scripts/probe/postinst": hookHead + "mkdir -p /var/lib/coach-probe && cp /opt/probe/bin/probe \"$p\" && \"$p\" postinst\nexit 0\n",
	"scripts/probe/prerm":    hookHead + "\"$p\" prerm\nexit 0\n",
	"scripts/probe/postrm":   hookHead + "[ -x \"$p\" ] && \"$p\" postrm\ncase \"$1\" in purge|0) rm -rf /var/lib/coach-probe;; esac\nexit 0\n",
}

// TestProbeCorpus runs the probe as a build step, in coach shell, and as
// the preinst, postinst, prerm and postrm and the verify command of a deb
// (debian-12) and of an rpm (el9, packaged from the debian-12 build),
// each verified as an upgrade from iteration 1 to 2 so that every hook
// runs with the probe installed. Every attempt must be blocked in every
// position, and the host's loopback server must see no connection.
func TestProbeCorpus(t *testing.T) {
	for _, tool := range []string{"bwrap", "mmdebstrap", "rpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	t.Setenv("COACH_ROOTFS_DIR", testroots.Dir())
	ctx := context.Background()

	// The host: a loopback server that counts connections, a file only
	// host root reads, the root disk's device number, the mirror.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var connections atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connections.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	secretText := make([]byte, 16)
	rand.Read(secretText)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(hex.EncodeToString(secretText)), 0o600); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	mirrorAddr := ""
	if base, err := mirror.Host().Base("debian"); err == nil {
		if u, err := url.Parse(base); err == nil && u.Host != "" {
			port := u.Port()
			if port == "" {
				port = "80"
				if u.Scheme == "https" {
					port = "443"
				}
			}
			mirrorAddr = net.JoinHostPort(u.Hostname(), port)
		}
	}

	// The repository, with the probe built for it.
	repo := t.TempDir()
	for name, body := range repoFiles {
		p := filepath.Join(repo, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ldflags := fmt.Sprintf("-X main.secret=%s -X main.secretText=%s -X main.hostPort=%s -X main.diskMajor=%d -X main.diskMinor=%d -X main.mirror=%s",
		secret, hex.EncodeToString(secretText), port, unix.Major(st.Dev), unix.Minor(st.Dev), mirrorAddr)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(gobin, "build", "-o", filepath.Join(repo, "software/probe/probe"), "-ldflags", ldflags, "./testdata/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}

	cache := t.TempDir()
	got := map[string]*lines{}
	collect := func(name string) *lines {
		if got[name] == nil {
			got[name] = &lines{}
		}
		return got[name]
	}
	// The build step, and packages of iterations 1 and 2, deb and rpm.
	pkgs := map[string]string{}
	for _, it := range []int{1, 2} {
		out := filepath.Join(t.TempDir(), "pkg")
		res, err := pipeline.Run(ctx, pipeline.BuildRequest{Root: repo, Project: "probe", Targets: []string{"debian-12"}, Iteration: it,
			CacheDir: cache, NoVerify: true, OutDir: out, Events: collect("build").Emit, RunnerName: "sandbox"})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		pkgs[fmt.Sprintf("deb%d", it)] = res.Release.Artifacts[0].Path
		rel, err := pipeline.Package(ctx, pipeline.PackageRequest{Root: repo, Project: "probe", Targets: []string{"el9"}, From: "debian-12", Iteration: it,
			CacheDir: cache, OutDir: filepath.Join(t.TempDir(), "pkg")})
		if err != nil {
			t.Fatalf("package the rpm: %v", err)
		}
		pkgs[fmt.Sprintf("rpm%d", it)] = rel.Artifacts[0].Path
	}
	// coach shell, with the probe as its command.
	sh := collect("shell")
	if err := pipeline.Shell(ctx, pipeline.ShellRequest{Root: repo, Project: "probe", Target: "debian-12", Argv: []string{"./probe", "shell"},
		Stdin: nil, Stdout: sh, Stderr: sh, CacheDir: cache, RunnerName: "sandbox"}); err != nil {
		t.Fatalf("shell: %v", err)
	}
	// Verify: install 1, upgrade to 2, remove, purge; deb and rpm.
	for _, format := range []string{"deb", "rpm"} {
		var verifyLines []string
		var mu sync.Mutex
		into := collect(format)
		reps, err := pipeline.Verify(ctx, pipeline.VerifyRequest{Root: repo, Packages: []string{pkgs[format+"2"]}, Previous: pkgs[format+"1"],
			CacheDir: cache, RunnerName: "sandbox", Events: func(e event.Event) {
				into.Emit(e)
				if e.Kind == event.StageOutput && e.Stage == event.StageVerify {
					mu.Lock()
					verifyLines = append(verifyLines, e.Line)
					mu.Unlock()
				}
			}})
		if err != nil {
			t.Fatalf("verify the %s: %v", format, err)
		}
		if !reps[0].OK {
			t.Fatalf("verify the %s failed: %+v", format, reps[0].Failed())
		}
		// Progress is one line per step, whatever the tools print.
		if len(verifyLines) != len(reps[0].Steps) {
			t.Errorf("%s: %d verify lines for %d steps:\n\t%s", format, len(verifyLines), len(reps[0].Steps), strings.Join(verifyLines, "\n\t"))
		}
		// The packages' scripts print into the tools' output, which is in
		// the verify log (the events carry a line per step).
		data, err := os.ReadFile(reps[0].Log)
		if err != nil {
			t.Fatalf("the verify log of the %s: %v", format, err)
		}
		got[format].Write(data)
		t.Logf("%s: %s", format, reps[0].Where)
		for _, s := range reps[0].Steps {
			if s.Network && !strings.HasPrefix(s.Name, "download") {
				t.Errorf("%s: the step %q had the network", format, s.Name)
			}
		}
	}

	want := attempts(mirrorAddr)
	for _, run := range []struct{ name, positions string }{
		{"build", "build"}, {"shell", "shell"},
		{"deb", "preinst postinst prerm postrm verify"}, {"rpm", "preinst postinst prerm postrm verify"},
	} {
		found := got[run.name].probes()
		for _, pos := range strings.Fields(run.positions) {
			ls := found[pos]
			reached := slices.DeleteFunc(slices.Clone(ls), func(l string) bool { return !strings.HasSuffix(l, "REACHED") })
			switch {
			case len(reached) > 0:
				t.Errorf("%s %s reached the host:\n\t%s", run.name, pos, strings.Join(reached, "\n\t"))
			case len(ls) < want:
				t.Errorf("%s %s: %d probe lines, want at least %d (did the probe run?):\n\t%s", run.name, pos, len(ls), want, strings.Join(ls, "\n\t"))
			}
		}
		t.Logf("%s: %s, every attempt blocked", run.name, run.positions)
	}
	if n := connections.Load(); n > 0 {
		t.Errorf("the host's loopback server saw %d connections", n)
	}
	if testing.Verbose() {
		for _, l := range got["deb"].probes()["postinst"] {
			t.Log(l)
		}
	}
}
