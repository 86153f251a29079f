package pipeline

import (
	"context"
	"fmt"

	"github.com/coach-build/coach/pipeline/library"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/resolve"
)

// OutdatedRequest asks which locked components have newer versions.
type OutdatedRequest struct {
	Root string
	// Projects to look at; empty means all.
	Projects []string
}

// Outdated is a locked component with a newer version in its definition
// (resolve.Outdated).
type Outdated = resolve.Outdated

// ListOutdated lists, project by project, the locked components whose
// definitions list a newer version than the lock's.
func ListOutdated(ctx context.Context, req OutdatedRequest) ([]Outdated, error) {
	repo, err := project.Load(req.Root)
	if err != nil {
		return nil, err
	}
	projects := req.Projects
	if len(projects) == 0 {
		projects = repo.ProjectNames()
	}
	out := []Outdated{}
	libs, err := library.ReadLock(req.Root)
	if err != nil {
		return nil, stage(StageResolve, err)
	}
	if libs != nil {
		for _, l := range libs.Libraries {
			if l.Git == "" {
				continue
			}
			latest, err := library.Latest(ctx, l.Git, l.Ref)
			if err != nil {
				return nil, fmt.Errorf("library %s: %w", l.Name, err)
			}
			if latest != l.Commit {
				out = append(out, Outdated{Library: l.Name, Component: "library " + l.Name, Locked: l.Commit[:12], Wanted: latest[:12], Latest: latest[:12]})
			}
		}
	}
	for _, name := range projects {
		p, err := project.For(repo, name, project.Options{}, false)
		if err != nil {
			return nil, err
		}
		lock, err := resolve.ReadLock(repo.Root, name)
		if err != nil {
			return nil, stage(StageResolve, err)
		}
		if lock == nil {
			continue // nothing locked: coach lock first
		}
		fresh, err := resolve.Resolve(repo, p, resolve.Options{})
		if err != nil {
			return nil, stage(StageResolve, err)
		}
		out = append(out, resolve.ListOutdated(repo, name, lock, fresh)...)
	}
	return out, nil
}
