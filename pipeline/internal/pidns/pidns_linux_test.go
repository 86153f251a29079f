//go:build linux

package pidns

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/internal/userns"
)

// sandboxed runs a shell script in a sandbox of the host's own root, as
// the build and verify sandboxes are made: the layout by the init, then
// bubblewrap with Bwrap's arguments.
func sandboxed(t *testing.T, b Bwrap, script string) string {
	t.Helper()
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Skip("bubblewrap is not installed (.ci/run installs it)")
	}
	staging := t.TempDir()
	l := &Layout{Staging: staging, Mounts: []Mount{{Kind: Tmpfs}}}
	entries, _ := os.ReadDir("/")
	for _, e := range entries {
		switch name := e.Name(); {
		case name == "usr" || name == "etc":
			l.Mounts = append(l.Mounts, Mount{Kind: ReadOnly, Source: "/" + name, Target: "/" + name})
		case e.Type()&os.ModeSymlink != 0 && (name == "bin" || name == "lib" || name == "lib64" || name == "sbin"):
			link, _ := os.Readlink("/" + name)
			l.Mounts = append(l.Mounts, Mount{Kind: Symlink, Source: link, Target: "/" + name})
		}
	}
	for _, d := range []string{"/proc", "/dev", "/tmp"} {
		l.Mounts = append(l.Mounts, Mount{Kind: Dir, Options: "0755", Target: d})
	}
	b.Path = bwrap
	out, err := Command(append(b.Args(), "/bin/sh", "-c", script), l).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return string(out)
}

// TestSandboxHoldsNoHostRoot: root in the sandbox is not host root, has
// no CAP_SYS_ADMIN even in its own namespace, sees /proc/sys read-only
// and, without Net, only the loopback interface. Each defence alone fails
// this test when it is removed.
func TestSandboxHoldsNoHostRoot(t *testing.T) {
	out := sandboxed(t, Bwrap{}, `id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status; grep ' /proc/sys ' /proc/self/mountinfo; cat /proc/net/dev`)
	lines := strings.Split(out, "\n")
	if lines[0] != "0" {
		t.Errorf("the command runs as uid %s in its namespace, want 0", lines[0])
	}
	ids, err := userns.Current()
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(lines[1]); len(f) < 3 || f[0] != "0" || f[1] != strconv.Itoa(ids.UID) || f[1] == "0" {
		t.Errorf("uid_map %q: root here is not host uid %d", lines[1], ids.UID)
	}
	if ids.Ranged() && !strings.HasSuffix(strings.TrimSpace(lines[1]), "65536") {
		t.Errorf("uid_map %q maps less than coach's range", lines[1])
	}
	caps, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(lines[2], "CapEff:")), 16, 64)
	if caps&(1<<21) != 0 { // CAP_SYS_ADMIN
		t.Errorf("the command has CAP_SYS_ADMIN: %s", lines[2])
	}
	if !strings.Contains(lines[3], " /proc/sys ro,") {
		t.Errorf("/proc/sys is not read-only: %q", lines[3])
	}
	var ifaces []string
	for _, l := range lines[4:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && !strings.Contains(name, "|") {
			ifaces = append(ifaces, name)
		}
	}
	if len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Errorf("network interfaces %v, want lo alone", ifaces)
	}
	// With Net (verify's download), the host's interfaces are there.
	if out := sandboxed(t, Bwrap{Net: true}, "cat /proc/net/dev"); strings.Count(out, ":") < 2 {
		t.Logf("with the network: %s", out)
	}
}

// TestLayoutReadOnlyIsLocked: a read-only bind the init made stays
// read-only for the command, which cannot remount it (as root of its own
// namespace, even were CAP_SYS_ADMIN kept), and a directory the host
// cannot let others into (0700) is still bound.
func TestLayoutReadOnlyIsLocked(t *testing.T) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Skip("bubblewrap is not installed (.ci/run installs it)")
	}
	private := filepath.Join(t.TempDir(), "private")
	os.MkdirAll(filepath.Join(private, "data"), 0o755)
	os.WriteFile(filepath.Join(private, "data/file"), []byte("kept\n"), 0o644)
	os.Chmod(private, 0o700)
	l := &Layout{Staging: t.TempDir(), Mounts: []Mount{{Kind: Tmpfs},
		{Kind: ReadOnly, Source: "/usr", Target: "/usr"}, {Kind: Symlink, Source: "usr/bin", Target: "/bin"}, {Kind: Symlink, Source: "usr/lib", Target: "/lib"},
		{Kind: Symlink, Source: "usr/lib64", Target: "/lib64"}, {Kind: Dir, Options: "0755", Target: "/proc"}, {Kind: Dir, Options: "0755", Target: "/dev"},
		{Kind: ReadOnly, Source: filepath.Join(private, "data"), Target: "/data"}}}
	// Keep CAP_SYS_ADMIN here: the lock alone must hold.
	args := Bwrap{Path: bwrap}.Args()
	for i, a := range args {
		if a == "--cap-drop" {
			args = append(args[:i:i], args[i+2:]...)
			break
		}
	}
	out, err := Command(append(args, "/bin/sh", "-c", "cat /data/file; unshare -m sh -c 'mount -o remount,bind,rw /data && echo remounted'; touch /data/x 2>/dev/null && echo written; true"), l).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.HasPrefix(string(out), "kept\n") {
		t.Errorf("the 0700 directory's content is not there: %q", out)
	}
	if strings.Contains(string(out), "remounted") || strings.Contains(string(out), "written") {
		t.Errorf("the read-only bind was made writable: %q", out)
	}
	if _, err := os.Stat(filepath.Join(private, "data/x")); err == nil {
		t.Error("the command wrote through a read-only bind")
	}
}

