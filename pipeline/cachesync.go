package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runners"
)

// CacheSyncRequest is a push of a project's layers and sources to a
// remote cache (Remote.To), or a pull of its layers from one
// (Remote.From), for its targets and arches.
type CacheSyncRequest struct {
	Root, Project string
	Targets       []string
	Arches        []string
	Locked        bool
	CacheDir      string
	Remote        RemoteCache
	// RunnerName says which runner's build environments a pull fetches
	// the layers of (auto when empty), as a build with it would.
	RunnerName string
	// Runner, when set, is that runner (RunnerName is then unused).
	Runner runner.Runner
	Log    *slog.Logger
	Events event.Sink
}

// CacheSyncResult says what moved, per target, arch and component.
type CacheSyncResult struct {
	Project string             `json:"project"`
	Ref     string             `json:"ref"`
	Layers  []SyncedLayer      `json:"layers"`
	Sources []SyncedSource     `json:"sources,omitempty"`
	Remote  *RemoteCacheResult `json:"remote_cache"`
}

// SyncedLayer is one component's layer on one target and arch.
type SyncedLayer struct {
	Target string `json:"target"`
	Arch   string `json:"arch"`
	build.Synced
}

// SyncedSource is one source in a push: shared (the remote has it now),
// or skipped (not in this cache, or not a url source pinned by sha256).
type SyncedSource struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	State     string `json:"state"`
}

// CachePush pushes to Remote.To every layer of the project this cache
// holds (in every build environment it has layers of) and every source
// it holds, that the remote lacks.
func CachePush(ctx context.Context, req CacheSyncRequest) (*CacheSyncResult, error) {
	if req.Remote.To == "" {
		return nil, failure.Request(errors.New("cache push: name the remote cache with --cache-to"))
	}
	return cacheSync(ctx, req, true)
}

// CachePull pulls from Remote.From every layer of the project a build
// with the runner would look up and this cache lacks.
func CachePull(ctx context.Context, req CacheSyncRequest) (*CacheSyncResult, error) {
	if req.Remote.From == "" {
		return nil, failure.Request(errors.New("cache pull: name the remote cache with --cache-from"))
	}
	req.Remote.To = ""
	return cacheSync(ctx, req, false)
}

func cacheSync(ctx context.Context, req CacheSyncRequest, push bool) (*CacheSyncResult, error) {
	s, err := open(ctx, req.CacheDir, req.Log, req.Events)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rc, err := s.remoteCache(req.Remote)
	if err != nil {
		return nil, err
	}
	// A push or pull is what the user asked for: a registry that cannot
	// be reached is its failure, not a warning.
	rc.Required = true
	opts := project.Options{Targets: req.Targets, Locked: req.Locked}
	arches, preps, err := project.PrepareArches(req.Root, req.Project, opts, req.Arches)
	if err != nil {
		return nil, err
	}
	res := &CacheSyncResult{Project: req.Project, Ref: rc.String()}
	layers := s.cache.LayerCache()
	var envs []build.Environment
	if push {
		for _, e := range layers.Environments() {
			envs = append(envs, build.FixedEnvironment(e))
		}
	} else {
		r, err := s.runner(req.Runner, runners.New, req.RunnerName, false)
		if err != nil {
			return nil, err
		}
		e, ok := r.(runner.Environment)
		if !ok {
			return nil, fmt.Errorf("cache pull: the %s runner does not say what it builds in", r.Name())
		}
		envs = append(envs, e)
	}
	var errs []error
	for _, arch := range arches {
		prep := preps[arch]
		for _, t := range prep.Plan.TargetList() {
			best := map[string]build.Synced{}
			var order []string
			for _, e := range envs {
				var synced []build.Synced
				var err error
				if push {
					synced, err = build.PushLayers(ctx, layers, rc, e, prep.Plan, t)
				} else {
					synced, err = build.PullLayers(ctx, layers, rc, e, prep.Plan, t, s.log)
				}
				if err != nil {
					errs = append(errs, err)
				}
				// Across environments, a component's best state counts.
				for _, sy := range synced {
					prev, ok := best[sy.Component]
					if !ok {
						order = append(order, sy.Component)
					}
					if !ok || syncRank(sy.State) > syncRank(prev.State) {
						best[sy.Component] = sy
					}
				}
			}
			for _, c := range order {
				res.Layers = append(res.Layers, SyncedLayer{Target: t.Name, Arch: arch, Synced: best[c]})
			}
		}
	}
	if push {
		f, err := s.fetcher(req.Root, nil, true)
		if err != nil {
			return nil, err
		}
		f.Remote = rc
		for _, r := range fetch.Requests(preps[arches[0]].Resolution) {
			state := "skipped"
			if got, err := f.Fetch(ctx, r); err == nil && got.Algo == "sha256" && got.Kind == "url" {
				if err := f.Share(ctx, got); err != nil {
					errs = append(errs, err)
				} else {
					state = "shared"
				}
			}
			res.Sources = append(res.Sources, SyncedSource{Component: r.Name, Version: r.Version, State: state})
		}
	}
	res.Remote = remoteResult(rc)
	return res, errors.Join(errs...)
}

// syncRank orders states from worst to best.
func syncRank(state string) int {
	switch state {
	case "pushed", "pulled":
		return 3
	case "present", "local":
		return 2
	case "missing":
		return 1
	}
	return 0
}
