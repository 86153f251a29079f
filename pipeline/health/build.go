package health

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// Overrides add to the project's health settings, or replace them: coach
// health's flags.
type Overrides struct {
	Allow, Ignore []string
	// Runpath replaces health.runpath when set.
	Runpath string
	// BuiltFor is the target the tree was built for, when it is not the
	// one checked (coach package --from).
	BuiltFor string
}

// CheckBuild runs the health check on a build's merged tree, with the
// project's health settings and o.
func CheckBuild(res *build.Result, p *spec.Project, t target.Target, arch, sysroot string, o Overrides) (*Report, error) {
	files, libs, err := res.Owners()
	if err != nil {
		return nil, err
	}
	return Check(Options{
		Tree: res.InstallTree(), InstallDir: p.InstallDir, Sysroot: sysroot, Target: t, Arch: cmp.Or(arch, runtime.GOARCH),
		Allow: append(append([]string{}, p.Health.Allow...), o.Allow...), Ignore: append(append([]string{}, p.Health.Ignore...), o.Ignore...),
		Exclude: p.Package.Exclude, Runpath: cmp.Or(o.Runpath, p.Health.Runpath), BuiltFor: o.BuiltFor,
		Owner: func(rel string) string { return files[rel] }, Providers: libs,
	})
}

// FailedError is a health check that failed, with its report, which its
// message shows.
type FailedError struct {
	Report *Report
	Err    error
}

func (e *FailedError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	if e.Report != nil {
		b.WriteString("\n")
		e.Report.WriteText(&b)
	}
	return strings.TrimRight(b.String(), "\n")
}

func (e *FailedError) Unwrap() error { return e.Err }

// DirOptions say how CheckDir checks a directory that no build of coach
// made.
type DirOptions struct {
	// Dir is the install dir's contents, installed at InstallDir (Dir
	// itself when empty).
	Dir, InstallDir string
	// Targets are built-in targets to check for; empty means this host's.
	Targets       []string
	Allow, Ignore []string
	// Runpath is the severity of a search path outside the install dir
	// (Warning when empty).
	Runpath string
	// Sysroot is where system libraries are resolved; empty means / for
	// this host's target, else SysrootOf's root of the target.
	Sysroot   string
	SysrootOf func(target.Target) string
}

// CheckDir checks a directory for each of the targets: one report each.
func CheckDir(o DirOptions) ([]*Report, error) {
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, failure.Request(fmt.Errorf("%s is not a directory", o.Dir))
	}
	host, isHost := target.Host()
	names := o.Targets
	if len(names) == 0 {
		if !isHost {
			return nil, failure.Request(errors.New("this host is not in the target catalogue: give --target"))
		}
		names = []string{host.Name}
	}
	var reps []*Report
	for _, name := range names {
		t, ok := target.Builtin(name)
		if !ok {
			return reps, failure.Request(fmt.Errorf("unknown target %q (coach targets)", name))
		}
		opts := Options{Tree: dir, InstallDir: cmp.Or(o.InstallDir, dir), Allow: o.Allow, Ignore: o.Ignore, Runpath: o.Runpath, Arch: runtime.GOARCH, Target: t, Sysroot: o.Sysroot}
		switch {
		case opts.Sysroot != "":
		case isHost && host.Name == t.Name:
			opts.Sysroot = "/"
		case o.SysrootOf != nil:
			opts.Sysroot = o.SysrootOf(t)
		}
		rep, err := Check(opts)
		if err != nil {
			return reps, err
		}
		reps = append(reps, rep)
	}
	return reps, nil
}
