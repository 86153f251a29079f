package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/hinshun/vt10x"
)

// ptyRun runs coach with its stderr on a pseudo-terminal of cols×rows,
// and its stdout too unless stdout is given (as in a person's terminal),
// and returns the screen's lines once coach has exited. watch, when given,
// sees the screen every 50 ms while coach runs.
func ptyRun(t *testing.T, cols, rows int, rootfs string, args []string, stdout io.Writer, watch func(lines []string, p *os.Process)) (final []string, err error) {
	t.Helper()
	ptmx, tty, perr := pty.Open()
	if perr != nil {
		t.Skipf("no pseudo-terminal here: %v", perr)
	}
	defer ptmx.Close()
	pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	scr := &screen{term: vt10x.New(vt10x.WithSize(cols, rows))}
	cmd := exec.Command(args[0], args[1:]...)
	env := []string{"TERM=xterm-256color", "COACH_ROOTFS_DIR=" + rootfs}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CI=") && !strings.HasPrefix(kv, "TERM=") && !strings.HasPrefix(kv, "NO_COLOR=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = tty, tty
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	copied := make(chan struct{})
	go func() {
		io.Copy(scr, ptmx)
		close(copied)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(5 * time.Minute)
	for {
		select {
		case err = <-exited:
			<-copied // the pty closes when coach exits
			return scr.lines(), err
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("coach did not end in 5 minutes; screen:\n%s", strings.Join(scr.lines(), "\n"))
		case <-time.After(50 * time.Millisecond):
			if watch != nil {
				watch(scr.lines(), cmd.Process)
			}
		}
	}
}

// checkScreen: each pattern matches exactly one line of the final screen,
// and no line is on it twice (a stale frame, or a frame drawn over what
// the command printed, would repeat one).
func checkScreen(t *testing.T, final []string, once ...string) {
	t.Helper()
	for _, p := range once {
		re := regexp.MustCompile(p)
		n := 0
		for _, l := range final {
			if re.MatchString(l) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines match %q, want 1", n, p)
		}
	}
	noRepeatedLines(t, final)
	if t.Failed() {
		t.Logf("final screen:\n%s", strings.Join(final, "\n"))
	}
}

// noRepeatedLines: no line is on the screen twice.
func noRepeatedLines(t *testing.T, final []string) {
	t.Helper()
	count := map[string]int{}
	for _, l := range final {
		count[l]++
	}
	for l, n := range count {
		if n > 1 {
			t.Errorf("line on the screen %d times: %q", n, l)
		}
	}
}

// appRepo writes project app (debian-12, the given software, in order)
// and each software definition, all built from software/src.
func appRepo(t *testing.T, software string, defs map[string]string) string {
	t.Helper()
	repo := t.TempDir()
	files := map[string]string{
		"projects/app.yaml":   "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [" + software + "]\n",
		"software/src/README": "a source tree\n",
	}
	for name, def := range defs {
		files["software/"+name+".yaml"] = def
	}
	writeTree(t, repo, files)
	return repo
}

// TestTerminalViewEnds builds a three-component project in a terminal of
// 80×24 and of 200×50, once succeeding and once failing, with stdout and
// stderr on the same screen as a person has them: the view is closed
// before the command prints its results, so the final screen holds every
// component's row and the package's path, each once, and no line twice.
// One step prints a line far wider than the terminal.
func TestTerminalViewEnds(t *testing.T) {
	coach, rootfs := coachBinary(t, "the terminal view is of a sandboxed build", "bwrap", "mmdebstrap")
	wide := strings.Repeat("w", 300) + " " + strings.Repeat("a-long-word ", 30)
	quick := "name: quick\nlicense: MIT\nversions: [{version: 2.0.0, path: src}]\nbuild:\n  - mkdir -p {{.InstallDir}}/share && cp README {{.InstallDir}}/share/quick\n"
	for _, size := range []struct{ cols, rows int }{{80, 24}, {200, 50}} {
		t.Run(fmt.Sprintf("%dx%d", size.cols, size.rows), func(t *testing.T) {
			t.Run("succeeds", func(t *testing.T) {
				repo, cache := appRepo(t, "quick, slow, wide", map[string]string{
					"quick": quick,
					"slow":  "name: slow\nlicense: MIT\nversions: [{version: 3.0.0, path: src}]\ndependencies: [quick]\nbuild:\n  - for i in 1 2 3; do echo tick $i; sleep 1; done\n  - mkdir -p {{.InstallDir}}/share && cp README {{.InstallDir}}/share/slow\n",
					"wide":  "name: wide\nlicense: MIT\nversions: [{version: 4.0.0, path: src}]\nbuild:\n  - echo " + wide + "; sleep 2\n  - mkdir -p {{.InstallDir}}/share && cp README {{.InstallDir}}/share/wide\n",
				}), t.TempDir()
				args := []string{coach, "-C", repo, "build", "app", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "-j", "3"}
				if size.cols > 80 {
					args = append(args, "--skip=verify") // verify's stage line is drawn at 80 columns
				}
				final, err := ptyRun(t, size.cols, size.rows, rootfs, args, nil, nil)
				if err != nil {
					t.Fatalf("build failed: %v\n%s", err, strings.Join(final, "\n"))
				}
				checkScreen(t, final,
					`^\s+quick\s+2\.0\.0\s+built in`, `^\s+slow\s+3\.0\.0\s+built in`, `^\s+wide\s+4\.0\.0\s+built in`,
					`^coach app done in .* 3 components: 3 built, 0 cached`,
					`^debian-12: pkg/app-1\.0\.0-1/app_1\.0\.0-1\+deb12_amd64\.deb$`)
			})
			t.Run("fails", func(t *testing.T) {
				repo, cache := appRepo(t, "quick, bad, slow", map[string]string{
					"quick": quick,
					"bad":   "name: bad\nlicense: MIT\nversions: [{version: 1.0.0, path: src}]\ndependencies: [quick]\nbuild:\n  - sleep 1\n  - echo the compiler said no; exit 3\n",
					"slow":  "name: slow\nlicense: MIT\nversions: [{version: 3.0.0, path: src}]\nbuild:\n  - for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 1; done\n",
				}), t.TempDir()
				final, err := ptyRun(t, size.cols, size.rows, rootfs, []string{coach, "-C", repo, "build", "app", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "-j", "3"}, nil, nil)
				if err == nil {
					t.Fatalf("the build passed:\n%s", strings.Join(final, "\n"))
				}
				checkScreen(t, final,
					`^\s+quick\s+2\.0\.0\s+built in`, `^\s+bad\s+1\.0\.0\s+FAILED after`, `^\s+slow\s+3\.0\.0\s+cancelled after`,
					`^coach app failed after .* 3 components: 1 built, 0 cached, 1 failed`,
					`^debian-12: FAILED at build$`)
				// The failure, as text, after the view: the step and its
				// exit code (the line may wrap).
				if all := strings.ReplaceAll(strings.Join(final, ""), " ", ""); !strings.Contains(all, "step2") || !strings.Contains(all, "exitedwithcode3") {
					t.Errorf("the failure is not on the screen:\n%s", strings.Join(final, "\n"))
				}
			})
		})
	}
}

// TestTerminalViewInterrupt: Ctrl-C (SIGINT) during a build in a terminal
// says at once that coach is stopping, and coach exits with 130 within
// 2 s, its screen clean.
func TestTerminalViewInterrupt(t *testing.T) {
	coach, rootfs := coachBinary(t, "the terminal view is of a sandboxed build", "bwrap", "mmdebstrap")
	repo, cache := appRepo(t, "slow", map[string]string{
		"slow": "name: slow\nlicense: MIT\nversions: [{version: 3.0.0, path: src}]\nbuild:\n  - for i in $(seq 60); do echo tick $i; sleep 1; done\n",
	}), t.TempDir()
	var sent, saw time.Time // when Ctrl-C was sent, and when 'stopping' showed
	building := regexp.MustCompile(`^\s+slow\s+3\.0\.0\s+\S+ building`)
	final, err := ptyRun(t, 80, 24, rootfs, []string{coach, "-C", repo, "build", "app", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache}, nil, func(lines []string, p *os.Process) {
		for _, l := range lines {
			switch {
			case sent.IsZero() && building.MatchString(l):
				p.Signal(syscall.SIGINT)
				sent = time.Now()
			case !sent.IsZero() && saw.IsZero() && strings.Contains(l, "stopping"):
				saw = time.Now()
			}
		}
	})
	ended := time.Now()
	if saw.IsZero() && countContaining(final, "stopping") > 0 {
		saw = ended // it came before coach exited, between two looks
	}
	if sent.IsZero() {
		t.Fatalf("the step never showed as building:\n%s", strings.Join(final, "\n"))
	}
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want code 130", err)
	}
	if saw.IsZero() {
		t.Errorf("the screen never said coach is stopping:\n%s", strings.Join(final, "\n"))
	} else if d := saw.Sub(sent); d > time.Second {
		t.Errorf("'stopping' showed %v after Ctrl-C, want at once", d)
	}
	if d := ended.Sub(sent); d > 2500*time.Millisecond {
		t.Errorf("coach exited %v after Ctrl-C, want within 2 s", d)
	}
	t.Logf("Ctrl-C: 'stopping' on the screen after %v, exit after %v", saw.Sub(sent).Round(time.Millisecond), ended.Sub(sent).Round(time.Millisecond))
	checkScreen(t, final)
}
