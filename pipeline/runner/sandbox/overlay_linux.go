package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/internal/lockfile"
	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/internal/userns"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// installOverlay installs pkgs over the base root in a sandbox (an
// overlay of the base, entered as root of coach's user namespace), then
// lays what apt wrote over hard links of the base at tmp/root. apt
// downloads with the network, into a cache of .debs that the target's
// environments share, and installs without it: only apt and the
// distribution's maintainer scripts run, never a definition's code. It
// returns the packages added (name:arch=version).
func (r *Rootfs) installOverlay(ctx context.Context, t target.Target, arch, base, tmp string, pkgs []string) ([]string, error) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, fmt.Errorf("a build environment with packages needs bubblewrap (apt-get install bubblewrap)")
	}
	ids, err := userns.Current()
	if err != nil {
		return nil, err
	}
	upper, work, scratch := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), filepath.Join(tmp, "scratch")
	lists, tmpDir, staging, cmds := filepath.Join(scratch, "lists"), filepath.Join(scratch, "tmp"), filepath.Join(scratch, "staging"), filepath.Join(scratch, "commands")
	archives := filepath.Join(r.Dir, ArchivesDir, t.Bootstrap.Suite+"-"+debArch(arch))
	for _, d := range []string{upper, work, filepath.Join(lists, "partial"), tmpDir, staging, cmds, filepath.Join(archives, "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if strings.ContainsAny(base+tmp, ",:") {
		return nil, fmt.Errorf("path %q contains , or :, which overlayfs options cannot carry; choose another cache directory", tmp)
	}
	if err := userns.ChownLike(upper, base); err != nil {
		return nil, err
	}
	for _, d := range []string{lists, filepath.Join(lists, "partial"), tmpDir, archives, filepath.Join(archives, "partial")} {
		if err := userns.Chown(d); err != nil {
			return nil, err
		}
	}
	os.Chmod(tmpDir, 0o1777)
	touch(filepath.Join(r.Dir, ArchivesDir)) // last used, for cache gc
	layout := &pidns.Layout{Staging: staging, Mounts: []pidns.Mount{
		{Kind: pidns.Overlay, Options: pidns.OverlayOptions([]string{base}, upper, work)},
		{Kind: pidns.ReadWrite, Source: lists, Target: "/var/lib/apt/lists"},
		{Kind: pidns.ReadWrite, Source: archives, Target: "/var/cache/apt/archives"},
		{Kind: pidns.ReadWrite, Source: tmpDir, Target: "/tmp"},
	}}
	var out bytes.Buffer
	w := io.Writer(&out)
	if r.Log != nil {
		w = io.MultiWriter(&out, r.Log)
	}
	sess, err := pidns.StartSession(layout, cmds, w)
	if err != nil {
		return nil, fmt.Errorf("the sandbox could not be started: %w", err)
	}
	defer sess.Close()
	run := func(script string, net bool) error {
		out.Reset()
		args := pidns.Bwrap{Path: bwrap, Net: net, Hostname: "coach-env", Dir: "/", Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"DEBIAN_FRONTEND=noninteractive", "HOME=/root", "LANG=C.UTF-8"}}.Args()
		code, err := sess.Run(ctx, append(args, "/bin/sh", "-c", script))
		if err == nil && code != 0 {
			err = fmt.Errorf("exit status %d", code)
		}
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, lastLines(out.String(), 30))
		}
		return nil
	}
	list := spec.ShellJoin(pkgs)
	prelude := "set -e\n"
	if !ids.Ranged() {
		// As a user the namespace maps only the user, as root: apt
		// cannot drop to its _apt user there.
		prelude += `echo 'APT::Sandbox::User "root";' > /etc/apt/apt.conf.d/00coach-rootless` + "\n"
	}
	// The only step with the network: apt resolves and downloads, and
	// nothing a package holds runs.
	download := prelude
	if resolv, err := os.ReadFile("/etc/resolv.conf"); err == nil && len(resolv) < 64<<10 {
		download += "rm -f /etc/resolv.conf && cat > /etc/resolv.conf <<'COACH_RESOLV_EOF'\n" + strings.TrimRight(string(resolv), "\n") + "\nCOACH_RESOLV_EOF\n"
	}
	download += "apt-get -q -o Acquire::Retries=3 update\napt-get install -y -q --no-install-recommends --download-only -- " + list + "\nrm -f /etc/resolv.conf\n"
	install := prelude + `q() { dpkg-query -W -f '${Package}:${Architecture}=${Version}\n' | sort; }
q > /tmp/.coach-before
apt-get install -y -q --no-install-recommends -- ` + list + `
q | comm -13 /tmp/.coach-before - | sed 's/^/` + installedMark + `/'
rm -f /tmp/.coach-before /var/cache/apt/*.bin /etc/apt/apt.conf.d/00coach-rootless
`
	// Environments of the target made at once share the downloads, and
	// apt takes the archives' lock to download and to install from them
	// (it refuses a held lock rather than wait): the whole use of the
	// shared archives is under coach's own lock, install included.
	err = func() error {
		unlock, err := lockfile.Lock(ctx, archives+".lock", 100*time.Millisecond)
		if err != nil {
			return err
		}
		defer unlock()
		if err := run(download, true); err != nil {
			return fmt.Errorf("download %s: %w", strings.Join(pkgs, " "), err)
		}
		if testHookInstall != nil {
			testHookInstall(archives + ".lock")
		}
		if err := run(install, false); err != nil {
			return fmt.Errorf("install %s: %w", strings.Join(pkgs, " "), err)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	installed := parseInstalled(out.String())
	sess.Close()
	// The environment: the base, hard-linked, with what apt wrote laid
	// over it as the overlay showed it.
	root := filepath.Join(tmp, "root")
	cp := exec.CommandContext(ctx, "cp", "-a", "--link", "--", base, root)
	pidns.DieWithParent(cp)
	if b, err := cp.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("link the base root: %v: %s", err, lastLines(string(b), 5))
	}
	if err := applyUpper(tmp, "upper", "root"); err != nil {
		return nil, fmt.Errorf("lay the packages over the base: %w", err)
	}
	return installed, nil
}

