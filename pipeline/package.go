package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/health"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runners"
	"github.com/coach-build/coach/pipeline/target"
)

// PackageRequest packages a project's last build again, without building.
type PackageRequest struct {
	Root, Project string
	// Targets to package; empty means all of the project's.
	Targets []string
	// From packages the tree built for this target instead of each
	// target's own: an rpm for el9 from the debian-12 tree, where el9
	// itself cannot be built.
	From string
	// SkipHealth packages even when the health check fails (loudly; the
	// check still runs and derives the dependencies).
	SkipHealth bool
	// Version, Iteration and Overrides are as in BuildRequest; Overrides
	// must be the build's, so that its layers are found.
	Version   string
	Iteration int
	Overrides map[string]string
	// Arches are the builds\' architectures to package; empty means the
	// project\'s, else the machine\'s own.
	Arches                         []string
	CacheDir                       string
	OutDir, SignKey, PassphraseEnv string
	Log                            *slog.Logger
	Events                         event.Sink
}

// Package writes the packages of the last build of a project.
func Package(ctx context.Context, req PackageRequest) (*pkg.Release, error) {
	s, err := open(ctx, req.CacheDir, req.Log, req.Events)
	if err != nil {
		return nil, err
	}
	defer s.close()
	prep, err := project.Prepare(req.Root, req.Project, project.Options{Targets: req.Targets, Version: req.Version, Iteration: req.Iteration, Overrides: req.Overrides})
	if err != nil {
		return nil, err
	}
	arches, err := archListRequest(req.Arches, prep.Project.Arches)
	if err != nil {
		return nil, err
	}
	var trees []pkg.TargetTree
	var results []*build.Result
	locked := map[string]bool{}
	for _, arch := range arches {
		for _, t := range prep.Plan.TargetList() {
			src := t.Name
			if req.From != "" {
				src = req.From
			}
			workDir := s.cache.Work(prep.Project.Name, target.Label(src, arch))
			if !locked[workDir] {
				if err := s.lockWork(ctx, workDir); err != nil {
					return nil, err
				}
				locked[workDir] = true
			}
			res, err := build.ReadResult(workDir)
			if err != nil {
				return nil, failure.Request(fmt.Errorf("no build of %s for %s (%s): run coach build %s -t %s -a %s first", prep.Project.Name, src, arch, prep.Project.Name, src, arch))
			}
			results = append(results, res)
			st, err := prep.Project.Target(src)
			if err != nil {
				return nil, failure.Request(err)
			}
			var rep *health.Report
			err = runStage(s.sink, event.StageHealth, t.Name, func() (string, error) {
				r, err := health.CheckBuild(res, prep.Project, t, arch, runners.Sysroot(ctx, st, arch, build.Packages(prep.Plan, st), s.runnerOptions()), nil, nil)
				if err != nil {
					return "", err
				}
				rep = r
				if !r.OK() {
					return "", fmt.Errorf("health check of the %s tree for %s failed: %d errors", src, t.Name, r.Errors)
				}
				return fmt.Sprintf("%d ELF files, %d warnings", r.ELF, r.Warnings), nil
			})
			if rep == nil {
				return nil, stage(event.StageHealth, err)
			}
			if !rep.OK() {
				if !req.SkipHealth {
					return nil, stage(event.StageHealth, &health.FailedError{Report: rep, Err: fmt.Errorf("health check of the %s tree for %s failed (--skip-health packages it anyway)", src, t.Name)})
				}
				s.log.Warn("HEALTH CHECK FAILED AND IGNORED (--skip-health): this package may not run on its target", "tree", src, "target", t.Name, "errors", rep.Errors)
			}
			trees = append(trees, pkg.TargetTree{Target: t, Tree: res.InstallTree(), Depends: rep.Dependencies, TreeDigest: res.TreeDigest(), Arch: arch, Files: res.FileSums})
		}
	}
	var rel *pkg.Release
	err = runStage(s.sink, event.StagePackage, "", func() (string, error) {
		var err error
		rel, err = writeRelease(prep, trees, releaseOptions{root: req.Root, outDir: req.OutDir, signKey: req.SignKey, passEnv: req.PassphraseEnv},
			map[string]any{"packaged_from": req.From, "arch": runtime.GOARCH}, s.log)
		if err != nil {
			return "", s.cache.EvictCorrupt(err, results...)
		}
		return fmt.Sprintf("%d packages in %s", len(rel.Artifacts), rel.OutDir), nil
	})
	return rel, err
}
