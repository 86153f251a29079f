// Package verify installs a package into a clean root of its target and
// checks it as a user would meet it: the install (resolving its runtime
// dependencies from the target's own repositories for deb), the project's
// verify commands, root ownership, the links, an upgrade from the previous
// package, removal and purge, with every lifecycle hook invocation recorded.
package verify

import (
	"bytes"
	"cmp"
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
	"sync"
	"time"

	"github.com/coach-build/coach/pipeline/internal/pidns"
	"github.com/coach-build/coach/pipeline/internal/proc"
	"github.com/coach-build/coach/pipeline/internal/userns"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// Roots makes clean root filesystems of a target, with packages added.
type Roots interface {
	Clean(ctx context.Context, t target.Target, arch string, packages ...string) (string, error)
}

// A Machine is a clean installation of the target in which the checks run,
// as its root, one shell script at a time, each seeing what the last left.
type Machine interface {
	// Run runs script; net allows the network where the machine can deny
	// it. A script that exits non-zero returns an error with ExitCode.
	Run(ctx context.Context, script string, net bool) (string, error)
	// RPMOptions are options rpm needs in this machine to install (the
	// Debian rpm's --force-debian), or none.
	RPMOptions() []string
	// Where says where the checks run, for the report.
	Where() string
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
	// Log receives the tools' whole output (apt, dpkg's debug lines, rpm
	// -vv, the checks); OnStep hears each step as it ends, for a line of
	// progress.
	Log    io.Writer
	OnStep func(Step)
	// NewMachine, when set, makes the machine the checks run in (a
	// container of the target, with the packages at /coach/pkgs) instead of
	// a bubblewrap scratch copy of a clean root from Roots.
	NewMachine func(ctx context.Context, t target.Target, arch string, packages []string) (Machine, func(), error)
}

// Step is one check.
type Step struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	Output  string `json:"output,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Network says the step had the host's network: only the download
	// of the distribution's packages, before any package code runs.
	Network bool    `json:"network,omitempty"`
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
	Package  string `json:"package"`
	Previous string `json:"previous,omitempty"`
	Target   string `json:"target"`
	Format   string `json:"format"`
	OK       bool   `json:"ok"`
	// Where says what the checks ran in: which root or container, and
	// how confined; Caveat what that place could not check.
	Where   string  `json:"where"`
	Caveat  string  `json:"caveat,omitempty"`
	Steps   []Step  `json:"steps"`
	Hooks   []Hook  `json:"hooks"`
	Seconds float64 `json:"seconds"`
	// Cached says the report is an earlier run's: the same package bytes
	// passed in the same clean root with the same checks.
	Cached bool `json:"cached,omitempty"`
	// Log is the file with the tools' whole output.
	Log string `json:"log,omitempty"`
}

// StepLine is a step in one line of progress: its name and outcome, and
// for a failure the first line of why.
func StepLine(s Step) string {
	switch {
	case s.Skipped:
		return s.Name + ": skipped"
	case s.OK:
		return fmt.Sprintf("%s: ok (%.1fs)", s.Name, s.Seconds)
	}
	why, _, _ := strings.Cut(strings.TrimSpace(cmp.Or(s.Detail, lastLine(s.Output))), "\n")
	return fmt.Sprintf("%s: FAILED (%.1fs): %s", s.Name, s.Seconds, why)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
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

// scratch is an overlay of a clean root, entered with bwrap in coach's
// user namespace: the clean root is its read-only lower layer, and what
// the checks change lands in an upper directory of the scratch's own.
type scratch struct {
	layout *pidns.Layout
	bwrap  string
	log    io.Writer
	rpm    []string
	where  string
	dir    string // the session's command files
	// sess runs every script over one layout, made at the first; out
	// takes each script's output.
	sess *pidns.Session
	out  switchWriter
}

const pkgMount = "/coach/pkgs"

func (s *scratch) RPMOptions() []string { return s.rpm }
func (s *scratch) Where() string        { return s.where }

// switchWriter writes to w, which may change between commands.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

// Run executes a shell script inside the root, as its root (an
// unprivileged host id), with the network only when net is set (to
// download the distribution's packages).
func (s *scratch) Run(ctx context.Context, script string, net bool) (string, error) {
	if net {
		// The host's resolver, for the download.
		if resolv, err := os.ReadFile("/etc/resolv.conf"); err == nil && len(resolv) < 64<<10 {
			script = "rm -f /etc/resolv.conf && cat > /etc/resolv.conf <<'COACH_RESOLV_EOF'\n" + strings.TrimRight(string(resolv), "\n") + "\nCOACH_RESOLV_EOF\n" + script
		}
	}
	if s.sess == nil {
		sess, err := pidns.StartSession(s.layout, s.dir, &s.out)
		if err != nil {
			return "", fmt.Errorf("the verify sandbox could not be started: %w", err)
		}
		s.sess = sess
	}
	args := pidns.Bwrap{Path: s.bwrap, Net: net, Hostname: "coach-verify", Dir: "/", Env: []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"DEBIAN_FRONTEND=noninteractive", "HOME=/root", "LANG=C.UTF-8"}}.Args()
	var out bytes.Buffer
	w := io.Writer(&out)
	if s.log != nil {
		w = io.MultiWriter(&out, s.log)
	}
	s.out.set(w)
	defer s.out.set(nil)
	code, err := s.sess.Run(ctx, append(args, "/bin/sh", "-c", script))
	if err != nil {
		return out.String(), err
	}
	if code != 0 {
		return out.String(), &ExitError{Code: code}
	}
	return out.String(), nil
}

// close ends the session, and with it the overlay.
func (s *scratch) close() {
	if s.sess != nil {
		s.sess.Close()
	}
}

// ExitError is a script that exited with a status other than 0.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode is the script's exit status.
func (e *ExitError) ExitCode() int { return e.Code }

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
	rootTarget, where := o.Target, ""
	var extra, rpmOpts []string
	if o.Target.Format == target.FormatRPM {
		// No rpm distribution can be made here: the rpm cycle runs with
		// the Debian build of rpm, in a clean Debian root, confined like
		// any other verify. Dependencies cannot be resolved there.
		rootTarget, _ = target.Builtin("debian-12")
		extra, rpmOpts = []string{"rpm"}, []string{"--force-debian"}
		where = fmt.Sprintf("rpm (Debian's build) in a clean %s %s root", rootTarget.Name, o.Arch)
		rep.Caveat = fmt.Sprintf("the package's dependencies were not resolved (rpm --nodeps): no %s root can be made here", o.Target.Name)
	} else {
		where = fmt.Sprintf("a clean %s %s root", o.Target.Name, o.Arch)
	}
	var pkgFiles []string
	for _, p := range []string{o.Package, o.Previous} {
		if p != "" {
			pkgFiles = append(pkgFiles, p)
		}
	}
	m, done, err := newScratch(ctx, scratchOptions{roots: o.Roots, target: rootTarget, arch: o.Arch, packages: extra, workDir: o.WorkDir,
		copies: pkgFiles, log: o.Log, rpm: rpmOpts, where: where})
	if err != nil {
		return nil, err
	}
	defer done()
	return finish(ctx, o, m, rep, start)
}

// finish runs the cycle of the package's format in m.
func finish(ctx context.Context, o Options, m Machine, rep *Report, start time.Time) (*Report, error) {
	rep.Where = m.Where()
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
	onStep func(Step)
}

func (st *stepper) do(name string, fn func() (output, detail string, ok bool)) bool {
	return st.step(Step{Name: name}, fn)
}

// step runs a step described by s (its name, whether it has the network).
func (st *stepper) step(s Step, fn func() (output, detail string, ok bool)) bool {
	if st.failed {
		s.Skipped = true
		st.rep.Steps = append(st.rep.Steps, s)
		return false
	}
	start := time.Now()
	out, detail, ok := fn()
	s.OK, s.Output, s.Detail, s.Seconds = ok, tail(out, 60), detail, time.Since(start).Seconds()
	st.rep.Steps = append(st.rep.Steps, s)
	if !ok {
		st.failed = true
	}
	if st.onStep != nil {
		st.onStep(s)
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
	if links := p.Package.LinksFor(o.Target); len(links) > 0 {
		st.do("links", func() (string, string, bool) {
			var script strings.Builder
			for _, l := range slices.Sorted(maps.Keys(links)) {
				fmt.Fprintf(&script, "[ \"$(readlink %q)\" = %q ] && echo %q || { echo 'missing or wrong link %s'; exit 1; }\n", l, links[l], l+" -> "+links[l], l)
			}
			return failed(m.Run(ctx, script.String(), false))
		})
	}
}

func linksGone(ctx context.Context, o Options, m Machine, st *stepper, step string) {
	if o.Project == nil || len(o.Project.Package.LinksFor(o.Target)) == 0 {
		return
	}
	st.do(step, func() (string, string, bool) {
		var script strings.Builder
		for _, l := range slices.Sorted(maps.Keys(o.Project.Package.LinksFor(o.Target))) {
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
// list of its files saved before removal. A directory that was there
// before the package was installed stays (recorded by preexisting: the
// system's own, another package's, the merged-/usr links such as /lib);
// so do the shared system directories (/usr/bin, /opt, ...).
const leftovers = `
left=0
touch /root/.coach-preexisting
while IFS= read -r f; do
  [ -z "$f" ] && continue
  case "$f" in
    /|/opt|/usr|/usr/bin|/usr/sbin|/usr/share|/usr/share/doc|/etc|/var|/usr/lib|/usr/local) continue;;
  esac
  if [ -d "$f" ] && grep -qxF -- "$f" /root/.coach-preexisting; then continue; fi
  if [ -e "$f" ] || [ -L "$f" ]; then
    if [ -d "$f" ] && [ ! -L "$f" ] && [ -n "$(ls -A "$f")" ]; then echo "left behind (not empty): $f, holding: $(ls -A "$f" | head -5 | tr '\n' ' ')"; left=1; continue; fi
    if [ -d "$f" ] && [ ! -L "$f" ]; then echo "left behind (empty dir): $f"; left=1; continue; fi
    echo "left behind: $f"; left=1
  fi
