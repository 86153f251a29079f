// Package flow takes the targets of one run through the stages that work
// on a target: build and health check (Target.Build), packaging of the
// targets that went through (Target.Release) and verification of their
// packages (Target.Verify). Each brackets its work with stage events and
// tags its failure with the stage, so that package pipeline's commands only
// string them together.
package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/health"
	"github.com/coach-build/coach/pipeline/internal/jobserver"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/remote"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

// TargetResult is one target's outcome.
type TargetResult struct {
	Target string `json:"target"`
	// Arch is the architecture built for (Go's name).
	Arch string `json:"arch"`
	// The build: components (with cache hits and times), the merged tree.
	*build.Result
	Health   *health.Report   `json:"health,omitempty"`
	Packages []*pkg.Artifact  `json:"packages,omitempty"`
	Verify   []*verify.Report `json:"verify,omitempty"`
	// FailedStage is the stage that failed (build, health, verify), and
	// Error why; both empty when the target went through.
	FailedStage string `json:"failed_stage,omitempty"`
	Error       string `json:"error,omitempty"`
	err         error
}

// Label names the target and, when it is not the machine's own, the
// architecture: debian-12, debian-12-arm64.
func (t *TargetResult) Label() string { return target.Label(t.Target, t.Arch) }

// OK reports whether the target went through every stage asked for.
func (t *TargetResult) OK() bool { return t.FailedStage == "" }

// Err is why the target failed, or nil.
func (t *TargetResult) Err() error { return t.err }

func (t *TargetResult) fail(stageName string, err error) {
	t.FailedStage, t.err = stageName, failure.Stage(stageName, err)
	t.Error = err.Error()
}

// TargetsError is a run in which some targets failed. Its stage (for
// FailedStage and the CLI's exit code) is the first failure's.
type TargetsError struct {
	Project string
	// Failed are the failed targets' results, in target order.
	Failed []*TargetResult
	// OK is how many targets went through.
	OK int
}

// Failures is a *TargetsError when some of the results failed, else nil.
func Failures(project string, results []*TargetResult) error {
	te := &TargetsError{Project: project}
	for _, t := range results {
		if t.OK() {
			te.OK++
		} else {
			te.Failed = append(te.Failed, t)
		}
	}
	if len(te.Failed) == 0 {
		return nil
	}
	return te
}

func (e *TargetsError) Error() string {
	if len(e.Failed) == 1 && e.OK == 0 {
		return e.Failed[0].Error
	}
	msgs := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		msgs[i] = f.Error
	}
	summary := fmt.Sprintf("%d of %d targets failed", len(e.Failed), len(e.Failed)+e.OK)
	if e.OK > 0 {
		summary += " (the packages of the others were written)"
	}
	return fmt.Sprintf("%s: %s:\n\t%s", e.Project, summary, strings.Join(msgs, "\n\t"))
}

func (e *TargetsError) Unwrap() error { return e.Failed[0].err }

// Options are what a run asks of every target.
type Options struct {
	// Root is the repository.
	Root string
	// NoCache, KeepFailed and Debug are build.Builder's.
	NoCache, KeepFailed bool
	Debug               *runner.Shell
	// SkipHealth skips the linkage health check (loudly).
	SkipHealth bool
	// OutDir, SignKey and PassEnv are pkg.ReleaseOptions'.
	OutDir, SignKey, PassEnv string
	// Reverify verifies again packages that passed before.
	Reverify bool
	// Remote is the remote layer cache, if any (build.Builder's).
	Remote build.Remote
}

// Target takes the targets of one project and architecture through the
// stages; a run shares one per architecture.
type Target struct {
	Options
	Prep    *project.Prepared
	Arch    string
	Runner  runner.Runner
	Fetcher *fetch.Fetcher
	Cache   cache.Layout
	// LockWork takes a work tree's lock for the rest of the run.
	LockWork       func(ctx context.Context, dir string) error
	Jobs, MakeJobs int
	Jobserver      *jobserver.Server
	Log            *slog.Logger
	Events         event.Sink
}

