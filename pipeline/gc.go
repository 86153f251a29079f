package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/project"
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
	return l.GC(ctx, cache.GCRequest{Repo: req.Root, InUse: func() (*cache.InUse, error) { return l.RepoInUse(repo, req.Log) },
		UnusedFor: req.UnusedFor, KeepSize: req.KeepSize, DryRun: req.DryRun, IgnoreOtherRepositories: req.IgnoreOtherRepositories, Log: req.Log})
}
