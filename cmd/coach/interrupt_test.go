package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/build"
)

// endless serves bodies that never end, a byte every 10 ms, and counts the
// requests it has seen.
func endless(t *testing.T) (base string, requests *atomic.Int32) {
	t.Helper()
	requests = &atomic.Int32{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte{0}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), requests
}

// TestSignalsStopCommandsQuickly sends SIGTERM or SIGINT to commands in
// the middle of what used to ignore it (a download that never ends, cache
// gc and clean waiting for a build's work lock) and checks that each
// exits with 130 within 2 s of the signal.
func TestSignalsStopCommandsQuickly(t *testing.T) {
	coach, _ := coachBinary(t, "")
	base, requests := endless(t)
	repo, cache, roots := t.TempDir(), t.TempDir(), t.TempDir()
	writeTree(t, repo, map[string]string{
		"projects/app.yaml":  "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [slow]\n",
		"software/slow.yaml": "name: slow\nlicense: MIT\nversions:\n  - version: 1.0.0\n    url: " + base + "/slow-1.0.0.tar.gz\n    sha256: " + strings.Repeat("0", 64) + "\nbuild: [make install]\n",
	})
	// A work tree of a project the repository does not have: cache gc
	// removes it, under its work lock, which the test holds.
	held := filepath.Join(cache, "work", "gone", "debian-12")
	os.MkdirAll(filepath.Join(held, "tree"), 0o755)
	unlock, err := build.LockWork(context.Background(), held, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	cleaned := filepath.Join(cache, "work", "app", "debian-12")
	os.MkdirAll(filepath.Join(cleaned, "tree"), 0o755)
	unlockApp, err := build.LockWork(context.Background(), cleaned, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockApp()

	for _, tc := range []struct {
		name  string
		args  []string
		sig   syscall.Signal
		ready func(stderr string) bool // the command is where the signal must stop it
	}{
		{"new software, an endless download", []string{"new", "software", "endless", "--url", base + "/endless.tar.gz"}, syscall.SIGTERM,
			func(string) bool { return requests.Load() >= 1 }},
		{"fetch, an endless download", []string{"fetch", "app", "--cache-dir", cache}, syscall.SIGINT,
			func(string) bool { return requests.Load() >= 2 }},
		{"cache gc, waiting for a build", []string{"cache", "gc", "--cache-dir", cache}, syscall.SIGTERM,
			func(stderr string) bool { return strings.Contains(stderr, "waiting for another coach run") }},
		{"clean, waiting for a build", []string{"clean", "app", "--cache-dir", cache}, syscall.SIGINT,
			func(stderr string) bool { return strings.Contains(stderr, "waiting for another coach run") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(coach, append([]string{"-C", repo, "--progress", "plain"}, tc.args...)...)
			// gc collects root filesystems too: never the shared test roots.
			cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+roots)
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for end := time.Now().Add(30 * time.Second); !tc.ready(stderr.String()); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(end) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("the command never got there:\n%s", stderr.String())
				}
			}
			time.Sleep(100 * time.Millisecond)
			sent := time.Now()
			cmd.Process.Signal(tc.sig)
			err := cmd.Wait()
			took := time.Since(sent)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
				t.Errorf("exit: %v, want code %d\n%s", err, exitInterrupted, stderr.String())
			}
			if took > 2*time.Second {
				t.Errorf("it took %s to stop after %s", took.Round(time.Millisecond), tc.sig)
			}
			t.Logf("stopped %s after %s", took.Round(time.Millisecond), tc.sig)
		})
	}
	if _, err := os.Stat(filepath.Join(held, "tree")); err != nil {
		t.Errorf("the interrupted gc removed the tree a build held: %v", err)
	}
}

// syncBuffer is a bytes.Buffer that a command writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNewSoftwareRefusesWhatIsNotAFile: a device or a FIFO given as the
// archive is refused at once, not read forever.
func TestNewSoftwareRefusesWhatIsNotAFile(t *testing.T) {
	coach, _ := coachBinary(t, "")
	repo := t.TempDir()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"file:///dev/zero", "file://" + fifo} {
		start := time.Now()
		out, err := exec.Command(coach, "-C", repo, "new", "software", "zeros", "--url", url).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "is not a regular file") {
			t.Errorf("--url %s: %v\n%s", url, err, out)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("--url %s took %s", url, took)
		}
	}
}

// TestNoSpaceForARootFilesystem: making a root filesystem on a full disk
// fails with exit 1 and one line naming the directory and "no space left
// on device", not mmdebstrap's output.
func TestNoSpaceForARootFilesystem(t *testing.T) {
	coach, _ := coachBinary(t, "the test makes a root filesystem", "bwrap", "mmdebstrap")
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	full := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "coach-full", full).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", full).Run()
	repo, cache := helloRepo(t), t.TempDir()
	cmd := exec.Command(coach, "-C", repo, "build", "hello", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--progress", "plain")
	cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+full)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
		t.Fatalf("exit %v, want %d\n%s", err, exitFailure, tail(stderr.String(), 20))
	}
	var report []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "coach: ") {
			report = append(report, l)
		}
	}
	if len(report) != 1 || !strings.Contains(report[0], "no space left on device") || !strings.Contains(report[0], full) {
		t.Errorf("the failure is not one line naming %s and the full disk:\n%s", full, strings.Join(report, "\n"))
	}
	if strings.Contains(stderr.String(), "mmdebstrap --variant") {
		t.Errorf("mmdebstrap's command line was dumped:\n%s", tail(stderr.String(), 20))
	}
}
