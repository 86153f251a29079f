package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"

	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/project"
)

// FetcherOptions say where sources come from and go to.
type FetcherOptions struct {
	Root     string // the repository: path sources are under Root/software
	CacheDir string // sources go to CacheDir/sources
	// Mirrors are file://, http:// or https:// bases (or absolute
	// directories) tried before upstream; $COACH_SOURCE_MIRROR adds more
	// (space- or comma-separated).
	Mirrors []string
	Offline bool
	Log     *slog.Logger
	// Events hears Download events.
	Events event.Sink
}

// NewFetcher makes the fetcher of a run.
func NewFetcher(o FetcherOptions) (*fetch.Fetcher, error) {
	mirrors, err := fetch.Mirrors(o.Mirrors)
	if err != nil {
		return nil, failure.Request(err)
	}
	f := &fetch.Fetcher{Cache: cache.New(cmp.Or(o.CacheDir, cache.DefaultDir())).SourceCache(), Root: o.Root, Mirrors: mirrors, Offline: o.Offline, Log: o.Log}
	f.ReportTo(o.Events)
	return f, nil
}

// FetchRequest is what Fetch brings into the cache.
type FetchRequest struct {
	Root, Project string
	Locked        bool
	FetcherOptions
	// Jobs is how many downloads run at once (0: 4).
	Jobs int
}

// Fetch resolves a project and brings every component's source into the
// cache.
func Fetch(ctx context.Context, req FetchRequest) ([]*fetch.Result, error) {
	s, err := open(ctx, req.CacheDir, req.Log, req.Events)
	if err != nil {
		return nil, err
	}
	defer s.close()
	prep, err := project.Prepare(req.Root, req.Project, project.Options{Locked: req.Locked})
	if err != nil {
		return nil, err
	}
	f, err := s.fetcher(req.Root, req.Mirrors, req.Offline)
	if err != nil {
		return nil, err
	}
	f.Verify = true // "cached" means checked
	var results []*fetch.Result
	err = s.sink.Stage(event.StageFetch, "", func() (string, error) {
		var err error
		jobs := req.Jobs
		if jobs <= 0 {
			jobs = 4
		}
		results, err = f.FetchAll(ctx, fetch.Requests(prep.Resolution), jobs)
		if ctx.Err() != nil {
			return "", failure.Interrupted("fetch %s", req.Project)
		}
		return fmt.Sprintf("%d sources", len(results)), err
	})
	if err != nil && !failure.IsInterrupted(err) {
		return results, stage(event.StageFetch, err)
	}
	return results, err
}
