package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/health"
	"github.com/coach-build/coach/pipeline/internal/jobserver"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/runners"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

// BuildRequest is what Run builds and how.
type BuildRequest struct {
	// Root is the repository: projects/, software/, scripts/.
	Root    string
	Project string
	// Targets restricts the run to these targets; empty means all of the
	// project's.
	Targets []string
	// Arches are the architectures to build for (Go's names); empty means
	// the project's arches, else the machine's own. A foreign one builds
	// under qemu-user emulation.
	Arches []string
	// Locked refuses a lock file that does not match the definitions.
	Locked bool
	// Version and Iteration replace the project's; Overrides add
	// component=constraint overrides to its own, with the same checks.
	Version   string
	Iteration int
	Overrides map[string]string
	// Runner builds the components; nil makes one named by RunnerName
	// (auto when empty) with NewRunner. Run closes only a runner it made.
	Runner     runner.Runner
	RunnerName string
	// CacheDir holds sources, layers, work directories and root
	// filesystems; empty means cache.DefaultDir().
	CacheDir string
	// Mirrors are source mirror bases tried before upstream; Offline uses
	// only the cache and file:// locations.
	Mirrors []string
	Offline bool
	// Jobs is how many components build at once, MakeJobs the {{.Jobs}}
	// of each build (and the -j of plain make without a job server).
	// Cores is the budget (0: all of this machine's). With a job server
	// (the sandbox's, unless NoJobserver), every make of every build
	// shares Cores tokens, Jobs defaults to Cores and MakeJobs to Cores;
	// without one, a zero splits Cores between them (SplitJobs).
	Jobs, MakeJobs, Cores int
	NoJobserver           bool
	// NoCache rebuilds every component; KeepFailed keeps a failed
	// component's work directory.
	NoCache, KeepFailed bool
	// Debug, when set, opens this shell in the environment of a build
	// step that fails, as the step left it (runners that can: the
	// sandbox). Components then build one at a time.
	Debug *runner.Shell
	// SkipHealth skips the linkage health check (loudly).
	SkipHealth bool
	// NoPackage stops after the health check; NoVerify does not install
	// the packages in a clean root of their target; Reverify verifies
	// again packages that passed before (same bytes, clean root and
	// checks) instead of reporting the cached result.
	NoPackage, NoVerify, Reverify bool
	// OutDir is where the release directory goes; empty means <Root>/pkg.
	OutDir string
	// SignKey is a GPG private key file to sign with; its passphrase is
	// read from the environment variable PassphraseEnv
	// (COACH_SIGNING_PASSPHRASE when empty).
	SignKey, PassphraseEnv string
	// Log receives log records; nil turns them into Log and Warning
	// events on Events.
	Log *slog.Logger
	// Events hears everything the run does. It may be called from several
	// goroutines at once (targets run concurrently on an engine).
	Events event.Sink
	// EngineLog asks the Dagger runner for its engine's progress.
	EngineLog bool
}

// BuildResult is a run's outcome. On failure Run returns what it has next
// to the error: the targets that were built, and why the others were not.
type BuildResult struct {
	Project string `json:"project"`
	Version string `json:"version"`
	Runner  string `json:"runner"`
	// Targets are in the project's order, failed ones included.
	Targets []*TargetResult `json:"targets"`
	// Release is the release directory, when anything was packaged.
	Release *pkg.Release `json:"release,omitempty"`
	// LockStale says how the lock file differs from the resolution built.
	LockStale []string `json:"lock_stale,omitempty"`
	Seconds   float64  `json:"seconds"`
}

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
	t.FailedStage, t.err = stageName, stage(stageName, err)
	t.Error = err.Error()
}

