// Package verify installs a package into a clean root of its target and
// checks it as a user would meet it: the install (resolving its runtime
// dependencies from the target's own repositories for deb), the project's
// verify commands, root ownership, the links, an upgrade from the previous
// package, removal and purge, with every lifecycle hook invocation recorded.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/internal/proc"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// Roots makes clean root filesystems of a target.
type Roots interface {
	Clean(ctx context.Context, t target.Target, arch string) (string, error)
}

// A Machine is a clean installation of the target in which the checks run,
// as root, one shell script at a time, each seeing what the last left.
type Machine interface {
	// Run runs script; net allows the network where the machine can deny
	// it. A script that exits non-zero returns an error with ExitCode.
	Run(ctx context.Context, script string, net bool) (string, error)
	// RPMRoot is the host directory of the machine's root, for the host's
	// rpm --root, or "" when rpm runs inside the machine.
	RPMRoot() string
}

// Options say what to verify.
type Options struct {
	Package  string // the package file
	Previous string // an older package to upgrade from, or ""
	Name     string // the package name
	Target   target.Target
	Arch     string
	// Project supplies the verify commands, links and install dir; nil
	// checks the install/remove cycle only.
	Project *spec.Project
	Roots   Roots
	// WorkDir holds the scratch root; it is removed afterwards.
	WorkDir string
	Log     io.Writer
	// NewMachine, when set, makes the machine the checks run in (a
	// container of the target, with the packages at /coach/pkgs) instead of
	// a bubblewrap scratch copy of a clean root from Roots.
	NewMachine func(ctx context.Context, t target.Target, arch string, packages []string) (Machine, func(), error)
}

// Step is one check.
type Step struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Skipped bool    `json:"skipped,omitempty"`
	Output  string  `json:"output,omitempty"`
	Detail  string  `json:"detail,omitempty"`
	Seconds float64 `json:"seconds"`
}

// Hook is one lifecycle script invocation.
type Hook struct {
	Step   string `json:"step"`
	Script string `json:"script"`
	Args   string `json:"args"`
}

// Report is the outcome.
type Report struct {
	Package  string  `json:"package"`
	Previous string  `json:"previous,omitempty"`
	Target   string  `json:"target"`
	Format   string  `json:"format"`
	OK       bool    `json:"ok"`
	Steps    []Step  `json:"steps"`
	Hooks    []Hook  `json:"hooks"`
	Seconds  float64 `json:"seconds"`
	// Cached says the report is an earlier run's: the same package bytes
	// passed in the same clean root with the same checks.
	Cached bool `json:"cached,omitempty"`
}

// Failed returns the first failed step, or nil.
func (r *Report) Failed() *Step {
	for i := range r.Steps {
		if !r.Steps[i].OK && !r.Steps[i].Skipped {
			return &r.Steps[i]
		}
	}
	return nil
}

// scratch is a writable copy of a clean root, entered with bwrap.
type scratch struct {
	root string
	pkgs string // host dir bound at /coach/pkgs
	log  io.Writer
}

const pkgMount = "/coach/pkgs"

// RPMRoot is the scratch root: rpm runs on the host with --root.
func (s *scratch) RPMRoot() string { return s.root }

