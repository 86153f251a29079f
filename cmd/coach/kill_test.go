package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// running lists the processes whose command line contains marker.
func running(marker string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(marker)) {
			out = append(out, filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " "))
		}
	}
	return out
}

// TestKillLeavesNothingRunning SIGKILLs coach at many moments after a build
// step starts, from at once to a second in, and checks each time that
// nothing of the step is left running: bubblewrap clears the parent-death
// signal it inherits, so a kill in its first milliseconds used to leave the
// step running for good. Each run's step has a command line of its own, so
// the test looks only for its own processes.
func TestKillLeavesNothingRunning(t *testing.T) {
	coach, rootfs := coachBinary(t, "the test kills a sandboxed build", "bwrap", "mmdebstrap")
	repo, cache := t.TempDir(), t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(repo, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("projects/app.yaml", "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [slow]\n")
	write("software/src/README", "a source tree\n")
	log := filepath.Join(cache, "work/app/debian-12/slow/build.log")
	ms := time.Millisecond
	offsets := []time.Duration{0, 0, 1 * ms, 2 * ms, 5 * ms, 8 * ms, 10 * ms, 12 * ms, 15 * ms, 20 * ms, 25 * ms, 30 * ms, 35 * ms, 40 * ms, 45 * ms, 50 * ms, 100 * ms, 200 * ms, 500 * ms, 1000 * ms}
	leaked := 0
	for i, off := range offsets {
		// sleep takes fractional seconds: each run's step is distinct (so
		// it is built, not cached) and recognisable.
		marker := fmt.Sprintf("600.%05d%02d", os.Getpid()%100000, i)
		write("software/slow.yaml", "name: slow\nlicense: MIT\nversions: [{version: 1.0.0, path: src}]\nbuild:\n  - sleep "+marker+"\n")
		os.Remove(log)
		cmd := exec.Command(coach, "-C", repo, "build", "app", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--no-package")
		cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+rootfs)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The step header is written just before the step is started.
		deadline := time.Now().Add(20 * time.Minute) // the first run may make the root filesystem
		for {
			if b, _ := os.ReadFile(log); bytes.Contains(b, []byte("step 1/1")) {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("the step never started:\n%s", stderr.String())
			}
			time.Sleep(200 * time.Microsecond)
		}
		time.Sleep(off)
		cmd.Process.Kill()
		cmd.Wait()
		var left []string
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * ms) {
			if left = running("sleep " + marker); len(left) == 0 {
				break
			}
		}
		if len(left) > 0 {
			leaked++
			t.Errorf("killed %s after the step started: still running after 3 s:\n\t%s", off, strings.Join(left, "\n\t"))
			for _, l := range left {
				var pid int
				fmt.Sscanf(l, "%d:", &pid)
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
	}
	t.Logf("%d kills at offsets %v after the step started: %d left a process running", len(offsets), offsets, leaked)
}

// coachBinary is the test binary under the name coach (testscript's Main
// runs coach when it is called so), and the root filesystem directory the
// tests share; it skips when a tool the test needs is missing.
func coachBinary(t *testing.T, why string, tools ...string) (coach, rootfs string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it): %s", tool, why)
		}
	}
	coach = filepath.Join(t.TempDir(), "coach")
	if err := os.Symlink(os.Args[0], coach); err != nil {
		t.Fatal(err)
	}
	return coach, testRootfsDir()
}

// helloRepo copies the repository's hello project into a new directory.
func helloRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	for _, d := range []string{"projects", "software", "scripts"} {
		os.Mkdir(filepath.Join(repo, d), 0o755)
	}
	copyRepoFiles(t, repo, "projects/hello.yaml", "projects/hello.lock", "projects/hello.CHANGELOG.md", "software/hello.yaml", "software/hello", "software/libgreet.yaml", "software/libgreet", "scripts/hello")
	return repo
}

// copyRepoFiles copies the named files and directories of this repository
// into dst.
func copyRepoFiles(t *testing.T, dst string, names ...string) {
	t.Helper()
	for _, n := range names {
		out, err := exec.Command("cp", "-a", filepath.Join("../..", n), filepath.Join(dst, n)).CombinedOutput()
		if err != nil {
			t.Fatalf("copy %s: %v: %s", n, err, out)
		}
	}
}

