package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptyOutput collects what a pseudo-terminal shows.
type ptyOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *ptyOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *ptyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the terminal shows want (after from bytes of it)
// and returns where it ends.
func (o *ptyOutput) waitFor(t *testing.T, want string, from int, exited <-chan struct{}) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		s := o.String()
		if i := strings.Index(s[min(from, len(s)):], want); i >= 0 {
			return from + i + len(want)
		}
		select {
		case <-exited:
			// What it printed last may still be on its way from the pty.
			time.Sleep(200 * time.Millisecond)
			s := o.String()
			if i := strings.Index(s[min(from, len(s)):], want); i >= 0 {
				return from + i + len(want)
			}
			t.Fatalf("coach exited before the terminal showed %q:\n%s", want, s)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the terminal never showed %q:\n%s", want, o.String())
	return 0
}

// TestShellThroughPseudoTerminal opens coach shell hello hello in a
// pseudo-terminal, as a person would, and types into it: the prompt names
// the component and target, cc with $CPPFLAGS finds libgreet's header
// (which only the dependency's layer has, and which cc does not find
// without them), Ctrl-C stops the shell's foreground job and not coach,
// and coach exits with the shell's status.
func TestShellThroughPseudoTerminal(t *testing.T) {
	coach, rootfs := coachBinary(t, "the shell is in the sandbox's build environment", "bwrap", "mmdebstrap")
	repo, cache := helloRepo(t), t.TempDir()
	cmd := exec.Command(coach, "-C", repo, "shell", "hello", "-t", "debian-12", "hello", "--runner", "sandbox", "--cache-dir", cache)
	cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+rootfs, "TERM=dumb")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 200, Rows: 50})
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	out := &ptyOutput{}
	go io.Copy(out, ptmx)
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()

	type_ := func(line string) { ptmx.Write([]byte(line + "\r")) }
	// The answers are computed by the shell, so that the echo of what
	// was typed does not count as one.
	at := out.waitFor(t, "(coach hello@debian-12) ", 0, exited)
	type_(`printf '#include <greet.h>\nint main(void) { return 0; }\n' > /tmp/t.c`)
	type_(`cc $CPPFLAGS -fsyntax-only /tmp/t.c && echo "found-$((40+2))"`)
	at = out.waitFor(t, "found-42", at, exited)
	type_(`cc -fsyntax-only /tmp/t.c 2>/dev/null || echo "without-cppflags-$((5+5))"`)
	at = out.waitFor(t, "without-cppflags-10", at, exited)
	type_(`echo "dir-$(pwd)-$((1+1))"`)
	at = out.waitFor(t, "dir-/coach/src-2", at, exited)

	// Ctrl-C reaches the shell's foreground job, not coach.
	type_("sleep 60")
	time.Sleep(500 * time.Millisecond)
	ptmx.Write([]byte{3})
	type_(`echo "still-here-$((3*3))"`)
	at = out.waitFor(t, "still-here-9", at, exited)

	type_("exit 7")
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("coach did not exit with the shell:\n%s", out.String())
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) || ee.ExitCode() != 7 {
		t.Errorf("coach shell exited with %v, want the shell's status 7:\n%s", waitErr, out.String())
	}
	if t.Failed() {
		t.Logf("terminal:\n%s", out.String())
	}

	// A command that is not a job-control shell reads the terminal too:
	// coach puts it in the terminal's foreground.
	cmd = exec.Command(coach, "-C", repo, "shell", "hello", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache,
		"--", "sh", "-c", `read line; echo "got-$line-$((2+2))"`)
	cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+rootfs, "TERM=dumb")
	ptmx2, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx2.Close()
	out2 := &ptyOutput{}
	go io.Copy(out2, ptmx2)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
		}
	}()
	time.Sleep(time.Second)
	ptmx2.Write([]byte("typed\r"))
	out2.waitFor(t, "got-typed-4", 0, done)
}