// Packages lists every package of a result, in target order.
func (r *BuildResult) Packages() []*pkg.Artifact {
	var out []*pkg.Artifact
	for _, t := range r.Targets {
		out = append(out, t.Packages...)
	}
	return out
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

// interrupted says what was interrupted (failure.Interrupted): nothing
// half-built is kept.
func interrupted(format string, args ...any) error { return failure.Interrupted(format, args...) }

// Run is the whole flow for one project: load, resolve and plan; then for
// each target fetch and build every component in the runner, merge the
// layers and check the tree's linkage; then package every target that went
// through and verify each package in a clean root of its target. Targets
// are independent: a failed target is reported, the others still go
// through, and the error names every failure. Everything the run does is
// reported to req.Events as it happens.
func Run(ctx context.Context, req BuildRequest) (*BuildResult, error) {
	start := time.Now()
	res := &BuildResult{Project: req.Project}
	sink := event.Serialize(req.Events)
	finish := func(err error) (*BuildResult, error) {
		res.Seconds = time.Since(start).Seconds()
		e := event.Event{Kind: event.RunFinished, Project: req.Project, Seconds: res.Seconds}
		if err != nil {
			e.Error = err.Error()
		}
		sink.Emit(e)
		return res, err
	}
	s, err := open(ctx, req.CacheDir, req.Log, sink)
	if err != nil {
		return finish(err)
	}
	defer s.close()
	log := s.log

	opts := project.Options{Targets: req.Targets, Locked: req.Locked, Version: req.Version, Iteration: req.Iteration, Overrides: req.Overrides}
	if len(req.Arches) > 0 {
		opts.Arch = req.Arches[0]
	}
	prep, err := project.Prepare(req.Root, req.Project, opts)
	if err != nil {
		return finish(err)
	}
	arches, err := archListRequest(req.Arches, prep.Project.Arches)
	if err != nil {
		return finish(err)
	}
	preps := map[string]*project.Prepared{}
	for _, a := range arches {
		if a == prep.Plan.Arch {
			preps[a] = prep
			continue
		}
		o := opts
		o.Arch = a
		if preps[a], err = project.PrepareProject(prep.Repo, req.Project, o); err != nil {
			return finish(err)
		}
	}
	res.Version, res.LockStale = prep.Project.Version, prep.LockStale
	if len(prep.LockStale) > 0 {
		log.Warn("lock file is out of date; building the fresh resolution (run coach lock)", "project", req.Project, "changes", strings.Join(prep.LockStale, "; "))
	}
	f, err := s.fetcher(req.Root, req.Mirrors, req.Offline)
	if err != nil {
		return finish(err)
	}
	r, err := s.runner(req.Runner, runners.New, req.RunnerName, req.EngineLog)
	if err != nil {
		return finish(err)
	}
	res.Runner = r.Name()
	if err := runners.CanRun(ctx, r, arches); err != nil {
		return finish(err)
	}
	targets := prep.Plan.TargetList()
	type unit struct {
		t    target.Target
		arch string
	}
	var units []unit
	var names []string
	for _, a := range arches {
		for _, t := range targets {
			units = append(units, unit{t, a})
			names = append(names, target.Label(t.Name, a))
		}
	}
	var comps []string
	for _, n := range prep.Plan.Nodes {
		comps = append(comps, n.Name)
	}
	sink.Emit(event.Event{Kind: event.RunStarted, Project: prep.Project.Name, Version: prep.Project.Version, Runner: r.Name(), Targets: names, Components: comps})

	cores := req.Cores
	if cores <= 0 {
		cores = runtime.NumCPU()
	}
	jobs, makeJobs := build.SplitJobs(req.Jobs, req.MakeJobs, cores)
	var js *jobserver.Server
	if runner.SharesJobserver(r) && !req.NoJobserver {
		if js, err = jobserver.New(cores); err != nil {
			return finish(err)
		}
		s.atClose(func() { js.Close() })
		jobs, makeJobs = cmp.Or(req.Jobs, cores), cmp.Or(req.MakeJobs, cores)
		log.Debug("job server", "tokens", cores, "jobs", jobs)
	}
	if req.Debug != nil {
		if _, ok := r.(runner.StepDebugger); !ok {
			return finish(failure.Request(fmt.Errorf("--debug: the %s runner cannot open a shell where a step failed; use --runner sandbox (or --keep-failed)", r.Name())))
		}
		jobs = 1 // one failure, one shell
	}
	tbs := map[string]*targetBuilder{}
	for _, a := range arches {
		tbs[a] = &targetBuilder{req: req, s: s, prep: preps[a], arch: a, runner: r, fetcher: f, log: log, sink: sink, jobs: jobs, makeJobs: makeJobs, jobserver: js}
	}
	tb := tbs[arches[0]]
	res.Targets = make([]*TargetResult, len(units))
	if _, ok := r.(runner.TargetScheduler); ok && req.Debug == nil {
		// The engine schedules the work: every target at once.
		var wg sync.WaitGroup
		for i, u := range units {
			wg.Go(func() { res.Targets[i] = tbs[u.arch].build(ctx, u.t) })
		}
		wg.Wait()
	} else {
		for i, u := range units {
			res.Targets[i] = tbs[u.arch].build(ctx, u.t)
		}
	}
	if ctx.Err() != nil {
		return finish(interrupted("build %s", prep.Project.Name))
	}
	var built []*TargetResult
	for _, t := range res.Targets {
		if t.OK() {
			built = append(built, t)
		}
	}
	// The repository's GC root: cache gc run from another repository that
	// shares this cache keeps what these builds used.
	for _, t := range built {
		if t.Result == nil || preps[t.Arch] == nil {
			continue
		}
		if err := s.cache.RegisterBuild(ctx, req.Root, prep.Project.Name+" "+target.Label(t.Target, t.Arch), t.Result, preps[t.Arch].Resolution); err != nil {
			log.Warn("could not record what this build uses for cache gc", "err", err)
		}
	}
	if !req.NoPackage && len(built) > 0 {
		rel, err := tb.release(built, start)
		if err != nil {
			return finish(err)
		}
		res.Release = rel
		for _, t := range built {
			for _, a := range rel.Artifacts {
				if tg, _ := prep.Project.Target(t.Target); a.Target == t.Target && a.Arch == pkg.FormatArch(tg.Format, t.Arch) {
					t.Packages = append(t.Packages, a)
				}
			}
		}
		if !req.NoVerify {
			for _, t := range built {
				tb.verify(ctx, t, rel.OutDir)
				if ctx.Err() != nil {
					return finish(interrupted("verify the packages of %s", prep.Project.Name))
				}
			}
		}
	}
	te := &TargetsError{Project: prep.Project.Name}
	for _, t := range res.Targets {
		if t.OK() {
			te.OK++
		} else {
			te.Failed = append(te.Failed, t)
		}
	}
	if len(te.Failed) > 0 {
		return finish(te)
	}
	return finish(nil)
}

// targetBuilder takes one target through build and health; the whole run
// shares it.
type targetBuilder struct {
	req            BuildRequest
	s              *session
	prep           *project.Prepared
	arch           string
	runner         runner.Runner
	fetcher        *fetch.Fetcher
	log            *slog.Logger
	sink           event.Sink
	jobs, makeJobs int
	jobserver      *jobserver.Server
}

// runStage brackets fn with StageStarted and StageFinished events.
func runStage(sink event.Sink, name, tgt string, fn func() (string, error)) error {
	start := time.Now()
	sink.Emit(event.Event{Kind: event.StageStarted, Stage: name, Target: tgt})
	msg, err := fn()
	e := event.Event{Kind: event.StageFinished, Stage: name, Target: tgt, Seconds: time.Since(start).Seconds(), Message: msg}
	if err != nil {
		e.Error = firstLine(err.Error())
	}
	sink.Emit(e)
	return err
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (b *targetBuilder) build(ctx context.Context, t target.Target) *TargetResult {
	p := b.prep.Project
	out := &TargetResult{Target: t.Name, Arch: b.arch}
	label := target.Label(t.Name, b.arch)
	workDir := b.s.cache.Work(p.Name, label)
	var res *build.Result
	err := runStage(b.sink, event.StageBuild, label, func() (string, error) {
		// Held until the packages are verified.
		if err := b.s.lockWork(ctx, workDir); err != nil {
			if ctx.Err() != nil {
				return "", interrupted("build %s for %s: while waiting for another coach run", p.Name, t.Name)
			}
			return "", err
		}
		bl := &build.Builder{
			Runner: b.runner, Fetcher: b.fetcher,
			Layers:  b.s.cache.LayerCache(),
			WorkDir: workDir,
			Jobs:    b.jobs, MakeJobs: b.makeJobs,
			NoCache: b.req.NoCache, KeepFailed: b.req.KeepFailed, Debug: b.req.Debug,
			Log: b.log, Events: b.sink, Jobserver: b.jobserver,
		}
		var err error
		res, err = bl.Build(ctx, b.prep.Plan, p, b.req.Root, t)
		if ctx.Err() != nil {
			return "", interrupted("build %s for %s: nothing half-built was kept", p.Name, t.Name)
		}
		if err != nil {
			return "", buildError(p.Name, t, label, err)
		}
		cached := 0
		for _, c := range res.Components {
			if c.CacheHit {
				cached++
			}
		}
		return fmt.Sprintf("%d components (%d cached)", len(res.Components), cached), nil
	})
	if err != nil {
		// A source that could not be had (a corrupt cache entry, offline)
		// is the fetch stage's failure.
		var corrupt *fetch.CorruptError
		var missing *fetch.MissingError
		if errors.As(err, &corrupt) || errors.As(err, &missing) {
			out.fail(event.StageFetch, err)
			return out
		}
		out.fail(event.StageBuild, err)
		return out
	}
	out.Result = res
	if b.req.SkipHealth {
		b.log.Warn("HEALTH CHECK SKIPPED (--skip-health): nothing checked that this tree links only what it ships and what the target allows", "target", t.Name)
		return out
	}
	err = runStage(b.sink, event.StageHealth, label, func() (string, error) {
		// The target's root as the runner built it; when every component
		// came from the cache, make sure it exists.
		sysroot := ""
		if s, ok := b.runner.(runner.Sysrooter); ok {
			if sysroot = s.Sysroot(t, b.prep.Plan.Arch); sysroot == "" {
				if err := b.runner.Prepare(ctx, t, b.prep.Plan.Arch, build.Packages(b.prep.Plan, t)); err == nil {
					sysroot = s.Sysroot(t, b.prep.Plan.Arch)
				}
			}
		}
		rep, err := health.CheckBuild(res, p, t, b.arch, sysroot, nil, nil)
		if err != nil {
			return "", fmt.Errorf("health check of %s for %s: %w", p.Name, t.Name, err)
		}
		out.Health = rep
		if !rep.OK() {
			var problems strings.Builder
			rep.WriteText(&problems)
			return "", fmt.Errorf("health check of %s for %s failed: %d errors (the tree is at %s; --skip-health builds anyway)\n%s", p.Name, t.Name, rep.Errors, res.Tree, strings.TrimRight(problems.String(), "\n"))
		}
		b.log.Debug("health check passed", "target", t.Name, "elf_files", rep.ELF, "warnings", rep.Warnings, "dependencies", strings.Join(rep.Dependencies, ", "))
		return fmt.Sprintf("%d ELF files, %d warnings", rep.ELF, rep.Warnings), nil
	})
	if err != nil {
		out.fail(event.StageHealth, err)
	}
	return out
}

// buildError says why a target was not built, and what to do where the
// runner cannot build it at all.
func buildError(project string, t target.Target, label string, err error) error {
	if errors.Is(err, sandbox.ErrNoBootstrap) {
		return fmt.Errorf("%s cannot be built here: the sandbox runner makes root filesystems for the Debian family only; build it with --runner dagger and a Dagger engine, or package a Debian target's tree with coach package %s -t %s --from debian-12", t.Name, project, t.Name)
	}
	return fmt.Errorf("build %s for %s: %w", project, label, err)
}

// release packages the targets that went through into one release
// directory, with the build's report.
func (b *targetBuilder) release(built []*TargetResult, start time.Time) (*pkg.Release, error) {
	var rel *pkg.Release
	err := runStage(b.sink, event.StagePackage, "", func() (string, error) {
		var trees []pkg.TargetTree
		for _, tr := range built {
			t, _ := b.prep.Project.Target(tr.Target)
			var deps []string
			if tr.Health != nil {
				deps = tr.Health.Dependencies
			}
			trees = append(trees, pkg.TargetTree{Target: t, Tree: tr.InstallTree(), Depends: deps, TreeDigest: tr.Result.TreeDigest(), Arch: tr.Arch, Files: tr.Result.FileSums})
		}
		report := map[string]any{"build": struct {
			Project string          `json:"project"`
			Version string          `json:"version"`
			Runner  string          `json:"runner"`
			Targets []*TargetResult `json:"targets"`
			Seconds float64         `json:"seconds"`
		}{b.prep.Project.Name, b.prep.Project.Version, b.runner.Name(), built, time.Since(start).Seconds()}}
		var err error
		rel, err = writeRelease(b.prep, trees, releaseOptions{root: b.req.Root, outDir: b.req.OutDir, signKey: b.req.SignKey, passEnv: b.req.PassphraseEnv}, report, b.log)
		if err != nil {
			var results []*build.Result
			for _, tr := range built {
				results = append(results, tr.Result)
			}
			return "", b.s.cache.EvictCorrupt(err, results...)
		}
		return fmt.Sprintf("%d packages in %s", len(rel.Artifacts), rel.OutDir), nil
	})
	return rel, err
}

// verify installs each package of a target in a clean root of it.
func (b *targetBuilder) verify(ctx context.Context, tr *TargetResult, outDir string) {
	projects := map[string]*spec.Project{b.prep.Project.Name: b.prep.Project}
	err := runStage(b.sink, event.StageVerify, tr.Target, func() (string, error) {
		var failures []string
		cached := 0
		for _, art := range tr.Packages {
			rep, err := verify.File(ctx, b.s.verifyFile(verify.FileRequest{
				Runner: b.runner, Package: art.Path, Target: art.Target,
				Projects: projects, Log: b.log, Events: b.sink, Reverify: b.req.Reverify,
				PackageDigest: digest.Prefix + art.SHA256,
			}))
			if ctx.Err() != nil {
				return "", interrupted("verify %s", art.File)
			}
			if err != nil {
				return "", fmt.Errorf("verify %s: %w", art.File, err)
			}
			tr.Verify = append(tr.Verify, rep)
			if !rep.OK {
				failures = append(failures, fmt.Sprintf("%s: step %q failed: %s", art.File, rep.Failed().Name, rep.Failed().Detail))
				continue
			}
			b.log.Debug("verified", "target", tr.Target, "package", art.File, "seconds", fmt.Sprintf("%.1f", rep.Seconds), "hooks", len(rep.Hooks), "cached", rep.Cached)
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
