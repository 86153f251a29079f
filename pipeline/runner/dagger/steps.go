package dagger

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	dg "dagger.io/dagger"

	"github.com/coach-build/coach/pipeline/internal/userns"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/target"
)

// A job's steps run in one exec on the engine, driven by a script coach
// writes (stepsScript) and run by bash as the container's root, which
// holds the engine host's root for as long as it runs. So it runs nothing
// the build wrote: it makes the root read-only but for the places a build
// writes, then runs each step in namespaces of its own, as the sandbox
// does:
//
//   - a user namespace whose root is an unprivileged id of the engine's
//     host (stepBase, the sandbox's default range): the files a step may
//     write are given to it, everything else is the nobody of the
//     namespace, and no capability it holds reaches the host;
//   - a network namespace with only a loopback, down, and /sys showing
//     only it;
//   - a PID namespace, so that the step ends with everything it started;
//   - no_new_privs and a container root's capabilities at most.
//
// Its output and its boundaries come back to coach as they happen through
// a host service (a tunnel of the session, so it works with a remote
// engine too): the script opens, before any step runs, a control
// connection and one connection per step, each starting with a line
// holding a token the steps never see (it is only in the root-owned
// script, which they cannot read). A step's output goes through a pipe to
// the script, which copies it to the step's connection and closes that
// when the step is over; the control connection carries "start i", "end i
// rc" and "done". No step holds a socket. When the control connection
// closes (coach went away, or the engine that tunnels it died), the
// script kills everything in the container, so no step outlives its
// build.

// stepBase is the engine host's id the steps' root maps to (a range of
// userns.Size ids from it): the sandbox's default range, which the engine's
// host is unlikely to give anyone.
const stepBase = userns.DefaultBase

// owner is stepBase as a Dagger owner ("uid:gid").
var owner = strconv.Itoa(stepBase) + ":" + strconv.Itoa(stepBase)

// serviceHost is the name the container reaches coach's listener by.
const serviceHost = "coach-host"

// ctlDir is where the script and its private files live in the
// container: owned by the real root, unreadable to the steps.
const ctlDir = "/coach-ctl"

// shellQuote quotes s for sh and bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// stepsScript is the bash script that runs job's steps (see above), each
// in its directory under the source with the job's and the step's
// environment and nothing else. port is coach's listener, token the
// connections' proof.
func stepsScript(job *runner.Job, steps []runner.Step, port int, token string, native *target.Arch) string {
	var b strings.Builder
	q := shellQuote
	b.WriteString(nativeUnshare(native))
	fmt.Fprintf(&b, "set -u\nexport PATH="+ctlDir+"/bin:/usr/sbin:/usr/bin:/sbin:/bin\ntoken=%s install=%s base=%d size=%d\n", q(token), q(job.InstallDir), stepBase, userns.Size)
	fmt.Fprintf(&b, "exec 3<>/dev/tcp/%s/%d || exit 97\nprintf '%%s ctl\\n' \"$token\" >&3\n", serviceHost, port)
	fmt.Fprintf(&b, "declare -a out\nfor ((i = 0; i < %d; i++)); do\n  exec {fd}<>/dev/tcp/%s/%d || exit 97\n  printf '%%s out %%d\\n' \"$token\" $i >&$fd\n  out[$i]=$fd\ndone\n", len(steps), serviceHost, port)
	b.WriteString(scriptSetup)
	for i, st := range steps {
		env := append(append([]string{}, job.Env...), st.Env...)
		var cmd strings.Builder
		cmd.WriteString("/usr/bin/env -i")
		for _, e := range env {
			cmd.WriteString(" " + q(e))
		}
		for _, a := range st.Argv {
			cmd.WriteString(" " + q(a))
		}
		dir := runner.SourceMount + "/" + strings.TrimPrefix(job.Dir+"/"+st.Dir, "/")
		fmt.Fprintf(&b, "run %d %s %s || finish\n", i, q(dir), cmd.String())
	}
	// A build may not delete its dependencies' files: a layer cannot say
	// so, and the sandbox refuses it too.
	b.WriteString(`if [ -s /coach-ctl/deps ]; then
  while IFS= read -r f; do [ -e "$install/$f" ] || [ -L "$install/$f" ] || printf 'gone %s\n' "$f" >&3; done </coach-ctl/deps
fi
finish
`)
	return b.String()
}

