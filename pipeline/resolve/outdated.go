package resolve

import (
	"maps"
	"slices"

	"github.com/Masterminds/semver/v3"

	"github.com/coach-build/coach/pipeline/spec"
)

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
	// Library, in an entry of libraries.lock rather than of a project,
	// names a software library whose ref names a newer commit than the
	// locked one (Locked, Wanted and Latest are commits then).
	Library string `json:"library,omitempty"`
}

// ListOutdated lists the components of a project's lock whose definitions
// list a newer version than the lock's; fresh is the project resolved
// without the lock (what coach lock --upgrade would pick).
func ListOutdated(repo *spec.Repo, project string, lock *Lock, fresh *Resolution) []Outdated {
	var out []Outdated
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
			out = append(out, Outdated{Project: project, Component: comp, Locked: locked[comp], Wanted: wanted[comp], Latest: latestText})
		}
	}
	return out
}
