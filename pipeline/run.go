package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/flow"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runners"
	"github.com/coach-build/coach/pipeline/target"
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
	// Remote is the remote cache shared between machines (--cache-from,
	// --cache-to); the zero value uses none.
	Remote RemoteCache
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
	// RemoteCache is what the remote cache moved, when one was used.
	RemoteCache *RemoteCacheResult `json:"remote_cache,omitempty"`
}

// TargetResult is one target's outcome (flow.TargetResult).
type TargetResult = flow.TargetResult

// TargetsError is a run in which some targets failed (flow.TargetsError).
type TargetsError = flow.TargetsError

// Packages lists every package of a result, in target order.
func (r *BuildResult) Packages() []*pkg.Artifact {
	var out []*pkg.Artifact
	for _, t := range r.Targets {
		out = append(out, t.Packages...)
	}
	return out
}

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
	arches, preps, err := project.PrepareArches(req.Root, req.Project, opts, req.Arches)
	if err != nil {
		return finish(err)
	}
	prep := preps[arches[0]]
	res.Version, res.LockStale = prep.Project.Version, prep.LockStale
	if len(prep.LockStale) > 0 {
		log.Warn("lock file is out of date; building the fresh resolution (run coach lock)", "project", req.Project, "changes", strings.Join(prep.LockStale, "; "))
	}
	f, err := s.fetcher(req.Root, req.Mirrors, req.Offline)
	if err != nil {
		return finish(err)
	}
	rc, err := s.remoteCache(req.Remote)
	if err != nil {
		return finish(err)
	}
	if rc != nil {
		f.Remote = rc
		defer func() { res.RemoteCache = remoteResult(rc) }()
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

	par, err := build.Share(r, req.Jobs, req.MakeJobs, req.Cores, req.NoJobserver)
	if err != nil {
		return finish(err)
	}
	if js := par.Jobserver; js != nil {
		s.atClose(func() { js.Close() })
	}
	if req.Debug != nil {
		if _, ok := r.(runner.StepDebugger); !ok {
			return finish(failure.Request(fmt.Errorf("--debug: the %s runner cannot open a shell where a step failed; use --runner sandbox (or --keep-failed)", r.Name())))
		}
		par.Jobs = 1 // one failure, one shell
	}
	fo := flow.Options{Root: req.Root, NoCache: req.NoCache, KeepFailed: req.KeepFailed, Debug: req.Debug, SkipHealth: req.SkipHealth,
		OutDir: req.OutDir, SignKey: req.SignKey, PassEnv: req.PassphraseEnv, Reverify: req.Reverify}
	if rc != nil {
		fo.Remote = rc
	}
	tbs := map[string]*flow.Target{}
	for _, a := range arches {
		tbs[a] = &flow.Target{Options: fo, Prep: preps[a], Arch: a, Runner: r, Fetcher: f, Cache: s.cache, LockWork: s.lockWork,
			Jobs: par.Jobs, MakeJobs: par.MakeJobs, Jobserver: par.Jobserver, Log: log, Events: sink}
	}
	tb := tbs[arches[0]]
	res.Targets = make([]*TargetResult, len(units))
	if _, ok := r.(runner.TargetScheduler); ok && req.Debug == nil {
		// The engine schedules the work: every target at once.
		var wg sync.WaitGroup
		for i, u := range units {
			wg.Go(func() { res.Targets[i] = tbs[u.arch].Build(ctx, u.t) })
		}
		wg.Wait()
	} else {
		for i, u := range units {
			res.Targets[i] = tbs[u.arch].Build(ctx, u.t)
		}
	}
	if ctx.Err() != nil {
		return finish(failure.Interrupted("build %s", prep.Project.Name))
	}
	var built []*TargetResult
	for _, t := range res.Targets {
		if t.OK() {
			built = append(built, t)
		}
	}
	if !req.NoPackage && len(built) > 0 {
		rel, err := tb.Release(built, start)
		if err != nil {
			return finish(err)
		}
		res.Release = rel
		if !req.NoVerify {
			for _, t := range built {
				tb.Verify(ctx, t, rel.OutDir)
				if ctx.Err() != nil {
					return finish(failure.Interrupted("verify the packages of %s", prep.Project.Name))
				}
			}
		}
	}
	return finish(flow.Failures(prep.Project.Name, res.Targets))
}
