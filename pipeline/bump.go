package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/resolve"
)

// BumpRequest adds a version to a software definition.
type BumpRequest struct {
	Root, Software, Version string
	// URL is the new version's download URL; empty means the definition's
	// url_template, else its highest version's URL with the version
	// replaced.
	URL string
	// Mirrors are source mirrors (file:// or http(s):// bases) tried for
	// the file before its upstream URL, as coach fetch does.
	Mirrors []string
	// DryRun computes and shows the change without writing anything.
	DryRun bool
	Log    *slog.Logger
}

// BumpResult is what a bump did.
type BumpResult struct {
	Definition string `json:"definition"`
	Version    string `json:"version"`
	URL        string `json:"url"`
	From       string `json:"from"`
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	// Diff is the definition's change, unified.
	Diff string `json:"diff"`
	// Locks are the projects using the software, locked again with it
	// free to move to the new version.
	Locks []*LockResult `json:"locks,omitempty"`
}

// Bump fetches a new version of a software through its URL pattern,
// computes its checksum, adds it to the definition (the file's other
// bytes, comments and key order untouched), and locks again every project
// that uses the software, letting it move to the new version if the
// constraints allow.
func Bump(ctx context.Context, req BumpRequest) (*BumpResult, error) {
	repo, err := project.Load(req.Root)
	if err != nil {
		return nil, err
	}
	s := repo.Software[req.Software]
	if s == nil {
		return nil, failure.Request(fmt.Errorf("no software %q (software/%s.yaml)", req.Software, req.Software))
	}
	v, err := s.NewVersion(req.Version)
	if err != nil {
		return nil, failure.Request(err)
	}
	rawURL, err := s.NextURL(v, req.URL)
	if err != nil {
		return nil, failure.Request(err)
	}
	mirrors, err := fetch.Mirrors(req.Mirrors)
	if err != nil {
		return nil, failure.Request(err)
	}
	sum, size, from, err := fetch.ChecksumFrom(ctx, rawURL, mirrors)
	if err != nil {
		return nil, err
	}
	old, updated, diff, err := s.WithVersion(repo.Root, v, rawURL, sum)
	if err != nil {
		return nil, err
	}
	res := &BumpResult{Definition: s.Path, Version: v, URL: rawURL, From: from, SHA256: sum, Size: size, Diff: diff}
	if req.DryRun {
		return res, nil
	}
	if err := resolve.WriteFileAtomic(s.Path, updated); err != nil {
		return nil, err
	}
	// The edited definition must still load, with every problem at once.
	if _, err := project.Load(req.Root); err != nil {
		os.WriteFile(s.Path, old, 0o644)
		return nil, fmt.Errorf("bump %s: the edited definition does not load (restored): %w", s.Name, err)
	}
	var users []string
	for _, name := range repo.ProjectNames() {
		if p, err := repo.Project(name); err == nil && repo.Closure(p.Software)[s.Name] {
			users = append(users, name)
		}
	}
	if len(users) > 0 {
		locks, err := Lock(ctx, LockRequest{Root: req.Root, Projects: users, Move: []string{s.Name}, PinImages: "never", Log: req.Log})
		res.Locks = locks
		if err != nil {
			return res, err
		}
	}
	return res, nil
}
