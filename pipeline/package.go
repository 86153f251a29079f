package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/flow"
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
	opts := project.Options{Targets: req.Targets, Version: req.Version, Iteration: req.Iteration, Overrides: req.Overrides}
	arches, preps, err := project.PrepareArches(req.Root, req.Project, opts, req.Arches)
	if err != nil {
		return nil, err
	}
	prep := preps[arches[0]] // the release's
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
			if src != t.Name {
				dep, err := build.TargetDependent(preps[arch].Plan, prep.Project, st, t)
				if err != nil {
					return nil, failure.Request(err)
				}
				if len(dep) > 0 {
					who := "component " + dep[0] + " renders its definition"
					if len(dep) > 1 {
						who = "components " + strings.Join(dep, ", ") + " render their definitions"
					}
					return nil, failure.Request(fmt.Errorf("cannot package the %s tree as %s: %s differently for %s than for %s (with {{.Format}}, {{.Target}} or {{.Multiarch}}), so that tree holds %s's choices; build for %s itself (coach build %s -t %s), or make the definitions the same for both",
						src, t.Name, who, t.Name, src, src, t.Name, prep.Project.Name, t.Name))
				}
			}
			rep, err := flow.CheckTree(s.sink, s.log, res, prep.Project, t, src, arch, runners.Sysroot(ctx, st, arch, build.Packages(preps[arch].Plan, st), s.runnerOptions()), req.SkipHealth)
			if err != nil {
				return nil, err
			}
			trees = append(trees, pkg.TargetTree{Target: t, Tree: res.InstallTree(), Depends: rep.Dependencies, TreeDigest: res.TreeDigest(), Arch: arch, Files: res.FileSums})
		}
	}
	var rel *pkg.Release
	err = s.sink.Stage(event.StagePackage, "", func() (string, error) {
		var err error
		rel, err = flow.WriteRelease(prep, pkg.ReleaseOptions{Root: req.Root, Trees: trees, OutDir: req.OutDir, SignKey: req.SignKey, PassEnv: req.PassphraseEnv,
			Report: map[string]any{"packaged_from": req.From, "arch": runtime.GOARCH}, Log: s.log})
		if err != nil {
			return "", s.cache.EvictCorrupt(err, results...)
		}
		return fmt.Sprintf("%d packages in %s", len(rel.Artifacts), rel.OutDir), nil
	})
	return rel, err
}
