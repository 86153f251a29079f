package health

import (
	"cmp"
	"runtime"
	"strings"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// CheckBuild runs the health check on a build's merged tree, with the
// project's allowlist and ignores (plus allow and ignore).
func CheckBuild(res *build.Result, p *spec.Project, t target.Target, arch, sysroot string, allow, ignore []string) (*Report, error) {
	files, libs, err := res.Owners()
	if err != nil {
		return nil, err
	}
	return Check(Options{
		Tree: res.InstallTree(), InstallDir: p.InstallDir, Sysroot: sysroot, Target: t, Arch: cmp.Or(arch, runtime.GOARCH),
		Allow: append(append([]string{}, p.Health.Allow...), allow...), Ignore: append(append([]string{}, p.Health.Ignore...), ignore...),
		Exclude: p.Package.Exclude,
		Owner:   func(rel string) string { return files[rel] }, Providers: libs,
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
