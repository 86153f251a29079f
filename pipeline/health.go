package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/health"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runners"
	"github.com/coach-build/coach/pipeline/target"
)

// HealthRequest says what to check. With Project, the trees of the
// project's last builds (coach build) for Targets (default: the first of
// the project's); with Dir, that directory as the install dir (or as the
// contents of InstallDir) for Targets (default: this host's).
type HealthRequest struct {
	Root    string
	Project string
	Dir     string
	Targets []string
	// InstallDir is where Dir is at run time (default: Dir itself).
	InstallDir string
	// Sysroot is the root filesystem to resolve system libraries in
	// (default: / for this host's target, else the sandbox's of the
	// target).
	Sysroot string
	// Arch is the build's architecture (a project's tree); empty means
	// the machine's own.
	Arch   string
	Allow  []string
	Ignore []string
	// Runpath replaces the project's health.runpath (warning or error).
	Runpath  string
	CacheDir string
	Log      *slog.Logger
	Events   event.Sink
}

// Health runs the linkage check: one report per target. A report that is
// not OK is not an error; the caller decides (the CLI exits 7).
func Health(ctx context.Context, req HealthRequest) ([]*health.Report, error) {
	s, err := open(ctx, req.CacheDir, req.Log, req.Events)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if req.Dir != "" {
		return health.CheckDir(health.DirOptions{Dir: req.Dir, InstallDir: req.InstallDir, Targets: req.Targets, Allow: req.Allow, Ignore: req.Ignore, Runpath: req.Runpath, Sysroot: req.Sysroot,
			SysrootOf: func(t target.Target) string { return runners.Sysroot(ctx, t, "", nil, s.runnerOptions()) }})
	}
	repo, err := project.Load(req.Root)
	if err != nil {
		return nil, err
	}
	p, err := repo.Project(req.Project)
	if err != nil {
		return nil, failure.Request(err)
	}
	names := req.Targets
	if len(names) == 0 {
		names = p.Targets[:1]
	}
	// The plan gives the build packages, so that the check judges the
	// tree in the root its components were built in, not a third one.
	prep, err := project.PrepareProject(repo, p.Name, project.Options{Targets: names, Arch: req.Arch})
	if err != nil {
		return nil, err
	}
	var reps []*health.Report
	for _, name := range names {
		t, err := p.Target(name)
		if err != nil {
			return reps, failure.Request(err)
		}
		workDir := s.cache.Work(p.Name, target.Label(t.Name, prep.Plan.Arch))
		if err := s.lockWork(ctx, workDir); err != nil {
			return reps, err
		}
		res, err := build.ReadResult(workDir)
		if err != nil {
			return reps, failure.Request(fmt.Errorf("no build of %s for %s in %s: run coach build %s -t %s first", p.Name, t.Name, s.cache.Dir, p.Name, t.Name))
		}
		sysroot := req.Sysroot
		if sysroot == "" {
			sysroot = runners.Sysroot(ctx, t, prep.Plan.Arch, build.Packages(prep.Plan, t), s.runnerOptions())
		}
		rep, err := health.CheckBuild(res, p, t, prep.Plan.Arch, sysroot, health.Overrides{Allow: req.Allow, Ignore: req.Ignore, Runpath: req.Runpath})
		if err != nil {
			return reps, err
		}
		reps = append(reps, rep)
	}
	return reps, nil
}