// TestConcurrentBuilds runs two builds of hello for the same target at the
// same time, from the cache and with --no-cache: both must succeed, the
// second waiting for the first and saying so. COACH_TEST_CONCURRENT_N sets
// how many pairs of each (default 3).
func TestConcurrentBuilds(t *testing.T) {
	coach, rootfs := coachBinary(t, "the test builds hello in the sandbox", "bwrap", "mmdebstrap", "strip")
	n := 3
	if v := os.Getenv("COACH_TEST_CONCURRENT_N"); v != "" {
		fmt.Sscanf(v, "%d", &n)
	}
	repo, cache := helloRepo(t), t.TempDir()
	waited := 0
	for _, extra := range [][]string{nil, {"--no-cache"}} {
		for i := 0; i < n; i++ {
			type out struct {
				stderr string
				err    error
			}
			results := make(chan out, 2)
			for j := 0; j < 2; j++ {
				go func() {
					args := append([]string{"-C", repo, "build", "hello", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--no-verify", "-o", filepath.Join(cache, fmt.Sprintf("pkg-%d", j))}, extra...)
					cmd := exec.Command(coach, args...)
					cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+rootfs)
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					err := cmd.Run()
					results <- out{stderr.String(), err}
				}()
			}
			for j := 0; j < 2; j++ {
				r := <-results
				if r.err != nil {
					t.Errorf("concurrent build %v #%d failed: %v\n%s", extra, i, r.err, r.stderr)
				}
				if strings.Contains(r.stderr, "waiting for another coach run") {
					waited++
				}
			}
		}
	}
	t.Logf("%d pairs of concurrent builds, with and without --no-cache: all succeeded; %d builds waited for the other", 2*n, waited)
}

// TestVerifyInterrupted: SIGINT during verify exits 130 and removes the
// scratch root; a SIGKILLed verify leaves its root, and the next verify
// sweeps it away.
func TestVerifyInterrupted(t *testing.T) {
	coach, rootfs := coachBinary(t, "the test verifies hello in a clean root", "bwrap", "mmdebstrap", "strip", "dpkg-deb")
	repo, cache := helloRepo(t), t.TempDir()
	env := append(os.Environ(), "COACH_ROOTFS_DIR="+rootfs)
	out := filepath.Join(cache, "pkg")
	build := exec.Command(coach, "-C", repo, "build", "hello", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--no-verify", "-o", out)
	build.Env = env
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	deb := filepath.Join(out, "hello-1.2.0-1", "hello_1.2.0-1+deb12_amd64.deb")
	roots := func() []string {
		m, _ := filepath.Glob(filepath.Join(cache, "verify", "root-*"))
		return m
	}
	// start runs coach verify and returns once its scratch root exists.
	start := func() *exec.Cmd {
		cmd := exec.Command(coach, "-C", repo, "verify", deb, "--runner", "sandbox", "--cache-dir", cache)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(10 * time.Minute); len(roots()) == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				cmd.Process.Kill()
				t.Fatal("verify made no scratch root")
			}
		}
		time.Sleep(300 * time.Millisecond) // into the copy or apt
		return cmd
	}

	cmd := start()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Errorf("SIGINT during verify: %v, want exit code %d", err, exitInterrupted)
	}
	if left := roots(); len(left) != 0 {
		t.Errorf("an interrupted verify left %v", left)
	}

	cmd = start()
	cmd.Process.Kill()
	cmd.Wait()
	left := roots()
	if len(left) == 0 {
		t.Fatal("a SIGKILLed verify left no scratch root; the sweep below proves nothing")
	}
	again := exec.Command(coach, "-C", repo, "verify", deb, "--runner", "sandbox", "--cache-dir", cache)
	again.Env = env
	if b, err := again.CombinedOutput(); err != nil {
		t.Fatalf("verify after a killed one: %v\n%s", err, b)
	}
	for _, l := range left {
		if _, err := os.Stat(l); err == nil {
			t.Errorf("%s, left by a killed verify, was not swept", l)
		}
	}
}