// Build builds a target and checks its tree's linkage.
func (b *Target) Build(ctx context.Context, t target.Target) *TargetResult {
	p := b.Prep.Project
	out := &TargetResult{Target: t.Name, Arch: b.Arch}
	label := target.Label(t.Name, b.Arch)
	workDir := b.Cache.Work(p.Name, label)
	var res *build.Result
	err := b.Events.Stage(event.StageBuild, label, func() (string, error) {
		// Held until the packages are verified.
		if err := b.LockWork(ctx, workDir); err != nil {
			if ctx.Err() != nil {
				return "", failure.Interrupted("build %s for %s: while waiting for another coach run", p.Name, t.Name)
			}
			return "", err
		}
		bl := &build.Builder{
			Runner: b.Runner, Fetcher: b.Fetcher,
			Layers:  b.Cache.LayerCache(),
			WorkDir: workDir,
			Jobs:    b.Jobs, MakeJobs: b.MakeJobs,
			NoCache: b.NoCache, KeepFailed: b.KeepFailed, Debug: b.Debug, Remote: b.Remote,
			Log: b.Log, Events: b.Events, Jobserver: b.Jobserver,
		}
		var err error
		res, err = bl.Build(ctx, b.Prep.Plan, p, b.Root, t)
		if ctx.Err() != nil {
			return "", failure.Interrupted("build %s for %s: nothing half-built was kept", p.Name, t.Name)
		}
		if err != nil {
			return "", buildError(p.Name, t, label, err)
		}
		cached, pulled := 0, 0
		for _, c := range res.Components {
			switch {
			case c.From == build.FromRemote:
				pulled++
			case c.CacheHit:
				cached++
			}
		}
		if pulled > 0 {
			return fmt.Sprintf("%d components (%d cached, %d pulled from the remote cache)", len(res.Components), cached, pulled), nil
		}
		return fmt.Sprintf("%d components (%d cached)", len(res.Components), cached), nil
	})
	if err != nil {
		// What each component came to (built, failed, cancelled, not
		// started), for the report; there is no tree.
		out.Result = res
		// A source that could not be had (a corrupt cache entry, offline)
		// or a required remote cache that could not be reached is the
		// fetch stage's failure.
		var corrupt *fetch.CorruptError
		var missing *fetch.MissingError
		var unreachable *remote.UnavailableError
		if errors.As(err, &corrupt) || errors.As(err, &missing) || errors.As(err, &unreachable) {
			out.fail(event.StageFetch, err)
			return out
		}
		out.fail(event.StageBuild, err)
		return out
	}
	out.Result = res
	if b.SkipHealth {
		b.Log.Warn("HEALTH CHECK SKIPPED (--skip-health): nothing checked that this tree links only what it ships and what the target allows", "target", t.Name)
		b.register(ctx, out)
		return out
	}
	err = b.Events.Stage(event.StageHealth, label, func() (string, error) {
		// A report of the same tree, checked against the same target root
		// with the same settings, from the remote cache: this machine
		// need not make the root to check it again.
		reports, _ := b.Remote.(ReportCache)
		key := b.healthKey(res, t)
		if reports != nil && key != "" {
			if rep := pullReport(ctx, reports, key); rep != nil {
				out.Health = rep
				return fmt.Sprintf("%d ELF files, %d warnings (the report of the same tree, from the remote cache)", rep.ELF, rep.Warnings), nil
			}
		}
		// The target's root as the runner built it; when every component
		// came from the cache, make sure it exists.
		sysroot := runner.SysrootOf(ctx, b.Runner, t, b.Prep.Plan.Arch, build.Packages(b.Prep.Plan, t))
		rep, err := health.CheckBuild(res, p, t, b.Arch, sysroot, health.Overrides{})
		if err != nil {
			return "", fmt.Errorf("health check of %s for %s: %w", p.Name, t.Name, err)
		}
		out.Health = rep
		if reports != nil && key != "" && reports.Pushes() && rep.OK() {
			if data, err := json.Marshal(rep); err == nil {
				if err := reports.PushReport(ctx, key, data, b.Cache.Layers()); err != nil {
					return "", err
				}
			}
		}
		if !rep.OK() {
			var problems strings.Builder
			rep.WriteText(&problems)
			return "", fmt.Errorf("health check of %s for %s failed: %d errors (the tree is at %s; --skip-health builds anyway)\n%s", p.Name, t.Name, rep.Errors, res.Tree, strings.TrimRight(problems.String(), "\n"))
		}
		b.Log.Debug("health check passed", "target", t.Name, "elf_files", rep.ELF, "warnings", rep.Warnings, "dependencies", strings.Join(rep.Dependencies, ", "))
		return fmt.Sprintf("%d ELF files, %d warnings", rep.ELF, rep.Warnings), nil
	})
	if err != nil {
		out.fail(event.StageHealth, err)
		return out
	}
	b.register(ctx, out)
	return out
}

// register records what a target's build uses in the repository's GC
// root, so that cache gc run from another repository that shares this
// cache keeps it.
func (b *Target) register(ctx context.Context, tr *TargetResult) {
	name := b.Prep.Project.Name + " " + tr.Label()
	if err := b.Cache.RegisterBuild(ctx, b.Root, name, tr.Result, b.Prep.Resolution); err != nil {
		b.Log.Warn("could not record what this build uses for cache gc", "err", err)
	}
}

