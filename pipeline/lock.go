package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/library"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/runners"
	"github.com/coach-build/coach/pipeline/spec"
)

// Image pinning modes of LockRequest.PinImages.
const (
	PinAuto   = "auto"   // when a Dagger engine is configured
	PinAlways = "always" // an image that cannot be pinned is an error
	PinNever  = "never"
)

// LockRequest says which lock files to write or check.
type LockRequest struct {
	Root string
	// Projects to lock; empty means all.
	Projects []string
	// Upgrade ignores locked versions and resolves to the highest allowed;
	// Check writes nothing and fails if a lock file is missing or stale.
	Upgrade, Check bool
	// PinImages pins each target's image by digest through the engine.
	PinImages string
	// Overrides add component=constraint overrides to every project's.
	Overrides map[string]string
	// Move lets these components leave their locked versions (coach bump):
	// they resolve to the highest allowed, the rest stay as locked.
	Move []string
	Log  *slog.Logger
}

// LockResult is one project's lock file.
type LockResult struct {
	Project    string              `json:"project"`
	Path       string              `json:"path"`
	Changed    bool                `json:"changed"`
	Changes    []string            `json:"changes"`
	Components []resolve.Component `json:"components"`
	// New says there was no lock file before.
	New bool `json:"new,omitempty"`
	// Libraries is libraries.lock's content, in the result for that file
	// (whose Project is empty).
	Libraries []library.Locked `json:"libraries,omitempty"`
}

// Lock resolves each project and writes (or checks) its lock file. Under
// Check, stale lock files are a *resolve.StaleError each, joined.
func Lock(ctx context.Context, req LockRequest) ([]*LockResult, error) {
	if req.Upgrade && req.Check {
		return nil, failure.Request(errors.New("--upgrade and --check cannot be used together"))
	}
	repo, libs, err := project.LoadWith(ctx, req.Root, library.Options{Upgrade: req.Upgrade})
	if err != nil {
		return nil, err
	}
	pin, done, err := runners.ImagePinner(req.PinImages, logger(req.Log))
	if err != nil {
		return nil, err
	}
	defer done()
	projects := req.Projects
	if len(projects) == 0 {
		projects = repo.ProjectNames()
	}
	var results []*LockResult
	var stale []error
	if len(libs) > 0 {
		r, err := lockLibraries(req, libs)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
		if req.Check && r.Changed {
			stale = append(stale, &resolve.StaleError{Path: r.Path, Project: "the software libraries", Changes: r.Changes})
		}
	}
	for _, name := range projects {
		p, err := project.For(repo, name, project.Options{Overrides: req.Overrides}, false)
		if err != nil {
			return results, err
		}
		old, err := resolve.ReadLock(repo.Root, name)
		if err != nil && !req.Upgrade {
			return results, stage(StageResolve, err)
		}
		var images map[string]string
		if pin != nil {
			if images, err = pin(ctx, p); err != nil {
				return results, stage(StageResolve, fmt.Errorf("pin the images of %s: %w", name, err))
			}
		}
		re, err := resolve.Relock(repo, p, old, req.Upgrade, req.Move, images, time.Now())
		if err != nil {
			return results, stage(StageResolve, err)
		}
		changes := re.Changes
		path := resolve.LockPath(repo.Root, name)
		r := &LockResult{Project: name, Path: path, Changed: len(changes) > 0, Changes: changes, Components: re.Resolution.Components, New: old == nil}
		if r.Changes == nil {
			r.Changes = []string{}
		}
		results = append(results, r)
		switch {
		case req.Check && r.Changed:
			stale = append(stale, &resolve.StaleError{Path: path, Project: name, Changes: changes})
		case req.Check:
		case r.Changed:
			if err := resolve.WriteLock(repo.Root, re.Lock); err != nil {
				return results, fmt.Errorf("write %s: %w", path, err)
			}
		}
	}
	if len(stale) > 0 {
		return results, stage(StageResolve, errors.Join(stale...))
	}
	return results, nil
}

// lockLibraries writes (or, under Check, compares) libraries.lock.
func lockLibraries(req LockRequest, libs []library.Resolved) (*LockResult, error) {
	old, err := library.ReadLock(req.Root)
	if err != nil && !req.Upgrade {
		return nil, stage(StageResolve, err)
	}
	now := library.LockOf(libs)
	r := &LockResult{Path: filepath.Join(req.Root, library.LockFile), Changes: []string{}, Components: []resolve.Component{}, Libraries: now.Libraries, New: old == nil}
	kept := map[string]bool{}
	for _, l := range libs {
		kept[l.Name] = true
		if l.Stale != "" {
			r.Changes = append(r.Changes, l.Name+": "+l.Stale)
		}
	}
	if old != nil {
		for _, l := range old.Libraries {
			if !kept[l.Name] {
				r.Changes = append(r.Changes, l.Name+": no longer in "+spec.LibrariesFile)
			}
		}
	}
	r.Changed = len(r.Changes) > 0
	if r.Changed && !req.Check {
		if err := library.WriteLock(req.Root, now); err != nil {
			return nil, fmt.Errorf("write %s: %w", r.Path, err)
		}
	}
	return r, nil
}
