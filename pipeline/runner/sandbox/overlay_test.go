package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/target"
)

// TestEnvironmentRefusesNonPackageNames: a build package reaches apt's
// command line in a sandbox; what is not a package name is refused before
// anything runs, whatever the definition's checks let through.
func TestEnvironmentRefusesNonPackageNames(t *testing.T) {
	r := &Rootfs{Dir: t.TempDir()}
	tg, _ := target.Builtin("debian-12")
	for _, bad := range []string{"autoconf; touch /tmp/x", "--reinstall", "$(id)", "a b"} {
		_, err := r.environment(context.Background(), tg, "amd64", t.TempDir(), []string{"autoconf", bad})
		if err == nil || !strings.Contains(err.Error(), "is not a package name") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestApplyUpper lays an overlay's upper directory over its lower one as
// overlayfs shows them: whiteouts remove, an opaque directory hides the
// lower one's entries, a directory replaces a file or a link, and every
// other entry replaces the lower one's.
func TestApplyUpper(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("whiteouts (character devices 0/0) and trusted.* attributes need root")
	}
	dir := t.TempDir()
	write := func(p, body string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("root/a/keep", "lower")
	write("root/a/gone", "lower")
	write("root/a/replaced", "lower")
	write("root/b/hidden", "lower")
	write("root/c", "a file in the lower layer")
	os.Symlink("/etc", filepath.Join(dir, "root/d"))
	write("upper/a/new", "upper")
	write("upper/a/replaced", "upper")
	if err := unix.Mknod(filepath.Join(dir, "upper/a/gone"), unix.S_IFCHR|0o600, 0); err != nil {
		t.Fatal(err)
	}
	write("upper/b/shown", "upper")
	if err := unix.Setxattr(filepath.Join(dir, "upper/b"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	write("upper/c/z", "upper")
	write("upper/d/e", "a directory where the lower layer had a link")
	if err := applyUpper(dir, "upper", "root"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"a/keep": "lower", "a/new": "upper", "a/replaced": "upper", "b/shown": "upper", "c/z": "upper", "d/e": "a directory where the lower layer had a link"} {
		if b, err := os.ReadFile(filepath.Join(dir, "root", p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	for _, p := range []string{"a/gone", "b/hidden"} {
		if _, err := os.Lstat(filepath.Join(dir, "root", p)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
	if _, err := os.Stat("/etc/e"); err == nil {
		t.Error("a file went through the lower layer's link to /etc")
	}
}

// TestEnvironmentsAtOnceShareTheArchives makes two environments of one
// target at once over the shared base root, with an empty archives
// directory: both download into it and install from it, and apt refuses
// (rather than waits for) a lock another apt holds there, for a download
// and for an install alike. Both must be made, and apt's install must run
// under coach's lock on the archives (it once covered the download only,
// and from empty caches one environment's install failed another's
// download with "Could not get lock /var/cache/apt/archives/lock").
func TestEnvironmentsAtOnceShareTheArchives(t *testing.T) {
	for _, tool := range []string{"bwrap", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("environments are made as root here: the shared base root is the machine's")
	}
	tg, _ := target.Builtin("debian-12")
	arch := target.HostArch()
	ctx := context.Background()
	base, err := (&Rootfs{Dir: testroots.Dir()}).Ensure(ctx, tg, arch, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-a", "--link", "--", base, filepath.Join(dir, filepath.Base(base))).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	base = filepath.Join(dir, filepath.Base(base))
	r := &Rootfs{Dir: dir}
	var mu sync.Mutex
	unlocked := 0
	testHookInstall = func(lock string) {
		// Another process's attempt: it must find the lock held.
		tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if unlock, err := lockfile.Lock(tctx, lock, 50*time.Millisecond); err == nil {
			unlock()
			mu.Lock()
			unlocked++
			mu.Unlock()
		}
	}
	defer func() { testHookInstall = nil }()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, pkgs := range [][]string{{"tree"}, {"pv"}} {
		wg.Go(func() {
			env, err := r.environment(ctx, tg, arch, base, pkgs)
			if err == nil {
				if _, serr := os.Stat(filepath.Join(env, "usr", "bin", pkgs[0])); serr != nil {
					err = fmt.Errorf("the environment lacks %s: %v", pkgs[0], serr)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if unlocked > 0 {
		t.Errorf("apt installed from the shared archives %d time(s) without coach's lock on them: another environment's download would meet apt's lock and fail", unlocked)
	}
}