// TestShellRunsCommandInEnvironment runs a command instead of the shell:
// it sees the steps' environment and the dependency's layer, what it
// writes at the install dir is thrown away (a build afterwards ships no
// stray file), and its status is coach's.
func TestShellRunsCommandInEnvironment(t *testing.T) {
	coach, rootfs := coachBinary(t, "the shell is in the sandbox's build environment", "bwrap", "mmdebstrap")
	repo, cache := helloRepo(t), t.TempDir()
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(coach, append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+rootfs, "CI=true")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}
	stdout, stderr, code := run("shell", "hello", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--",
		"sh", "-c", `echo "cppflags=$CPPFLAGS"; ls /opt/hello/embedded/lib; touch /opt/hello/stray; exit 4`)
	if code != 4 {
		t.Fatalf("exit code %d, want the command's 4\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"cppflags=-I/opt/hello/embedded/include", "libgreet.so.1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stderr, "coach:") {
		t.Errorf("a command's own status is not coach's failure to report:\n%s", stderr)
	}
	// --json: one document, with the status; the command's output on stderr.
	stdout, stderr, code = run("--json", "shell", "hello", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--", "sh", "-c", "echo from-the-command; exit 3")
	if code != 3 || !strings.Contains(stderr, "from-the-command") || !strings.Contains(stdout, `"exit_status": 3`) || strings.Contains(stdout, "from-the-command") {
		t.Errorf("--json: code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Nothing the shell wrote is in a build.
	if _, stderr, code := run("build", "hello", "-t", "debian-12", "--runner", "sandbox", "--cache-dir", cache, "--no-verify"); code != 0 {
		t.Fatalf("build after the shell: code %d\n%s", code, stderr)
	}
	out, err := exec.Command("find", cache, "-name", "stray").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("what the shell wrote is still in the cache: %v %s", err, out)
	}
	// A component that is not the project's, and two targets.
	if _, stderr, code := run("shell", "hello", "-t", "debian-12", "nosuch", "--cache-dir", cache, "--", "true"); code != exitUsage || !strings.Contains(stderr, "nosuch is not a component of hello") {
		t.Errorf("unknown component: code %d: %s", code, stderr)
	}
	if _, stderr, code := run("shell", "hello", "--cache-dir", cache, "--", "true"); code != exitUsage || !strings.Contains(stderr, "choose one with -t") {
		t.Errorf("no target: code %d: %s", code, stderr)
	}
}

// TestBuildDebugOpensShellWhereStepFailed breaks a step and builds with
// --debug: the shell opens in the failed step's directory with its
// environment, sees what the step wrote before it failed (in the source
// and at the install dir), and when it exits the build fails as it would
// have.
func TestBuildDebugOpensShellWhereStepFailed(t *testing.T) {
	coach, rootfs := coachBinary(t, "--debug opens a shell in the sandbox", "bwrap", "mmdebstrap")
	repo, cache := t.TempDir(), t.TempDir()
	writeTree(t, repo, map[string]string{
		"projects/app.yaml":   "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [broken]\n",
		"software/src/README": "a source tree\n",
		"software/broken.yaml": "name: broken\nlicense: MIT\nversions: [{version: 1.0.0, path: src}]\nenv:\n  FOO: bar\nbuild:\n" +
			"  - mkdir -p sub {{.InstallDir}}/share && echo half > {{.InstallDir}}/share/half && echo made > sub/made\n" +
			"  - run: echo about to fail; false\n    dir: sub\n" +
			"  - echo never\n",
	})
	cmd := exec.Command(coach, "-C", repo, "build", "app", "--runner", "sandbox", "--cache-dir", cache, "--debug", "--no-verify")
	cmd.Env = append(os.Environ(), "COACH_ROOTFS_DIR="+rootfs, "CI=true")
	cmd.Stdin = strings.NewReader(`echo "pwd=$(pwd) foo=$FOO made=$(cat made) half=$(cat /opt/app/share/half)"` + "\nexit\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitBuild {
		t.Fatalf("build --debug: %v, want exit code %d\nstdout:\n%s\nstderr:\n%s", err, exitBuild, stdout.String(), stderr.String())
	}
	if want := "pwd=/coach/src/sub foo=bar made=made half=half"; !strings.Contains(stdout.String(), want) {
		t.Errorf("the debug shell did not see the failed step's state (want %q)\nstdout:\n%s\nstderr:\n%s", want, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "step 2/3 (") || !strings.Contains(stderr.String(), "exited with code 1") {
		t.Errorf("no banner naming the failed step:\n%s", stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "| never") {
		t.Errorf("the build went on after the failed step")
	}
}
