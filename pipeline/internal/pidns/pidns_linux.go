//go:build linux

// Package pidns runs a sandboxed command so that no step of it holds host
// root, and so that the whole process tree it starts dies with coach,
// whatever the timing.
//
// The command coach starts is a shell that is pid 1 of a new pid namespace
// and a new mount namespace, with SIGKILL as its parent-death signal
// (which the Go runtime sets before exec, checking that coach is still
// alive). The shell never execs: it runs the real command as its child and
// stays pid 1. When coach dies the kernel kills the shell, and the death of
// a pid namespace's init kills every process in it and in the namespaces
// below it, bubblewrap's own included.
//
// One window remains: coach dying between the fork and the moment the child
// arms its parent-death signal (the Go runtime's check for that race reads
// getppid, which is 0 in a new pid namespace). So the init first reads a
// line from a pipe that coach writes only once Start has returned, that is
// after the signal was armed; if coach died before, the pipe's writer is
// gone, the read sees end of file and the init exits without running
// anything.
//
// The init then lays out the command's filesystem (a Layout: a tmpfs or an
// overlay as its root, bind mounts of host directories, read-only where
// asked) in a staging directory, moves it to NewRoot, and only then
// becomes unprivileged: as root, it enters the user namespace of
// package userns (nsenter --user, as uid 0 there, which is an unprivileged
// host uid) and runs the command there; as a user, the whole init already
// runs in a user namespace that maps the user to root. So the mounts are
// made with host root's right to read every path (a cache under /root, a
// 0700 temporary directory), and the command, bubblewrap and everything
// under it, never has a capability in the host's user namespace. Mounts
// made before the switch are locked for it: it cannot remount a read-only
// one writable, nor uncover what lies under one.
package pidns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/coach-build/coach/pipeline/internal/userns"
)

// initScript is pid 1 of the namespace. $1 is the descriptor of the user
// namespace to enter ("" for none), $2 the staging directory ("" for no
// layout), $3 NewRoot, $4 the descriptor of a session's status pipe (""
// for one command), $5 the mark a session writes to its output after
// each command; then the layout's mounts as triples (kind, source or
// options, target) up to "--", then the command. It runs the command as
// its child (a trailing exit keeps the shell from exec'ing it) and exits
// with its status; 125 says the layout could not be made. In a session it
// runs, one after the other, the commands whose files (each a "set --"
// line) it reads from its descriptor 3, and writes each one's status to
// the status pipe.
const initScript = `IFS= read -r go <&3 || exit 137
ns=$1 s=$2 m=$3 st=$4 mark=$5; shift 5
[ -n "$st" ] || exec 3<&-
mount -n --make-rprivate / && mount -n -t proc proc /proc || exit 125
if [ -n "$s" ]; then
  while [ "$1" != "--" ]; do
    k=$1 a=$2 b=$3; shift 3
    case $k in
    tmpfs) mount -n -t tmpfs -o mode=0755 coach-root "$s$b" ;;
    overlay) mkdir -p "$s$b" && mount -n -t overlay overlay -o "$a" "$s$b" ;;
    ro) mkdir -p "$s$b" && mount -n --rbind "$a" "$s$b" && mount -n -o remount,bind,ro "$s$b" ;;
    rw) mkdir -p "$s$b" && mount -n --rbind "$a" "$s$b" ;;
    dir) mkdir -p -m "$a" "$s$b" ;;
    ln) ln -s "$a" "$s$b" ;;
    *) false ;;
    esac || { echo "coach: the sandbox's $k mount at ${b:-/} failed" >&2; exit 125; }
  done
  shift
  mount -n --move "$s" "$m" || exit 125
fi
run() {
  if [ -n "$ns" ]; then
    nsenter --user=/proc/self/fd/$ns -S 0 -G 0 -- /bin/sh -c "exec 3<&- ${st:+$st>&-} $ns<&-; exec \"\$@\"" coach-enter "$@"
  elif [ -n "$st" ]; then
    /bin/sh -c "exec 3<&- $st>&-; exec \"\$@\"" coach-enter "$@"
  else
    "$@"
  fi
}
if [ -n "$st" ]; then
  while IFS= read -r f <&3; do
    . "$f"
    run "$@"
    rc=$?
    printf '%s' "$mark"
    echo "$rc" >&$st
  done
  exit 0
fi
run "$@"
exit $?`

// Command returns a command that runs argv under an init of its own in a new
// pid namespace (and a new mount namespace), in its own process group so
// that cancelling can kill the group. See the package comment.
func Command(argv []string, layout *Layout) *Cmd {
	return CommandContext(context.Background(), argv, layout)
}

