package pipeline

import (
	"context"
	"maps"
	"slices"

	"github.com/Masterminds/semver/v3"

	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/resolve"
)

// OutdatedRequest asks which locked components have newer versions.
type OutdatedRequest struct {
	Root string
	// Projects to look at; empty means all.
	Projects []string
}

// Outdated is a locked component with a newer version in its definition.
type Outdated struct {
	Project   string `json:"project"`
	Component string `json:"component"`
	// Locked is the lock's version; Wanted the highest the constraints
	// allow (what coach lock --upgrade would pick); Latest the highest
	// the definition lists.
	Locked string `json:"locked"`
	Wanted string `json:"wanted"`
	Latest string `json:"latest"`
}

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
		wanted := fresh.Lock().Versions()
		locked := lock.Versions()
		for _, comp := range slices.Sorted(maps.Keys(locked)) {
			s := repo.Software[comp]
			cur, err := semver.NewVersion(locked[comp])
			if s == nil || err != nil {
				continue
			}
			var latest *semver.Version
			latestText := ""
			for _, v := range s.Versions {
				if v.Exact {
					continue
				}
				if sv, err := semver.NewVersion(v.Version); err == nil && (latest == nil || sv.GreaterThan(latest)) {
					latest, latestText = sv, v.Version
				}
			}
			if latest != nil && latest.GreaterThan(cur) {
				out = append(out, Outdated{Project: name, Component: comp, Locked: locked[comp], Wanted: wanted[comp], Latest: latestText})
			}
		}
	}
	return out, nil
}
