package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/flow"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runners"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

// VerifyRequest is what Verify checks.
type VerifyRequest struct {
	// Root is the repository whose project definitions supply the checks
	// of the packages named like a project; empty or without definitions,
	// only the install/remove cycle is checked.
	Root     string
	Packages []string
	// Previous is an older package to install first and upgrade from.
	Previous string
	// Targets are the targets to verify on; empty means each package's
	// own (from its dist tag). With several, each package is verified on
	// each.
	Targets []string
	// Runner is where packages are installed; nil makes one named by
	// RunnerName with NewVerifyRunner. Verify closes only one it made.
	Runner     runner.Runner
	RunnerName string
	CacheDir   string
	// Reverify verifies again a package that passed before (same bytes,
	// clean root and checks), instead of reporting the earlier result.
	Reverify bool
	Log      *slog.Logger
	Events   event.Sink
}

// Verify installs, checks, upgrades, removes and purges each package in a
// clean root of its target. A failed check is a report that is not OK, not
// an error.
func Verify(ctx context.Context, req VerifyRequest) ([]*verify.Report, error) {
	s, err := open(ctx, req.CacheDir, req.Log, req.Events)
	if err != nil {
		return nil, err
	}
	defer s.close()
	var projects map[string]*spec.Project
	if req.Root != "" {
		if repo, err := project.Load(req.Root); err == nil {
			projects = repo.Projects
		}
	}
	for _, name := range req.Targets {
		if _, ok := target.Builtin(name); !ok {
			return nil, failure.Request(fmt.Errorf("unknown target %q (coach targets)", name))
		}
	}
	r, err := s.runner(req.Runner, runners.NewVerify, req.RunnerName, false)
	if err != nil {
		return nil, err
	}
	targets := req.Targets
	if len(targets) == 0 {
		targets = []string{""}
	}
	var reps []*verify.Report
	for _, pkgFile := range req.Packages {
		for _, tname := range targets {
			rep, err := flow.VerifyPackage(ctx, s.sink, s.cache.VerifyPlaces(verify.FileRequest{Runner: r, Package: pkgFile, Previous: req.Previous, Target: tname,
				Projects: projects, Log: s.log, Events: s.sink, Reverify: req.Reverify}))
			if rep != nil {
				reps = append(reps, rep)
			}
			if err != nil && (rep == nil || ctx.Err() != nil) {
				return reps, err
			}
		}
	}
	return reps, nil
}