// buildError says why a target was not built, and what to do where the
// runner cannot build it at all.
func buildError(project string, t target.Target, label string, err error) error {
	if errors.Is(err, sandbox.ErrNoBootstrap) {
		return fmt.Errorf("%s cannot be built here: the sandbox runner makes root filesystems for the Debian family only; build it with --runner dagger and a Dagger engine, or package a Debian target's tree with coach package %s -t %s --from debian-12", t.Name, project, t.Name)
	}
	return fmt.Errorf("build %s for %s: %w", project, label, err)
}

// Release packages the targets that went through into one release
// directory, with the build's report, and gives each target its packages.
func (b *Target) Release(built []*TargetResult, start time.Time) (*pkg.Release, error) {
	var rel *pkg.Release
	err := b.Events.Stage(event.StagePackage, "", func() (string, error) {
		var trees []pkg.TargetTree
		var results []*build.Result
		for _, tr := range built {
			t, _ := b.Prep.Project.Target(tr.Target)
			var deps []string
			if tr.Health != nil {
				deps = tr.Health.Dependencies
			}
			trees = append(trees, pkg.TargetTree{Target: t, Tree: tr.InstallTree(), Depends: deps, TreeDigest: tr.Result.TreeDigest(), Arch: tr.Arch, Files: tr.Result.FileSums})
			results = append(results, tr.Result)
		}
		report := map[string]any{"build": struct {
			Project string          `json:"project"`
			Version string          `json:"version"`
			Runner  string          `json:"runner"`
			Targets []*TargetResult `json:"targets"`
			Seconds float64         `json:"seconds"`
		}{b.Prep.Project.Name, b.Prep.Project.Version, b.Runner.Name(), built, time.Since(start).Seconds()}}
		var err error
		rel, err = WriteRelease(b.Prep, pkg.ReleaseOptions{Root: b.Root, Trees: trees, OutDir: b.OutDir, SignKey: b.SignKey, PassEnv: b.PassEnv, Report: report, Log: b.Log})
		if err != nil {
			return "", b.Cache.EvictCorrupt(err, results...)
		}
		return fmt.Sprintf("%d packages in %s", len(rel.Artifacts), rel.OutDir), nil
	})
	if err != nil {
		return nil, err
	}
	for _, t := range built {
		tg, _ := b.Prep.Project.Target(t.Target)
		for _, a := range rel.Artifacts {
			if a.Target == t.Target && a.Arch == pkg.FormatArch(tg.Format, t.Arch) {
				t.Packages = append(t.Packages, a)
			}
		}
	}
	return rel, nil
}

// WriteRelease writes the packages of some targets' trees with their
// manifest, SBOM, sums and report (pkg.WriteRelease), failing in the
// package stage.
func WriteRelease(prep *project.Prepared, o pkg.ReleaseOptions) (*pkg.Release, error) {
	o.Project, o.Resolution, o.Arch, o.Lock = prep.Project, prep.Resolution, prep.Plan.Arch, prep.Lock
	rel, err := pkg.WriteRelease(o)
	return rel, failure.Stage(event.StagePackage, err)
}

// Verify installs each package of a target in a clean root of it.
func (b *Target) Verify(ctx context.Context, tr *TargetResult, outDir string) {
	projects := map[string]*spec.Project{b.Prep.Project.Name: b.Prep.Project}
	err := b.Events.Stage(event.StageVerify, tr.Target, func() (string, error) {
		var failures []string
		cached := 0
		for _, art := range tr.Packages {
			rep, err := verify.File(ctx, b.Cache.VerifyPlaces(verify.FileRequest{
				Runner: b.Runner, Package: art.Path, Target: art.Target,
				Projects: projects, Log: b.Log, Events: b.Events, Reverify: b.Reverify,
				PackageDigest: digest.Prefix + art.SHA256,
			}))
			if ctx.Err() != nil {
				return "", failure.Interrupted("verify %s", art.File)
			}
			if err != nil {
				return "", fmt.Errorf("verify %s: %w", art.File, err)
			}
			tr.Verify = append(tr.Verify, rep)
			if !rep.OK {
				failures = append(failures, fmt.Sprintf("%s: step %q failed: %s", art.File, rep.Failed().Name, rep.Failed().Detail))
				continue
			}
			b.Log.Debug("verified", "target", tr.Target, "package", art.File, "seconds", fmt.Sprintf("%.1f", rep.Seconds), "hooks", len(rep.Hooks), "cached", rep.Cached)
			if rep.Cached {
				cached++
			}
		}
		if len(failures) > 0 {
			return "", fmt.Errorf("verification failed (the packages are in %s):\n\t%s", outDir, strings.Join(failures, "\n\t"))
		}
		if cached == len(tr.Packages) {
			return "verified (cached)", nil
		}
		return fmt.Sprintf("%d packages installed, checked, removed and purged", len(tr.Packages)), nil
	})
	if err != nil && ctx.Err() == nil {
		tr.fail(event.StageVerify, err)
	}
}