// scriptSetup follows the connections: the watcher, the read-only root,
// and the functions that run a step and end the script.
const scriptSetup = procSetup + `# closeouts closes the steps' connections, closeall the control one too:
# what the script starts holds only what it needs.
closeouts() { local fd; for fd in "${out[@]}"; do eval "exec $fd>&-"; done; }
closeall() { exec 3>&-; closeouts; }
# Coach gone (it says stop), or its tunnel (the engine died): nothing of
# the build stays.
( closeouts; while read -r line && [ "$line" != stop ]; do :; done <&3; kill -KILL -1 ) &
watcher=$!
mkdir -p /coach-ctl/run && /bin/mount -t tmpfs -o mode=0700 tmpfs /coach-ctl/run || exit 96
for d in "$install" /tmp /var/tmp /coach; do
  if [ -d "$d" ]; then /bin/mount --rbind "$d" "$d" || exit 96; fi
done
/bin/mount -o remount,bind,ro / || exit 96
unmask_proc
# inner runs as PID 1 of the step's namespaces, their root: it mounts
# their /proc, then runs the step with no way to more.
# The step's directory is entered there too, so that a link an earlier
# step left on the way resolves in the step's view, never the script's.
inner='P=/proc
'"$mount_proc"'
cd -- "$1" || exit 125
shift
exec ` + dropPrivs + ` "$@"'
# net makes the network namespace and shows only it in /sys, as the real
# root, then becomes unshare of the step's other namespaces (same pid).
net='/bin/mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys || exit 125
exec "$@"'
run() {
  local i=$1 dir=$2; shift 2
  local o=/coach-ctl/run/out$i
  mkfifo -m 0600 "$o" || return 96
  cat "$o" >&${out[$i]} &
  local copier=$!
  printf 'start %d\n' $i >&3
  (closeall; exec /usr/bin/unshare --net --mount -- /bin/sh -c "$net" coach-net \
    ` + usernsUnshare + ` /bin/sh -c "$inner" coach-step "$dir" "$@") >"$o" 2>&1 </dev/null &
  local pid=$!
  wait $pid
  local rc=$?
  wait $copier
  rm -f "$o"
  eval "exec ${out[$i]}>&-"
  printf 'end %d %d\n' $i $rc >&3
  return $rc
}
finish() {
  kill $watcher 2>/dev/null
  wait $watcher 2>/dev/null
  printf 'done\n' >&3
  exit 0
}
`

// stepCaps are the capabilities a step may hold in its namespace: a
// container root's defaults.
const stepCaps = "+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+sys_chroot,+mknod,+audit_write,+setfcap"

// usernsUnshare, in the scripts that run steps and verify's scripts, makes
// the user namespace (its root mapped to $base, $size ids, by idMapper),
// the PID namespace and the mount namespace a step or script runs in, as
// their root, with $userns_unshare (see nativeUnshare); the command to run
// follows it.
const usernsUnshare = `$userns_unshare --user --map-users=$base,0,$size --map-groups=$base,0,$size --setuid 0 --setgid 0 --pid --mount --fork --kill-child --`

// dropPrivs runs the command that follows it with a container root's
// capabilities at most and no way to more.
const dropPrivs = `/usr/bin/setpriv --clear-groups --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all,` + stepCaps + ` --`

