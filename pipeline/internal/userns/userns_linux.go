//go:build linux

package userns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/coach-build/coach/pipeline/confine"
)

var current struct {
	once sync.Once
	ids  IDs
	err  error
	ns   *os.File
	nerr error
	nson sync.Once
}

// Current is the mapping of this process's sandboxes: the registered or
// default range when coach runs as root, else the user alone.
func Current() (IDs, error) {
	current.once.Do(func() {
		if os.Geteuid() != 0 {
			current.ids = IDs{UID: os.Geteuid(), GID: os.Getegid(), Size: 1, Source: "user"}
			return
		}
		current.ids, current.err = Range(SystemFiles)
	})
	return current.ids, current.err
}

// Namespace is a user namespace with the range mapped, which sandboxes
// enter (nsenter --user) after their init has set up their filesystem as
// host root; nil when coach runs as a user, whose sandboxes make their own
// namespace mapping the user to root. It is made once per process, by a
// short-lived child whose namespace the returned file keeps alive.
func Namespace() (*os.File, error) {
	ids, err := Current()
	if err != nil || !ids.Ranged() {
		return nil, err
	}
	current.nson.Do(func() { current.ns, current.nerr = makeNamespace(ids) })
	return current.ns, current.nerr
}

func makeNamespace(ids IDs) (*os.File, error) {
	cmd := exec.Command("/bin/sh", "-c", "read x")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: ids.UID, Size: ids.Size}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: ids.GID, Size: ids.Size}},
		// apt and adduser drop groups as in any system: allowed here,
		// where every group is one of the range's.
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("make the sandboxes' user namespace (%s): %w", ids, err)
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	in.Close()
	cmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("open the sandboxes' user namespace: %w", err)
	}
	return ns, nil
}

// Chown makes path (not followed if a symlink) owned by the namespace's
// root: a directory coach makes for a sandbox to write in. Where coach
// has no range (it runs as a user, or no free range exists, when no
// sandbox can run either) it does nothing.
func Chown(path string) error {
	ids, err := Current()
	if err != nil || !ids.Ranged() {
		return nil
	}
	return os.Lchown(path, ids.UID, ids.GID)
}

// ChownTree makes everything beneath dir, dir included, owned by the
// namespace's root, through a confinement of dir (a link is changed, never
// followed): a tree coach wrote as host root (an unpacked source, copied
// layers, license files) that a sandbox must be able to change.
func ChownTree(dir string) error {
	ids, err := Current()
	if err != nil || !ids.Ranged() {
		return nil
	}
	return walkOwners(dir, func(uid, gid int) (int, int) { return ids.UID, ids.GID })
}

// ShiftTree moves the owners of everything beneath dir into the range
// (host id n becomes UID+n), so that a root filesystem made as host root
// appears in the namespace with its own owners: root is root, _apt is
// _apt. Owners already in the range stay. Setuid and setgid bits, which
// a change of owner clears, are put back.
func ShiftTree(dir string) error {
	ids, err := Current()
	if err != nil || !ids.Ranged() {
		return err
	}
	return Shift(dir, ids)
}

// Shift is ShiftTree for a given mapping.
func Shift(dir string, ids IDs) error {
	return walkOwners(dir, func(uid, gid int) (int, int) {
		if uid < ids.Size {
			uid += ids.UID
		}
		if gid < ids.Size {
			gid += ids.GID
		}
		return uid, gid
	})
}

func walkOwners(dir string, owner func(uid, gid int) (int, int)) error {
	root, err := confine.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return errors.New("no owner information")
		}
		uid, gid := owner(int(st.Uid), int(st.Gid))
		if uid == int(st.Uid) && gid == int(st.Gid) {
			return nil
		}
		if err := root.Lchown(rel, uid, gid); err != nil {
			return err
		}
		if special := info.Mode() & (fs.ModeSetuid | fs.ModeSetgid); special != 0 && d.Type()&fs.ModeSymlink == 0 {
			return root.Chmod(rel, info.Mode())
		}
		return nil
	})
}

// ChownLike gives dir the owner and mode of like: an overlay's upper
// directory is the root directory of what it shows, so it takes the
// lower root's.
func ChownLike(dir, like string) error {
	st, err := os.Lstat(like)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("no owner information for %s", like)
	}
	if err := os.Lchown(dir, int(sys.Uid), int(sys.Gid)); err != nil {
		return err
	}
	return os.Chmod(dir, st.Mode().Perm())
}