// CheckTree is the health stage of packaging a build's tree again (coach
// package): the tree built for src, checked as a package for t. A failed
// check is a *health.FailedError, unless skip, which only warns.
func CheckTree(events event.Sink, log *slog.Logger, res *build.Result, p *spec.Project, t target.Target, src, arch, sysroot string, skip bool) (*health.Report, error) {
	var rep *health.Report
	err := events.Stage(event.StageHealth, t.Name, func() (string, error) {
		r, err := health.CheckBuild(res, p, t, arch, sysroot, health.Overrides{BuiltFor: src})
		if err != nil {
			return "", err
		}
		rep = r
		if !r.OK() {
			return "", fmt.Errorf("health check of the %s tree for %s failed: %d errors", src, t.Name, r.Errors)
		}
		return fmt.Sprintf("%d ELF files, %d warnings", r.ELF, r.Warnings), nil
	})
	switch {
	case rep == nil:
		return nil, failure.Stage(event.StageHealth, err)
	case rep.OK():
	case !skip:
		return nil, failure.Stage(event.StageHealth, &health.FailedError{Report: rep, Err: fmt.Errorf("health check of the %s tree for %s failed (--skip-health packages it anyway)", src, t.Name)})
	default:
		log.Warn("HEALTH CHECK FAILED AND IGNORED (--skip-health): this package may not run on its target", "tree", src, "target", t.Name, "errors", rep.Errors)
	}
	return rep, nil
}

// VerifyPackage is the verify stage of one package on one target (coach
// verify): a report that is not OK is returned with the failure as the
// error.
func VerifyPackage(ctx context.Context, events event.Sink, req verify.FileRequest) (*verify.Report, error) {
	var rep *verify.Report
	err := events.Stage(event.StageVerify, req.Target, func() (string, error) {
		var err error
		if rep, err = verify.File(ctx, req); err != nil {
			return "", err
		}
		if !rep.OK {
			return "", fmt.Errorf("%s: step %q failed: %s", rep.Package, rep.Failed().Name, rep.Failed().Detail)
		}
		caveat := ""
		if rep.Caveat != "" {
			caveat = "; " + rep.Caveat
		}
		if rep.Cached {
			return "verified (cached)" + caveat, nil
		}
		return "installed, checked, removed and purged" + caveat, nil
	})
	return rep, err
}

// ReportCache shares health reports between machines (the remote cache,
// remote.Cache, is one): a capability of a build.Remote.
type ReportCache interface {
	// PullReport reads the report stored under key; a miss is
	// fs.ErrNotExist.
	PullReport(ctx context.Context, key string) ([]byte, error)
	// PushReport stores one; tmp is for temporary files.
	PushReport(ctx context.Context, key string, report []byte, tmp string) error
	Pushes() bool
}

// healthSchema changes when the health check judges the same inputs
// differently, so that a report of an older check is not reused.
const healthSchema = 2

// healthKey is what a health report depends on: the tree (its layers'
// digests), the project's health and exclude settings and install dir,
// the target, the arch and the root it is checked against (the runner's
// environment of every build package). "" when it cannot be known.
func (b *Target) healthKey(res *build.Result, t target.Target) string {
	tree := res.TreeDigest()
	e, ok := b.Runner.(runner.Environment)
	if tree == "" || !ok {
		return ""
	}
	p := b.Prep.Project
	return digest.JSON(struct {
		Schema                 int
		Tree, InstallDir, Arch string
		Allow, Ignore, Exclude []string
		Runpath                string
		Target                 target.Target
		Environment            string
	}{healthSchema, tree, p.InstallDir, b.Prep.Plan.Arch, p.Health.Allow, p.Health.Ignore, p.Package.Exclude, p.Health.Runpath, t,
		e.EnvironmentID(t, b.Prep.Plan.Arch, build.Packages(b.Prep.Plan, t))})
}

// pullReport is the report under key, nil when there is none (or it is
// not a report coach can read, or it failed).
func pullReport(ctx context.Context, r ReportCache, key string) *health.Report {
	data, err := r.PullReport(ctx, key)
	if err != nil {
		return nil
	}
	var rep health.Report
	if json.Unmarshal(data, &rep) != nil || !rep.OK() {
		return nil
	}
	return &rep
}