// idMapper is the newuidmap (kind uid) or newgidmap (gid) that unshare
// --map-users and --map-groups run, as the container's root, to map the
// step's user namespace: it writes the ranges it is given ("pid inner
// outer count"...) to the process's map. The images have no shadow
// utilities, and a real root needs no /etc/subuid.
func idMapper(kind string) string {
	return `#!/bin/sh
pid=$1; shift; map=
while [ $# -ge 3 ]; do map="$map$1 $2 $3
"; shift 3; done
printf '%s' "$map" >/proc/$pid/` + kind + `_map
`
}

// withIDMappers adds the mappers to ctr, in ctlDir/bin.
func withIDMappers(ctr *dg.Container) *dg.Container {
	return ctr.
		WithNewFile(ctlDir+"/bin/newuidmap", idMapper("uid"), dg.ContainerWithNewFileOpts{Permissions: 0o700}).
		WithNewFile(ctlDir+"/bin/newgidmap", idMapper("gid"), dg.ContainerWithNewFileOpts{Permissions: 0o700})
}

// nativeDir is where, for a build of another architecture than the
// engine's, the target's image of the engine's own platform is mounted.
const nativeDir = "/coach-native"

// nativeUnshare sets $userns_unshare, the unshare that makes a step's user
// namespace. A process under qemu-user emulation has threads, and the
// kernel lets only a single-threaded process make a user namespace; so for
// another architecture (native is the engine's) it is the engine's own
// unshare from nativeDir, started through its dynamic loader, which then
// runs the step's programs of the target's architecture through
// binfmt_misc.
func nativeUnshare(native *target.Arch) string {
	if native == nil {
		return "userns_unshare=/usr/bin/unshare\n"
	}
	interp := path.Base(native.Interp)
	var dirs []string // where the loader and the libraries may be
	for _, d := range []string{"lib/" + native.Multiarch, "usr/lib/" + native.Multiarch, "usr/lib64", "lib64", "usr/lib", "lib"} {
		dirs = append(dirs, nativeDir+"/"+d)
	}
	return fmt.Sprintf(`userns_unshare=
for d in %s; do
  if [ -f "$d/%s" ] && [ ! -L "$d/%s" ]; then userns_unshare="$d/%s --library-path %s `+nativeDir+`/usr/bin/unshare"; break; fi
done
[ -n "$userns_unshare" ] || { echo "coach: no %s loader in the engine's own image at `+nativeDir+`" >&2; exit 96; }
`, strings.Join(dirs, " "), interp, interp, interp, strings.Join(dirs, ":"), native.Go)
}

// procSetup defines, for the scripts that run steps and verify's
// scripts: unmask_proc, run by the container's root, unmounts what the
// engine laid over the container's /proc (runc's masks), without which
// the kernel lets no user namespace mount a /proc of its own; and
// mount_proc, which the step's root runs to mount that /proc of its own
// at $P, with /proc/sys and the rest read-only again (their files are the
// real root's anyway, which the step's root is not).
const procSetup = `unmask_proc() {
  local _a _b _c _d mp _rest
  while read -r _a _b _c _d mp _rest; do
    case $mp in /proc/*) echo "$mp" ;; esac
  done </proc/self/mountinfo | sort -r | while read -r mp; do /bin/umount -l "$mp" || exit 96; done
}
mount_proc='/bin/mount -t proc -o nosuid,nodev,noexec proc "$P" || exit 125
for p in sys sysrq-trigger irq bus fs; do
  if [ -e "$P/$p" ]; then /bin/mount --bind "$P/$p" "$P/$p" && /bin/mount -o remount,bind,ro "$P/$p" || exit 125; fi
done'
`

// hostEnd is coach's side of a job's connections: a listener on the
// loopback that the engine's host service tunnels to.
type hostEnd struct {
	ln    net.Listener
	token string

	mu   sync.Mutex
	ctl  net.Conn
	outs map[int]net.Conn
	more chan struct{} // closed and replaced when a connection arrives
}