// Run executes a shell script inside the root, as root, with the network
// only when net is set (to fetch dependencies).
func (s *scratch) Run(ctx context.Context, script string, net bool) (string, error) {
	args := []string{"--bind", s.root, "/", "--dev", "/dev", "--proc", "/proc",
		"--ro-bind", s.pkgs, pkgMount, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent", "--new-session", "--clearenv",
		"--setenv", "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--setenv", "DEBIAN_FRONTEND", "noninteractive", "--setenv", "HOME", "/root", "--setenv", "LANG", "C.UTF-8"}
	if !net {
		args = append(args, "--unshare-net")
	}
	args = append(args, "--", "/bin/sh", "-c", script)
	cmd := pidns.CommandContext(ctx, append([]string{"bwrap"}, args...), nil)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out bytes.Buffer
	w := io.Writer(&out)
	if s.log != nil {
		w = io.MultiWriter(&out, s.log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	return out.String(), err
}

// Verify runs the checks. The error is for what kept the checks from
// running at all; a failed check is in the report.
func Verify(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	rep := &Report{Package: filepath.Base(o.Package), Target: o.Target.Name, Format: o.Target.Format, Steps: []Step{}, Hooks: []Hook{}}
	if o.Previous != "" {
		rep.Previous = filepath.Base(o.Previous)
	}
	if o.NewMachine != nil {
		var pkgs []string
		for _, p := range []string{o.Previous, o.Package} {
			if p != "" {
				pkgs = append(pkgs, p)
			}
		}
		m, done, err := o.NewMachine(ctx, o.Target, o.Arch, pkgs)
		if err != nil {
			return nil, err
		}
		defer done()
		return finish(ctx, o, m, rep, start)
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		return nil, fmt.Errorf("verify needs bubblewrap (apt-get install bubblewrap), or a Dagger engine (--runner dagger)")
	}
	clean, err := o.Roots.Clean(ctx, o.Target, o.Arch)
	if err != nil && o.Target.Format == target.FormatRPM {
		// No rpm distribution can be made here: scriptlets run in a clean
		// Debian root (for /bin/sh), with rpm --root.
		deb, _ := target.Builtin("debian-12")
		clean, err = o.Roots.Clean(ctx, deb, o.Arch)
	}
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	sweepScratch(o.WorkDir)
	root, err := os.MkdirTemp(o.WorkDir, fmt.Sprintf("root-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer removeTree(root)
	cp := exec.CommandContext(ctx, "cp", "-a", "--", clean+"/.", root)
	pidns.DieWithParent(cp) // never outlives coach: the sweep would race it
	if out, err := cp.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy the clean %s root: %v: %s", o.Target.Name, err, out)
	}
	os.Remove(filepath.Join(root, ".coach-rootfs.json"))
	pkgs, err := os.MkdirTemp(o.WorkDir, fmt.Sprintf("pkgs-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(pkgs)
	for _, p := range []string{o.Package, o.Previous} {
		if p == "" {
			continue
		}
		if err := copyFile(p, filepath.Join(pkgs, filepath.Base(p))); err != nil {
			return nil, err
		}
	}
	os.MkdirAll(filepath.Join(root, strings.TrimPrefix(pkgMount, "/")), 0o755)
	if resolv, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		os.Remove(filepath.Join(root, "etc/resolv.conf"))
		os.WriteFile(filepath.Join(root, "etc/resolv.conf"), resolv, 0o644)
	}
	if os.Geteuid() != 0 {
		// As a user the checks run as root of a user namespace in which
		// only that root is mapped: apt cannot drop to its _apt user there.
		os.WriteFile(filepath.Join(root, "etc/apt/apt.conf.d/00coach-rootless"), []byte("APT::Sandbox::User \"root\";\n"), 0o644)
	}
	return finish(ctx, o, &scratch{root: root, pkgs: pkgs, log: o.Log}, rep, start)
}

// finish runs the cycle of the package's format in m.
func finish(ctx context.Context, o Options, m Machine, rep *Report, start time.Time) (*Report, error) {
	var err error
	if o.Target.Format == target.FormatRPM {
		err = verifyRPM(ctx, o, m, rep)
	} else {
		err = verifyDeb(ctx, o, m, rep)
	}
	if err != nil {
		return nil, err
	}
	rep.OK = rep.Failed() == nil
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// stepper runs steps in order and skips the rest after a failure.
type stepper struct {
	rep    *Report
	failed bool
}

func (st *stepper) do(name string, fn func() (output, detail string, ok bool)) bool {
	if st.failed {
		st.rep.Steps = append(st.rep.Steps, Step{Name: name, Skipped: true})
		return false
	}
	start := time.Now()
	out, detail, ok := fn()
	st.rep.Steps = append(st.rep.Steps, Step{Name: name, OK: ok, Output: tail(out, 60), Detail: detail, Seconds: time.Since(start).Seconds()})
	if !ok {
		st.failed = true
	}
	return ok
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dpkgHook matches dpkg's --debug=2 lines for maintainer scripts:
// "D000002: fork/exec /var/lib/dpkg/info/hello.postinst ( configure  )".
var dpkgHook = regexp.MustCompile(`fork/exec /var/lib/dpkg/(?:info|tmp\.ci)/(?:[^ ]*?\.)?(preinst|postinst|prerm|postrm) \( ?(.*?) ?\)`)

func recordDeb(rep *Report, step, out string) {
	for _, m := range dpkgHook.FindAllStringSubmatch(out, -1) {
		rep.Hooks = append(rep.Hooks, Hook{Step: step, Script: m[1], Args: strings.Join(strings.Fields(m[2]), " ")})
	}
}

// rpmHook matches rpm -vv's scriptlet lines: "D: %post(hello-...): scriptlet
// start" (rpm logs %pre as %prein).
var rpmHook = regexp.MustCompile(`D: %(pretrans|prein|pre|post|preun|postun|posttrans)\(([^)]*)\): scriptlet start`)

func recordRPM(rep *Report, step, out string) {
	for _, m := range rpmHook.FindAllStringSubmatch(out, -1) {
		script := m[1]
		if script == "prein" {
			script = "pre"
		}
		rep.Hooks = append(rep.Hooks, Hook{Step: step, Script: "%" + script, Args: m[2]})
	}
}

func failed(out string, err error) (string, string, bool) {
	if err == nil {
		return out, "", true
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return out, fmt.Sprintf("exited with code %d", ee.ExitCode()), false
	}
	return out, err.Error(), false
}

// checks are the project's checks on an installed package.
// projectChecks runs the project's verify commands and checks the
// installed files: every path the package lists (owners gives them as
// "user:group /path" lines) has the owner and group the package gives it,
// so the accounts its hooks create existed when the files were unpacked,
// and the project's links point where they should.
func projectChecks(ctx context.Context, o Options, m Machine, st *stepper, owners func() (string, error)) {
	p := o.Project
	if p == nil {
		return
	}
	for _, c := range p.Verify {
		st.do("verify: "+c, func() (string, string, bool) { return failed(m.Run(ctx, c, false)) })
	}
	st.do("ownership", func() (string, string, bool) {
		list, err := owners()
		if err != nil {
			return failed(list, err)
		}
		// The listing goes into the script, which is one argument: in
		// pieces, each well under the kernel's limit on one argument
		// (128 KiB), so that a package of many files is checked too.
		var problems strings.Builder
		checked := 0
		var firstErr error
		for _, chunk := range chunkLines(list, ownersChunk) {
			out, err := m.Run(ctx, ownershipCheck+"<<'COACH_OWNERS_EOF'\n"+chunk+"\nCOACH_OWNERS_EOF\n"+`echo "checked $n"`+"\nexit $bad\n", false)
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if last := lines[len(lines)-1]; strings.HasPrefix(last, "checked ") {
				n, _ := strconv.Atoi(strings.TrimPrefix(last, "checked "))
				checked += n
				lines = lines[:len(lines)-1]
			}
			if len(lines) > 0 && lines[0] != "" {
				problems.WriteString(strings.Join(lines, "\n") + "\n")
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
		if firstErr != nil {
			return failed(problems.String(), firstErr)
		}
		return fmt.Sprintf("%d paths owned as the package says", checked), "", true
	})
	if len(p.Package.Links) > 0 {
		st.do("links", func() (string, string, bool) {
			var script strings.Builder
			for _, l := range slices.Sorted(maps.Keys(p.Package.Links)) {
				fmt.Fprintf(&script, "[ \"$(readlink %q)\" = %q ] && echo %q || { echo 'missing or wrong link %s'; exit 1; }\n", l, p.Package.Links[l], l+" -> "+p.Package.Links[l], l)
			}
			return failed(m.Run(ctx, script.String(), false))
		})
	}
}

func linksGone(ctx context.Context, o Options, m Machine, st *stepper, step string) {
	if o.Project == nil || len(o.Project.Package.Links) == 0 {
		return
	}
	st.do(step, func() (string, string, bool) {
		var script strings.Builder
		for _, l := range slices.Sorted(maps.Keys(o.Project.Package.Links)) {
			fmt.Fprintf(&script, "if [ -e %[1]q ] || [ -L %[1]q ]; then echo 'still there: %[1]s'; exit 1; fi\n", l)
		}
		script.WriteString("echo links removed\n")
		return failed(m.Run(ctx, script.String(), false))
	})
}

// nothingLeft is the last step of every cycle: the leftovers check.
func nothingLeft(ctx context.Context, m Machine, st *stepper) {
	st.do("nothing left", func() (string, string, bool) {
		out, err := m.Run(ctx, leftovers+"\n", false)
		if err == nil {
			out = "nothing of the package remains"
		}
		return failed(out, err)
	})
}

// ownersChunk is the most of a package listing one ownership check takes.
const ownersChunk = 64 << 10

// chunkLines splits text into pieces of whole lines, each at most max
// bytes (a longer line is a piece of its own).
func chunkLines(text string, max int) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if cur.Len() > 0 && cur.Len()+len(line)+1 > max {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
	}
	if cur.Len() > 0 || len(out) == 0 {
		out = append(out, cur.String())
	}
	return out
}

// ownershipCheck reads "user:group /path" lines on its standard input and
// compares each installed path's owner and group with them. Shared system
// directories are left out: the package does not own them; so is
// documentation a minimal image's dpkg configuration excludes.
const ownershipCheck = `bad=0; n=0
while IFS= read -r line; do
  want=${line%% *}; f=${line#* }
  case "$f" in ""|/|/opt|/usr|/usr/bin|/usr/sbin|/usr/share|/usr/share/doc|/etc|/var|/usr/lib|/lib) continue;; esac
  if ! got=$(stat -c %U:%G -- "$f" 2>/dev/null); then
    # minimal images tell dpkg to leave documentation out (path-exclude)
    case "$f" in /usr/share/doc/*|/usr/share/man/*|/usr/share/info/*|/usr/share/locale/*) continue;; esac
    echo "missing: $f"; bad=1; continue
  fi
  n=$((n+1))
  [ "$got" = "$want" ] || { echo "$f is owned by $got, the package says $want"; bad=1; }
done `

// debOwners lists a deb's paths with their owners, from the package file.
const debOwners = "dpkg-deb --fsys-tarfile %s | tar -tvf - | sed -E -n 's#^[^ ]+ ([^/ ]+)/([^ ]+) +[0-9]+ [^ ]+ [^ ]+ \\./(.*)$#\\1:\\2 /\\3#p' | sed -E 's# -> .*$##; s#/$##'"

// leftovers checks that nothing the package installed remains, given the
// list of its files saved before removal. Shared system directories
// (/usr/bin, /opt, ...) may stay.
const leftovers = `
left=0
while IFS= read -r f; do
  [ -z "$f" ] && continue
  case "$f" in
    /|/opt|/usr|/usr/bin|/usr/sbin|/usr/share|/usr/share/doc|/etc|/var|/usr/lib|/usr/local) continue;;
  esac
  if [ -e "$f" ] || [ -L "$f" ]; then
    if [ -d "$f" ] && [ ! -L "$f" ] && [ -n "$(ls -A "$f")" ]; then echo "left behind (not empty): $f"; left=1; continue; fi
    if [ -d "$f" ] && [ ! -L "$f" ]; then echo "left behind (empty dir): $f"; left=1; continue; fi
    echo "left behind: $f"; left=1
  fi
done < /root/.coach-files
exit $left
`

func verifyDeb(ctx context.Context, o Options, m Machine, rep *Report) error {
	st := &stepper{rep: rep}
	dpkgDebug := "-o DPkg::Options::=--debug=2"
	file := func(p string) string { return path.Join(pkgMount, filepath.Base(p)) }
	st.do("apt-get update", func() (string, string, bool) { return failed(m.Run(ctx, "apt-get update -qq", true)) })
	install := func(name, pkgPath string) bool {
		return st.do(name, func() (string, string, bool) {
			out, err := m.Run(ctx, fmt.Sprintf("apt-get install -y -q %s %s", dpkgDebug, file(pkgPath)), true)
			recordDeb(rep, name, out)
			return failed(out, err)
		})
	}
	owners := func(pkgPath string) func() (string, error) {
		return func() (string, error) {
			return m.Run(ctx, fmt.Sprintf(debOwners, spec.ShellJoin([]string{file(pkgPath)})), false)
		}
	}
	if o.Previous != "" {
		if install("install "+filepath.Base(o.Previous), o.Previous) {
			projectChecks(ctx, o, m, st, owners(o.Previous))
		}
		install("upgrade to "+filepath.Base(o.Package), o.Package)
	} else {
		install("install "+filepath.Base(o.Package), o.Package)
	}
	projectChecks(ctx, o, m, st, owners(o.Package))
	st.do("list files", func() (string, string, bool) {
		return failed(m.Run(ctx, fmt.Sprintf("dpkg-query -L %s > /root/.coach-files && wc -l < /root/.coach-files", o.Name), false))
	})
	st.do("remove", func() (string, string, bool) {
		out, err := m.Run(ctx, fmt.Sprintf("apt-get remove -y -q %s %s", dpkgDebug, o.Name), false)
		recordDeb(rep, "remove", out)
		return failed(out, err)
	})
	linksGone(ctx, o, m, st, "links removed")
	st.do("purge", func() (string, string, bool) {
		out, err := m.Run(ctx, "dpkg --debug=2 --purge "+o.Name, false)
		recordDeb(rep, "purge", out)
		return failed(out, err)
	})
	nothingLeft(ctx, m, st)
	return nil
}

func verifyRPM(ctx context.Context, o Options, m Machine, rep *Report) error {
	root := m.RPMRoot()
	if _, err := exec.LookPath("rpm"); err != nil && root != "" {
		return fmt.Errorf("verifying an rpm needs rpm (apt-get install rpm)")
	}
	st := &stepper{rep: rep}
	// rpm runs on the host with --root into a scratch root, or inside a
	// machine of the target itself, with the package at /coach/pkgs.
	pkgArg := func(p string) string {
		if root == "" {
			return path.Join(pkgMount, filepath.Base(p))
		}
		return p
	}
	rpm := func(step string, args ...string) (string, error) {
		var full string
		var err error
		if root != "" {
			cmd := exec.CommandContext(ctx, "rpm", append([]string{"--root", root, "-vv"}, args...)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err = cmd.Run()
			full = out.String()
		} else {
			full, err = m.Run(ctx, "rpm -vv "+spec.ShellJoin(args), false)
		}
		recordRPM(rep, step, full)
		// Keep what a person needs: the scriptlets' own output and errors.
		var kept []string
		for _, line := range strings.Split(full, "\n") {
			if !strings.HasPrefix(line, "D: ") || rpmHook.MatchString(line) || strings.Contains(line, "scriptlet") && strings.Contains(line, "rc") {
				kept = append(kept, line)
			}
		}
		return strings.Join(kept, "\n"), err
	}
	owners := func() (string, error) {
		args := []string{"-q", "--qf", "[%{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]", "--", o.Name}
		if root == "" {
			return m.Run(ctx, "rpm "+spec.ShellJoin(args), false)
		}
		out, err := exec.CommandContext(ctx, "rpm", append([]string{"--root", root}, args...)...).CombinedOutput()
		return string(out), err
	}
	st.do("rpm --initdb", func() (string, string, bool) { return failed(rpm("init", "--initdb")) })
	if o.Previous != "" {
		if st.do("install "+filepath.Base(o.Previous), func() (string, string, bool) {
			return failed(rpm("install", "-i", "--nodeps", "--", pkgArg(o.Previous)))
		}) {
			projectChecks(ctx, o, m, st, owners)
		}
		st.do("upgrade to "+filepath.Base(o.Package), func() (string, string, bool) {
			return failed(rpm("upgrade", "-U", "--nodeps", "--", pkgArg(o.Package)))
		})
	} else {
		st.do("install "+filepath.Base(o.Package), func() (string, string, bool) {
			return failed(rpm("install", "-i", "--nodeps", "--", pkgArg(o.Package)))
		})
	}
	projectChecks(ctx, o, m, st, owners)
	st.do("list files", func() (string, string, bool) {
		if root == "" {
			return failed(m.Run(ctx, "rpm -ql -- "+spec.ShellJoin([]string{o.Name})+" > /root/.coach-files && wc -l < /root/.coach-files", false))
		}
		out, err := exec.CommandContext(ctx, "rpm", "--root", root, "-ql", "--", o.Name).CombinedOutput()
		if err == nil {
			err = os.WriteFile(filepath.Join(root, "root/.coach-files"), out, 0o644)
		}
		return failed(fmt.Sprintf("%d files", strings.Count(string(out), "\n")), err)
	})
	st.do("erase", func() (string, string, bool) { return failed(rpm("erase", "-e", "--nodeps", "--", o.Name)) })
	linksGone(ctx, o, m, st, "links removed")
	nothingLeft(ctx, m, st)
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func removeTree(p string) {
	exec.Command("rm", "-rf", "--one-file-system", "--", p).Run()
}

var scratchName = regexp.MustCompile(`^(root|pkgs)-([0-9]+)-`)

// sweepScratch removes the scratch roots (a copy of a clean root, about
// 200 MB each) and package directories that verify runs left behind when
// they were killed: each is named after the process that made it, and one
// whose process is gone is no one's.
func sweepScratch(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		m := scratchName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		if pid <= 0 || pid == os.Getpid() || proc.Alive(pid) {
			continue
		}
		removeTree(filepath.Join(dir, e.Name()))
	}
}