// TestSessionRunsCommandsInOneLayout: the commands of a session see one
// layout (what one writes there the next reads), each in namespaces of its
// own (a process one leaves behind is gone at the next), with its own exit
// status; a cancelled context kills the session.
func TestSessionRunsCommandsInOneLayout(t *testing.T) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Skip("bubblewrap is not installed (.ci/run installs it)")
	}
	work := t.TempDir()
	os.Chmod(work, 0o777)
	if err := userns.Chown(work); err != nil {
		t.Fatal(err)
	}
	l := &Layout{Staging: t.TempDir(), Mounts: []Mount{{Kind: Tmpfs},
		{Kind: ReadOnly, Source: "/usr", Target: "/usr"}, {Kind: Symlink, Source: "usr/bin", Target: "/bin"}, {Kind: Symlink, Source: "usr/lib", Target: "/lib"},
		{Kind: Symlink, Source: "usr/lib64", Target: "/lib64"}, {Kind: Dir, Options: "0755", Target: "/proc"}, {Kind: Dir, Options: "0755", Target: "/dev"},
		{Kind: ReadWrite, Source: work, Target: "/work"}}}
	var out strings.Builder
	s, err := StartSession(l, t.TempDir(), &out)
	if err != nil {
		t.Fatal(err)
	}
	sh := func(script string) []string { return append(Bwrap{Path: bwrap}.Args(), "/bin/sh", "-c", script) }
	ctx := context.Background()
	for i, c := range []struct {
		script string
		code   int
	}{
		{"echo first > /work/a; sleep 600 & echo started", 0},
		{"cat /work/a; ps -e -o comm= | grep -c sleep; exit 3", 3},
		{"echo 'it'\\''s quoted'", 0},
	} {
		code, err := s.Run(ctx, sh(c.script))
		if err != nil || code != c.code {
			t.Fatalf("command %d: %d, %v (want %d)\n%s", i, code, err, c.code, out.String())
		}
	}
	if want := "started\nfirst\n0\nit's quoted\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	start := time.Now()
	if _, err := s.Run(cctx, sh("sleep 600")); !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Errorf("a cancelled command: %v after %s", err, time.Since(start))
	}
	s.Close()
}

// TestContainedLeavesNoMountNorProcess: what a contained tool mounts is
// never seen by the host, and when it is killed nothing it started runs
// on. Without the mount namespace the tmpfs shows in the host's mount
// table; without the pid namespace the orphaned sleep survives the kill.
func TestContainedLeavesNoMountNorProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("Contained makes namespaces only as root")
	}
	dir := t.TempDir()
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) }) // had it leaked
	mark := "1000.4242"                                            // a sleep's argument no other process has
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := Contained(ctx, "/bin/sh", "-c", `mount -t tmpfs coach-contained-test "$1" && touch "$1/mounted" && sleep "$2" & sleep "$2"`, "sh", dir, mark)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// sleeps are the processes running sleep mark, with their mount tables.
	sleeps := func() []string {
		var tables []string
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			data, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if string(data) == "sleep\x00"+mark+"\x00" {
				m, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
				tables = append(tables, string(m))
			}
		}
		return tables
	}
	running := func() bool { return len(sleeps()) > 0 }
	deadline := time.Now().Add(10 * time.Second)
	for len(sleeps()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range sleeps() {
		if !strings.Contains(m, dir) {
			t.Fatalf("the contained tool did not mount its tmpfs on %s", dir)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Errorf("the host sees the contained tool's mount on %s", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "mounted")); err == nil {
		t.Error("a file written on the contained tmpfs is in the host's directory")
	}
	cancel()
	cmd.Wait()
	for running() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if running() {
		t.Error("a process the contained tool started outlived it")
	}
}