done < /root/.coach-files
exit $left
`

// preexisting records which of the packages' directories exist before
// the first install (list prints a package's paths, one a line), for
// leftovers: a directory the system or another package already had is
// not the package's to remove, whatever the package lists.
func preexisting(list string, pkgs ...string) string {
	var b strings.Builder
	b.WriteString("{\n")
	for _, p := range pkgs {
		fmt.Fprintf(&b, list+"\n", spec.ShellJoin([]string{p}))
	}
	b.WriteString("} | sed -e 's#^\\./#/#' -e 's#/$##' | while IFS= read -r f; do [ -n \"$f\" ] && [ -d \"$f\" ] && printf '%s\\n' \"$f\"; done > /root/.coach-preexisting || :\n")
	return b.String()
}

// packagePaths are where the machine sees the packages verify installs.
func packagePaths(o Options, at func(string) string) []string {
	var out []string
	for _, p := range []string{o.Previous, o.Package} {
		if p != "" {
			out = append(out, at(p))
		}
	}
	return out
}

const (
	debPaths = "dpkg-deb --fsys-tarfile %s | tar -tf -"
	rpmPaths = "rpm -qlp --nosignature -- %s 2>/dev/null"
)

func verifyDeb(ctx context.Context, o Options, m Machine, rep *Report) error {
	st := &stepper{rep: rep, onStep: o.OnStep}
	dpkgDebug := "-o DPkg::Options::=--debug=2"
	file := func(p string) string { return path.Join(pkgMount, filepath.Base(p)) }
	// The only step with the network: apt resolves the packages'
	// dependencies and downloads them from the target's archive, and no
	// package's code runs. Everything after it runs offline.
	st.step(Step{Name: "download dependencies", Network: true}, func() (string, string, bool) {
		return failed(m.Run(ctx, downloadScript(o, file), true))
	})
	first := preexisting(debPaths, packagePaths(o, file)...)
	install := func(name, pkgPath string) bool {
		return st.do(name, func() (string, string, bool) {
			out, err := m.Run(ctx, first+fmt.Sprintf("apt-get install -y -q %s %s", dpkgDebug, file(pkgPath)), false)
			first = ""
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
	st := &stepper{rep: rep, onStep: o.OnStep}
	// rpm runs inside the machine, confined like any other step, with the
	// package at /coach/pkgs: its scriptlets run exactly as a deb's
	// maintainer scripts do.
	pkgArg := func(p string) string { return path.Join(pkgMount, filepath.Base(p)) }
	change := append([]string{"--nodeps"}, m.RPMOptions()...)
	rpm := func(step string, args ...string) (string, error) {
		full, err := m.Run(ctx, "rpm -vv "+spec.ShellJoin(args), false)
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
		return m.Run(ctx, "rpm "+spec.ShellJoin([]string{"-q", "--qf", "[%{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]", "--", o.Name}), false)
	}
	st.do("rpm --initdb", func() (string, string, bool) {
		out, err := rpm("init", "--initdb")
		if err == nil {
			var snap string
			snap, err = m.Run(ctx, preexisting(rpmPaths, packagePaths(o, pkgArg)...), false)
			out += snap
		}
		return failed(out, err)
	})
	if o.Previous != "" {
		if st.do("install "+filepath.Base(o.Previous), func() (string, string, bool) {
			return failed(rpm("install", slices.Concat([]string{"-i"}, change, []string{"--", pkgArg(o.Previous)})...))
		}) {
			projectChecks(ctx, o, m, st, owners)
		}
		st.do("upgrade to "+filepath.Base(o.Package), func() (string, string, bool) {
			return failed(rpm("upgrade", slices.Concat([]string{"-U"}, change, []string{"--", pkgArg(o.Package)})...))
		})
	} else {
		st.do("install "+filepath.Base(o.Package), func() (string, string, bool) {
			return failed(rpm("install", slices.Concat([]string{"-i"}, change, []string{"--", pkgArg(o.Package)})...))
		})
	}
	projectChecks(ctx, o, m, st, owners)
	st.do("list files", func() (string, string, bool) {
		return failed(m.Run(ctx, "rpm -ql -- "+spec.ShellJoin([]string{o.Name})+" > /root/.coach-files && wc -l < /root/.coach-files", false))
	})
	st.do("erase", func() (string, string, bool) {
		return failed(rpm("erase", slices.Concat([]string{"-e"}, change, []string{"--", o.Name})...))
	})
	linksGone(ctx, o, m, st, "links removed")
	nothingLeft(ctx, m, st)
	return nil
}

// downloadScript resolves and downloads what the packages depend on from
// the target's archive, without installing anything: apt's download-only
// mode runs no package's scripts.
func downloadScript(o Options, file func(string) string) string {
	var b strings.Builder
	b.WriteString("set -e\napt-get update -qq\n")
	for _, p := range []string{o.Previous, o.Package} {
		if p != "" {
			fmt.Fprintf(&b, "apt-get install -y -q --download-only %s\n", spec.ShellJoin([]string{file(p)}))
		}
	}
	b.WriteString("echo \"$(ls /var/cache/apt/archives | grep -c '\\.deb$') packages downloaded\"\n")
	return b.String()
}

// copyFile copies a package into the scratch, stopping when ctx ends.
func copyFile(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, &ctxReader{ctx, in})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func removeTree(p string) {
	exec.Command("rm", "-rf", "--one-file-system", "--", p).Run()
}

var scratchName = regexp.MustCompile(`^(?:root|pkgs)-([0-9]+)-`)

// Leftovers are the scratch roots (an overlay's upper directory and the
// packages' copies) and package directories that verify runs left in dir
// when they were killed: each is named after the process that made it, and
// one whose process is gone is no one's.
func Leftovers(dir string) []string {
	var out []string
	for _, e := range proc.Leftovers(dir, scratchName) {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

// sweepScratch removes the Leftovers.
func sweepScratch(dir string) {
	for _, p := range Leftovers(dir) {
		removeTree(p)
	}
}

// Bind is a host directory mounted read-only in a scratch root.
type Bind struct{ Source, Target string }

type scratchOptions struct {
	roots    Roots
	target   target.Target
	arch     string
	packages []string // added to the clean root
	workDir  string
	copies   []string // files copied to pkgMount
	binds    []Bind
	log      io.Writer
	rpm      []string // the Machine's RPMOptions
	where    string   // where the checks run, for the report (the confinement is added)
}

// NewScratch is an overlay of a clean root of t (made by roots) in which
// scripts run as root of coach's user namespace, with no network unless a
// script asks for it, confined as verify's checks are; binds are mounted
// read-only. done removes it.
func NewScratch(ctx context.Context, roots Roots, t target.Target, arch, workDir string, binds []Bind, log io.Writer) (m Machine, done func(), err error) {
	return newScratch(ctx, scratchOptions{roots: roots, target: t, arch: arch, workDir: workDir, binds: binds, log: log,
		where: fmt.Sprintf("a clean %s %s root", t.Name, arch)})
}

func newScratch(ctx context.Context, o scratchOptions) (m Machine, done func(), err error) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, nil, fmt.Errorf("verify needs bubblewrap (apt-get install bubblewrap), or a Dagger engine (--runner dagger)")
	}
	ids, err := userns.Current()
	if err != nil {
		return nil, nil, fmt.Errorf("verify's sandbox: %w", err)
	}
	clean, err := o.roots.Clean(ctx, o.target, o.arch, o.packages...)
	if err != nil {
		return nil, nil, err
	}
	if strings.ContainsAny(clean, ",:") {
		return nil, nil, fmt.Errorf("verify: path %q contains , or :, which overlayfs options cannot carry; choose another --cache-dir", clean)
	}
	if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return nil, nil, err
	}
	sweepScratch(o.workDir)
	dir, err := os.MkdirTemp(o.workDir, fmt.Sprintf("root-%d-", os.Getpid()))
	if err != nil {
		return nil, nil, err
	}
	var s *scratch
	done = func() {
		if s != nil {
			s.close()
		}
		removeTree(dir)
	}
	defer func() {
		if err != nil {
			done()
		}
	}()
	if strings.ContainsAny(dir, ",:") {
		return nil, nil, fmt.Errorf("verify: path %q contains , or :, which overlayfs options cannot carry; choose another --cache-dir", dir)
	}
	upper, work, pkgs := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "pkgs")
	for _, d := range []string{upper, work, pkgs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, nil, err
		}
	}
	// The upper directory is the root directory of the overlay.
	if err := userns.ChownLike(upper, clean); err != nil {
		return nil, nil, err
	}
	for _, p := range o.copies {
		if err := copyFile(ctx, p, filepath.Join(pkgs, filepath.Base(p))); err != nil {
			return nil, nil, err
		}
	}
	layout := &pidns.Layout{Staging: filepath.Join(dir, "staging"), Mounts: []pidns.Mount{
		{Kind: pidns.Overlay, Options: pidns.OverlayOptions([]string{clean}, upper, work)},
		{Kind: pidns.ReadOnly, Source: pkgs, Target: pkgMount},
	}}
	for _, b := range o.binds {
		layout.Mounts = append(layout.Mounts, pidns.Mount{Kind: pidns.ReadOnly, Source: b.Source, Target: b.Target})
	}
	if err := os.Mkdir(layout.Staging, 0o755); err != nil {
		return nil, nil, err
	}
	s = &scratch{layout: layout, bwrap: bwrap, log: o.log, dir: filepath.Join(dir, "commands"),
		rpm: o.rpm, where: o.where + fmt.Sprintf("; bubblewrap, as root of a user namespace (host %s), with no network but for the download of the distribution's packages", ids)}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return nil, nil, err
	}
	if !ids.Ranged() {
		// As a user the namespace maps only the user, as root: apt cannot
		// drop to its _apt user there.
		if _, err := s.Run(ctx, `echo 'APT::Sandbox::User "root";' > /etc/apt/apt.conf.d/00coach-rootless`, false); err != nil {
			return nil, nil, err
		}
	}
	return s, done, nil
}
