package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinshun/vt10x"
)

// screen is a terminal emulator fed by a pty: what a person would see.
type screen struct {
	mu   sync.Mutex
	term vt10x.Terminal
	raw  bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw.Write(p)
	return s.term.Write(p)
}

// lines are the screen's non-blank lines, right-trimmed.
func (s *screen) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.term.String(), "\n") {
		if l = strings.TrimRight(l, " \x00"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestTerminalView runs a build in a pseudo-terminal and reads the screen
// as a terminal emulator draws it: while a step of a few seconds runs, its
// elapsed time advances and its last output line shows; at the end every
// log record printed during the build is on the screen exactly once, no
// line is repeated (the view never draws over the log, nor leaves stale
// copies of itself), and the summary is there in pipeline order.
func TestTerminalView(t *testing.T) {
	coach, rootfs := coachBinary(t, "the terminal view is of a sandboxed build", "bwrap", "mmdebstrap")
	repo, cache := appRepo(t, "quick, slow", map[string]string{
		"quick": "name: quick\nlicense: MIT\nversions: [{version: 2.0.0, path: src}]\nbuild:\n  - echo quick one\n  - mkdir -p {{.InstallDir}}/share && cp README {{.InstallDir}}/share/quick\n",
		"slow":  "name: slow\nlicense: MIT\nversions: [{version: 3.0.0, path: src}]\ndependencies: [quick]\nbuild:\n  - for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done\n  - mkdir -p {{.InstallDir}}/share && cp README {{.InstallDir}}/share/slow\n",
	}), t.TempDir()
	// Watch the slow component's row while its step runs.
	row := regexp.MustCompile(`^\s+slow\s+3\.0\.0\s+\S+ building (.*)\((\d+)s\)(.*)$`)
	var seen []int
	sawOutput := false
	var stdout bytes.Buffer
	args := []string{coach, "-C", repo, "-v", "build", "app", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--no-verify"}
	final, runErr := ptyRun(t, 160, 200, rootfs, args, &stdout, func(lines []string, _ *os.Process) {
		for _, l := range lines {
			if m := row.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[2])
				if len(seen) == 0 || seen[len(seen)-1] != n {
					seen = append(seen, n)
				}
				if strings.Contains(m[3], "│ tick") {
					sawOutput = true
				}
			}
		}
	})
	screenText := strings.Join(final, "\n")
	if runErr != nil {
		t.Fatalf("build failed: %v\n%s", runErr, screenText)
	}

	t.Logf("the slow step's elapsed time, as drawn while it ran: %v", seen)
	// The elapsed time advanced while the step ran, second by second.
	if len(seen) < 4 {
		t.Errorf("the slow step's elapsed time took the values %v while it ran; want at least 4 of them, advancing", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Errorf("the elapsed time went back: %v", seen)
		}
	}
	if !sawOutput {
		t.Errorf("the slow step's row never showed its last output line")
	}

	// Every log record printed during the build is there exactly once.
	for _, want := range []string{
		"DEBUG building target=debian-12 component=quick version=2.0.0",
		"DEBUG built target=debian-12 component=quick",
		"DEBUG building target=debian-12 component=slow version=3.0.0",
		"DEBUG built target=debian-12 component=slow",
		"WARN no SOURCE_DATE_EPOCH and no lock file",
		"INFO packaged target=debian-12 file=app_1.0.0-1+deb12_amd64.deb",
	} {
		if n := countContaining(final, want); n != 1 {
			t.Errorf("%q is on the screen %d times, want once", want, n)
		}
	}
	noRepeatedLines(t, final)
	// The summary: a header, the target, each component once, in plan
	// order, and the total.
	var order []string
	for _, l := range final {
		switch {
		case strings.HasPrefix(l, "coach app 1.0.0 · 1 target · sandbox runner"):
			order = append(order, "header")
		case regexp.MustCompile(`^debian-12\s+✓ build\s+✓ health$`).MatchString(l):
			order = append(order, "target")
		case regexp.MustCompile(`^release\s+✓ package$`).MatchString(l):
			order = append(order, "release")
		case regexp.MustCompile(`^\s+quick\s+2\.0\.0\s+built in`).MatchString(l):
			order = append(order, "quick")
		case regexp.MustCompile(`^\s+slow\s+3\.0\.0\s+built in \d`).MatchString(l):
			order = append(order, "slow")
		case strings.HasPrefix(l, "coach app done in") && strings.Contains(l, "2 components: 2 built, 0 cached"):
			order = append(order, "total")
		}
	}
	if got, want := strings.Join(order, " "), "header target quick slow release total"; got != want {
		t.Errorf("summary rows are %q, want %q; screen:\n%s", got, want, screenText)
	}
	if t.Failed() {
		t.Logf("screen at the end:\n%s", screenText)
	}
	if !strings.Contains(stdout.String(), "debian-12: pkg/app-1.0.0-1/app_1.0.0-1+deb12_amd64.deb") {
		t.Errorf("stdout lacks the package:\n%s", stdout.String())
	}
}

func countContaining(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// TestPlainStreamsStepOutput checks that in plain mode (a pipe, as in CI)
// each line a step prints shows within a second of being printed: the
// step prints a numbered line every second, and the test reads coach's stderr as
// it comes and compares.
func TestPlainStreamsStepOutput(t *testing.T) {
	coach, rootfs := coachBinary(t, "plain output is of a sandboxed build", "bwrap", "mmdebstrap")
	repo, cache := t.TempDir(), t.TempDir()
	writeTree(t, repo, map[string]string{
		"projects/app.yaml":   "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [ticker]\n",
		"software/src/README": "a source tree\n",
		// The sandbox has no clock of the host's; the step prints a
		// sequence number and the test notes when each arrives.
		"software/ticker.yaml": "name: ticker\nlicense: MIT\nversions: [{version: 1.0.0, path: src}]\nbuild:\n  - for i in 1 2 3 4 5; do echo tick-$i; sleep 1; done\n  - mkdir -p {{.InstallDir}}/share && cp README {{.InstallDir}}/share/ticker\n",
	})
	cmd := exec.Command(coach, "-C", repo, "build", "app", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--no-package")
	cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+rootfs, "CI=true")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	arrived := map[int]time.Time{}
	var all bytes.Buffer
	buf := make([]byte, 4096)
	var partial []byte
	re := regexp.MustCompile(`^\d\d:\d\d:\d\d debian-12 ticker \| tick-(\d)$`)
	for {
		n, err := pr.Read(buf)
		now := time.Now()
		all.Write(buf[:n])
		partial = append(partial, buf[:n]...)
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			if m := re.FindSubmatch(partial[:i]); m != nil {
				k, _ := strconv.Atoi(string(m[1]))
				arrived[k] = now
			}
			partial = partial[i+1:]
		}
		if errors.Is(err, io.EOF) || err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("build failed: %v\n%s", err, all.String())
	}
	if len(arrived) != 5 {
		t.Fatalf("saw %d of the 5 tick lines:\n%s", len(arrived), all.String())
	}
	// The step prints a line a second; each must arrive about a second
	// after the one before, not in a burst at the end.
	for k := 2; k <= 5; k++ {
		gap := arrived[k].Sub(arrived[k-1])
		t.Logf("tick-%d arrived %v after tick-%d", k, gap.Round(time.Millisecond), k-1)
		if gap < 500*time.Millisecond || gap > 1500*time.Millisecond {
			t.Errorf("tick-%d came %v after tick-%d; a line printed every second must show within a second", k, gap, k-1)
		}
	}
	if !strings.Contains(all.String(), "debian-12 ticker: step 1/2: ") {
		t.Errorf("no step line:\n%s", all.String())
	}
}
