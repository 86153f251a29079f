//go:build linux

// Package pidns runs a command so that the whole process tree it starts dies
// with coach, whatever the timing.
//
// bubblewrap running as root clears the parent-death signal it inherits and
// re-arms --die-with-parent only later in its start-up, so a coach killed in
// that window leaves a sandbox running. Here the command coach starts is a
// shell that is pid 1 of a new pid namespace, with SIGKILL as its
// parent-death signal (which the Go runtime sets before exec, checking that
// coach is still alive). The shell never execs: it runs the real command as
// its child and stays pid 1. When coach dies the kernel kills the shell, and
// the death of a pid namespace's init kills every process in it and in the
// namespaces below it, bubblewrap's own included.
//
// One window remains: coach dying between the fork and the moment the child
// arms its parent-death signal (the Go runtime's check for that race reads
// getppid, which is 0 in a new pid namespace). So the init first reads a
// line from a pipe that coach writes only once Start has returned, that is
// after the signal was armed; if coach died before, the pipe's writer is
// gone, the read sees end of file and the init exits without running
// anything.
package pidns

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Overlay is an overlayfs mount the init shell makes, in a private mount
// namespace, before it runs the command.
type Overlay struct {
	Mount   string // the mount program
	Options string // lowerdir=...,upperdir=...,workdir=...
	Target  string
}

// init is pid 1 of the namespace: it mounts the overlay if asked, runs the
// command as its child (a trailing exit keeps the shell from exec'ing it)
// and exits with its status. $1 $2 $3 are mount, options and target; empty
// options mean no mount.
const initScript = `IFS= read -r go <&3 || exit 137
exec 3<&-
m=$1 o=$2 d=$3; shift 3
if [ -n "$o" ]; then "$m" --make-rprivate / && "$m" -t overlay overlay -o "$o" "$d" || exit 125; fi
"$@"
exit $?`

// Command returns a command that runs argv under an init of its own in a new
// pid namespace (and a new mount namespace), in its own process group so
// that cancelling can kill the group. As a user, the namespaces are made in
// a new user namespace that maps the user to root, as unshare
// --map-root-user does.
func Command(argv []string, ov *Overlay) *Cmd {
	return CommandContext(context.Background(), argv, ov)
}

// Cmd is an exec.Cmd whose Start completes the handshake with the init.
type Cmd struct {
	*exec.Cmd
}

// Start starts the init and then tells it that coach is alive.
func (c *Cmd) Start() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	// The handshake is fd 3; files the caller added follow it, from 4.
	c.ExtraFiles = append([]*os.File{r}, c.ExtraFiles...)
	err = c.Cmd.Start()
	r.Close()
	if err == nil {
		_, err = w.Write([]byte("go\n"))
	}
	w.Close()
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
// ctx is done.
func CommandContext(ctx context.Context, argv []string, ov *Overlay) *Cmd {
	m, o, d := "", "", ""
	if ov != nil {
		m, o, d = ov.Mount, ov.Options, ov.Target
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", initScript, "coach-init", m, o, d}, argv...)...)
	attr := &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  unix.SIGKILL,
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS,
	}
	if uid, gid := os.Geteuid(), os.Getegid(); uid != 0 {
		attr.Cloneflags |= unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	return &Cmd{cmd}
}

// DieWithParent makes a command that needs no namespaces die with coach.
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
