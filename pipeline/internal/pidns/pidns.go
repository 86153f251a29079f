package pidns

import (
	"bytes"
	"strings"

	"github.com/coach-build/coach/pipeline/internal/userns"
)

// NewRoot is where the init mounts the layout it made: the sandbox's
// command (bubblewrap) binds it as its root with --bind NewRoot /. It
// hides whatever the host has there, in the init's mount namespace only.
const NewRoot = "/mnt"

// Kind is what one Mount does.
type Kind string

const (
	// Tmpfs mounts an empty tmpfs (mode 0755) at Target: the root of a
	// layout whose every other entry is mounted on it.
	Tmpfs Kind = "tmpfs"
	// Overlay mounts overlayfs with Options (lowerdir=...,upperdir=...,
	// workdir=...) at Target, making it.
	Overlay Kind = "overlay"
	// ReadOnly binds the host directory Source at Target, read-only
	// (recursively, as a namespace of a user must when the directory has
	// mounts beneath it; those keep their own flags).
	ReadOnly Kind = "ro"
	// ReadWrite binds the host directory Source at Target, recursively.
	ReadWrite Kind = "rw"
	// Dir makes the directory Target with mode Options (e.g. "0755").
	Dir Kind = "dir"
	// Symlink makes Target a symlink to Source.
	Symlink Kind = "ln"
)

// Mount is one step of a layout. Targets are absolute paths in the
// sandbox ("" or "/" is its root).
type Mount struct {
	Kind                    Kind
	Source, Target, Options string
}

// Layout is the filesystem a sandboxed command sees at NewRoot.
type Layout struct {
	// Staging is an empty host directory made for this command: the init
	// builds the layout there before moving it to NewRoot.
	Staging string
	// Mounts are made in order; the first makes the root (Tmpfs or
	// Overlay at "").
	Mounts []Mount
}

// OverlayOptions are the options of an overlay of lowers (the top one
// first) under upper, with its work directory: mounted by host root, the
// overlay keeps its metadata in trusted.* attributes; in a user's
// namespace, in user.* ones.
func OverlayOptions(lowers []string, upper, work string) string {
	opts := "lowerdir=" + joinColons(lowers) + ",upperdir=" + upper + ",workdir=" + work
	if ids, err := userns.Current(); err == nil && !ids.Ranged() {
		opts += ",userxattr"
	}
	return opts
}

func joinColons(s []string) string {
	var b bytes.Buffer
	for i, p := range s {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
	return b.String()
}

// Bwrap is the bubblewrap command of a sandboxed command whose filesystem
// is the Layout at NewRoot: every namespace unshared but the user
// namespace (the init already entered coach's), the network too unless
// Net, /proc fresh with its host-wide parts (sys, sysrq-trigger, irq,
// bus) read-only, and CAP_SYS_ADMIN dropped, so that the command cannot
// mount or remount anything even in its own namespace.
type Bwrap struct {
	Path string // the bwrap program
	// Net keeps the host's network: only verify's download of the
	// distribution's packages, before any package code runs.
	Net bool
	// Interactive keeps the terminal's session (a shell).
	Interactive bool
	Hostname    string
	Env         []string // KEY=VALUE: the whole environment
	Dir         string   // the working directory, in the sandbox
}

// Args is the command line up to and including the "--" before the
// command.
func (b Bwrap) Args() []string {
	args := []string{b.Path, "--bind", NewRoot, "/", "--dev", "/dev", "--proc", "/proc",
		"--ro-bind", "/proc/sys", "/proc/sys"}
	for _, p := range []string{"/proc/sysrq-trigger", "/proc/irq", "/proc/bus"} {
		args = append(args, "--ro-bind-try", p, p)
	}
	args = append(args, "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try")
	if !b.Net {
		args = append(args, "--unshare-net")
	}
	args = append(args, "--cap-drop", "CAP_SYS_ADMIN", "--die-with-parent")
	if !b.Interactive {
		args = append(args, "--new-session")
	}
	if b.Hostname != "" {
		args = append(args, "--hostname", b.Hostname)
	}
	args = append(args, "--clearenv")
	for _, kv := range b.Env {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	if b.Dir != "" {
		args = append(args, "--chdir", b.Dir)
	}
	return append(args, "--")
}