func listen() (*hostEnd, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dagger: listen for the steps' output: %w", err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	h := &hostEnd{ln: ln, token: hex.EncodeToString(tok), outs: map[int]net.Conn{}, more: make(chan struct{})}
	go h.accept()
	return h, nil
}

func (h *hostEnd) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

// accept takes connections whose first line has the token; others are
// closed.
func (h *hostEnd) accept() {
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			line, err := readLine(c, 128)
			c.SetReadDeadline(time.Time{})
			f := strings.Fields(line)
			if err != nil || len(f) < 2 || f[0] != h.token {
				c.Close()
				return
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			switch {
			case f[1] == "ctl" && h.ctl == nil:
				h.ctl = c
			case f[1] == "out" && len(f) == 3:
				i, err := strconv.Atoi(f[2])
				if err != nil || h.outs[i] != nil {
					c.Close()
					return
				}
				h.outs[i] = c
			default:
				c.Close()
				return
			}
			close(h.more)
			h.more = make(chan struct{})
		}()
	}
}

// readLine reads up to a newline, one byte at a time so that nothing after
// it is consumed, at most max bytes.
func readLine(r io.Reader, max int) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < max {
		if _, err := io.ReadFull(r, one); err != nil {
			return "", err
		}
		if one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[0])
	}
	return "", errors.New("line too long")
}

// wait returns the connection get finds, once it arrives.
func (h *hostEnd) wait(ctx context.Context, get func() net.Conn) (net.Conn, error) {
	for {
		h.mu.Lock()
		c, more := get(), h.more
		h.mu.Unlock()
		if c != nil {
			return c, nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// Close tells the script to stop (its watcher kills what is left in the
// container: the engine's tunnel does not pass the close of a connection on
// to it) and ends the listener and every connection.
func (h *hostEnd) Close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctl != nil {
		h.ctl.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(h.ctl, "stop\n")
	}
	h.closeConns()
}

// closeConns closes every connection, so that reads on them return; h.mu
// is held.
func (h *hostEnd) closeConns() {
	if h.ctl != nil {
		h.ctl.Close()
	}
	for _, c := range h.outs {
		c.Close()
	}
}

// stepsResult is how the script's steps ended: the last step that ran and
// its exit code (failed, when not 0); done when the script said it ended;
// gone, the dependencies' files the build deleted.
type stepsResult struct {
	last, code int
	done       bool
	gone       []string
}

// follow reads the control connection and the steps' output as the script
// runs: onStart before each step's output (which goes to w), as it comes.
func (h *hostEnd) follow(ctx context.Context, w io.Writer, onStart func(i int)) (stepsResult, error) {
	res := stepsResult{last: -1}
	// Reads on a connection do not see ctx: its end closes them.
	stop := context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.closeConns()
	})
	defer stop()
	ctl, err := h.wait(ctx, func() net.Conn { return h.ctl })
	if err != nil {
		return res, err
	}
	rd := bufio.NewReaderSize(ctl, 256)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				return res, context.Cause(ctx)
			}
			return res, fmt.Errorf("the build's control connection ended before its steps did: %w", err)
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "done":
			res.done = true
			return res, nil
		case len(f) == 2 && f[0] == "start":
			i, _ := strconv.Atoi(f[1])
			res.last, res.code = i, 0
			onStart(i)
			out, err := h.wait(ctx, func() net.Conn { return h.outs[i] })
			if err != nil {
				return res, err
			}
			if _, err := io.Copy(w, out); err != nil && ctx.Err() == nil {
				return res, fmt.Errorf("read step %d's output: %w", i+1, err)
			}
		case strings.HasPrefix(line, "gone "):
			res.gone = append(res.gone, strings.TrimSuffix(strings.TrimPrefix(line, "gone "), "\n"))
		case len(f) == 3 && f[0] == "end":
			res.code, _ = strconv.Atoi(f[2])
		default:
			return res, fmt.Errorf("the build's control connection said %q", strings.TrimSpace(line))
		}
	}
}