// Cmd is an exec.Cmd whose Start completes the handshake with the init.
type Cmd struct {
	*exec.Cmd
	// userns is the user namespace the init enters, passed after the
	// caller's ExtraFiles (and a session's status pipe).
	userns *os.File
	// nsArg is the init's first argument, filled in at Start.
	nsArg int
	// status is a session's status pipe, passed after ExtraFiles.
	status *os.File
	// ctl, when set, is the read end of a session's control pipe, which
	// becomes fd 3 in place of the handshake.
	ctl, ctlW *os.File
}

// Start starts the init and then tells it that coach is alive.
func (c *Cmd) Start() error {
	r, w := c.ctl, c.ctlW
	if r == nil {
		var err error
		if r, w, err = os.Pipe(); err != nil {
			return err
		}
	}
	// The handshake (and a session's commands) is fd 3; files the caller
	// added follow it, from 4, then a session's status pipe, and the user
	// namespace comes last.
	c.ExtraFiles = append([]*os.File{r}, c.ExtraFiles...)
	if c.status != nil {
		c.ExtraFiles = append(c.ExtraFiles, c.status)
		c.Args[c.nsArg+3] = strconv.Itoa(2 + len(c.ExtraFiles))
	}
	if c.userns != nil {
		c.ExtraFiles = append(c.ExtraFiles, c.userns)
		fd := 2 + len(c.ExtraFiles)
		if fd > 9 {
			r.Close()
			w.Close()
			return fmt.Errorf("sandbox: too many descriptors for the init (%d)", fd)
		}
		c.Args[c.nsArg] = strconv.Itoa(fd)
	}
	err := c.Cmd.Start()
	r.Close()
	if err == nil {
		_, err = w.Write([]byte("go\n"))
	}
	if c.ctlW == nil {
		w.Close()
	}
	return err
}

// Run starts the command and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// CombinedOutput runs the command and returns its stdout and stderr.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	var b bytes.Buffer
	c.Stdout, c.Stderr = &b, &b
	err := c.Run()
	return b.Bytes(), err
}

// CommandContext is Command, killed (the init, and so the namespace) when
// ctx is done. When the user namespace cannot be had (no free range for
// coach's ids), Start fails saying why.
func CommandContext(ctx context.Context, argv []string, layout *Layout) *Cmd {
	args := []string{"-c", initScript, "coach-init", "", "", NewRoot, "", ""}
	nsArg := 4 // the index of $1 in cmd.Args ("/bin/sh" "-c" script "coach-init" $1 ...)
	if layout != nil {
		args[4] = layout.Staging
		for _, m := range layout.Mounts {
			args = append(args, string(m.Kind), mountArg(m), target(m.Target))
		}
		args = append(args, "--")
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", append(args, argv...)...)
	attr := &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  unix.SIGKILL,
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS,
	}
	c := &Cmd{Cmd: cmd, nsArg: nsArg}
	ids, err := userns.Current()
	switch {
	case err != nil:
		cmd.Err = fmt.Errorf("sandbox: %w", err)
	case ids.Ranged():
		// Host root makes the layout, then the command runs in the
		// namespace of coach's range.
		c.userns, err = userns.Namespace()
		if err != nil {
			cmd.Err = err
		}
	default:
		// As a user: the init's own user namespace maps the user to root.
		attr.Cloneflags |= unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: ids.UID, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: ids.GID, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	return c
}

func mountArg(m Mount) string {
	if m.Kind == ReadOnly || m.Kind == ReadWrite || m.Kind == Symlink {
		return m.Source
	}
	return m.Options
}

func target(t string) string {
	if t == "/" {
		return ""
	}
	return t
}

// Contained is exec.CommandContext for a trusted host tool that mounts
// things as root, mmdebstrap: it runs as the child of a shell that is pid
// 1 of a new pid namespace, in a new mount namespace whose mounts
// propagate nowhere (the Go runtime makes / private in it), with SIGKILL
// as the shell's parent-death signal. When ctx ends or coach dies, the
// shell dies, the kernel kills everything in the namespace, and the mount
// namespace goes with the last of them: a bootstrap killed half way never
// leaves its /proc, /sys or /dev mounted in a root it was making, which
// no later removal could take. As a user, where the tool makes its own
// namespaces, only the parent-death signal is set.
func Contained(ctx context.Context, name string, args ...string) *exec.Cmd {
	if os.Geteuid() != 0 {
		cmd := exec.CommandContext(ctx, name, args...)
		DieWithParent(cmd)
		return cmd
	}
	// "$@"; exit keeps the shell from exec'ing the tool: it stays pid 1
	// and reaps what the tool orphans.
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `"$@"; exit $?`, "coach-contained", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:      true,
		Pdeathsig:    unix.SIGKILL,
		Cloneflags:   unix.CLONE_NEWPID,
		Unshareflags: unix.CLONE_NEWNS,
	}
	return cmd
}

// DieWithParent makes a command that needs no namespaces die with coach.
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