// testHookInstall, when a test sets it, is called with the archives'
// lock file right before apt installs.
var testHookInstall func(lock string)

// applyUpper lays the upper directory of an overlay (dir/upper) over a
// copy of its lower one (dir/root) as the overlay showed them: a whiteout
// removes what it names, an opaque directory hides what the lower one
// held, and every other entry replaces the lower one's. Entries move
// rather than copy. It works through a root confined to dir: apt and the
// maintainer scripts wrote the upper directory.
func applyUpper(dir, upperRel, lowerRel string) error {
	root, err := confine.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), upperRel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upperRel {
			return nil
		}
		rel := strings.TrimPrefix(p, upperRel+"/")
		dst := lowerRel + "/" + rel
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		switch {
		case info.Mode()&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0:
			return root.RemoveAll(dst) // a whiteout
		case d.IsDir():
			have, err := root.Lstat(dst)
			if err == nil && have.IsDir() {
				if opaque(root, p) {
					entries, err := fs.ReadDir(root.FS(), dst)
					if err != nil {
						return err
					}
					for _, e := range entries {
						if err := root.RemoveAll(dst + "/" + e.Name()); err != nil {
							return err
						}
					}
				}
			} else {
				if err := root.RemoveAll(dst); err != nil {
					return err
				}
				if err := root.Mkdir(dst, 0o700); err != nil {
					return err
				}
			}
			if st != nil {
				if err := root.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
					return err
				}
			}
			return root.Chmod(dst, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		default:
			if err := root.RemoveAll(dst); err != nil {
				return err
			}
			return root.Rename(p, dst)
		}
	})
}

// opaque reports whether an overlay's upper directory hides the lower
// one's entries (trusted.overlay.opaque, or user.overlay.opaque when a
// user mounted it).
func opaque(root *os.Root, rel string) bool {
	f, err := root.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 8)
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Fgetxattr(int(f.Fd()), name, buf); err == nil && n > 0 && buf[0] == 'y' {
			return true
		}
	}
	return false
}
