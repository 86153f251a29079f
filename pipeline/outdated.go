package pipeline

import (
	"context"

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
