package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/target"
)

// GCRequest collects the garbage of a cache a repository builds with.
type GCRequest struct {
	// Root is the repository whose definitions and lock files say what
	// is in use: sources any definition lists, layers a build of a
	// project (as locked) would use.
	Root, CacheDir string
	UnusedFor      time.Duration
	KeepSize       int64
	DryRun         bool
	// IgnoreOtherRepositories: see cache.GCRequest.
	IgnoreOtherRepositories bool
	Log                     *slog.Logger
}

// GC collects a cache's garbage (cache.Layout.GC): what neither the
// repository nor another live repository sharing the cache uses.
func GC(ctx context.Context, req GCRequest) (*cache.GCResult, error) {
	repo, err := project.Load(req.Root)
	if err != nil {
		return nil, err
	}
	l := cache.New(req.CacheDir)
	inUse := func() (*cache.InUse, error) {
		use := &cache.InUse{Sources: fetch.Referenced(fetch.ListedRequests(resolve.AllVersions(repo))), Layers: map[string]bool{}, Projects: map[string]bool{}}
		for name := range repo.Projects {
			use.Projects[name] = true
		}
		// Layers: the keys a build of each project, as locked, would
		// look up, on each of its targets and arches, in each environment
		// the cache has layers of (a sandbox root, a Dagger image, for any
		// runner).
		layers := l.LayerCache()
		var envs []build.Environment
		for _, e := range layers.Environments() {
			envs = append(envs, build.FixedEnvironment(e))
		}
		for _, name := range repo.ProjectNames() {
			for _, arch := range target.Arches {
				prep, err := project.PrepareProject(repo, name, project.Options{Arch: arch})
				if err != nil {
					// A project that does not plan has no build to keep
					// layers for; say so rather than fail the collection.
					if req.Log != nil {
						req.Log.Warn("cache gc: a project does not plan; none of its layers count as used", "project", name, "err", firstLine(err.Error()))
					}
					continue
				}
				for _, t := range prep.Plan.TargetList() {
					for _, e := range envs {
						for _, k := range build.LayerKeys(layers, e, prep.Plan, t) {
							use.Layers[strings.TrimPrefix(k, "sha256:")] = true
						}
					}
				}
			}
		}
		return use, nil
	}
	return l.GC(ctx, cache.GCRequest{Repo: req.Root, InUse: inUse, UnusedFor: req.UnusedFor, KeepSize: req.KeepSize,
		DryRun: req.DryRun, IgnoreOtherRepositories: req.IgnoreOtherRepositories, Log: req.Log})
}
