// Package project takes a project through the first three stages: it
// loads the definitions (spec), applies a run's overrides and computes its
// version, resolves its components against the lock file (resolve) and
// plans the build (plan). Every command that works on a project starts
// here.
package project

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/library"
	"github.com/coach-build/coach/pipeline/plan"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/version"
)

// Options choose what to prepare.
type Options struct {
	// Targets restricts the plan to these targets; empty means all.
	Targets []string
	// Locked refuses a lock file that does not match the definitions.
	Locked bool
	// Arch is the build architecture; empty means the host's.
	Arch string
	// Version and Iteration replace the project's (coach build --version,
	// --iteration); Overrides add to its overrides (--override), with the
	// same checks.
	Version   string
	Iteration int
	Overrides map[string]string
}

// For is the project as a run builds it: a copy with the command line's
// overrides applied and, withVersion, a computed version (git or a
// template) resolved in the repository.
func For(repo *spec.Repo, name string, opts Options, withVersion bool) (*spec.Project, error) {
	orig, err := repo.Project(name)
	if err != nil {
		return nil, failure.Request(err)
	}
	p := *orig
	if len(opts.Overrides) > 0 {
		if err := repo.CheckOverrides(&p, opts.Overrides); err != nil {
			return nil, failure.Request(err)
		}
		p.Overrides = maps.Clone(p.Overrides)
		if p.Overrides == nil {
			p.Overrides = map[string]string{}
		}
		maps.Copy(p.Overrides, opts.Overrides)
	}
	if opts.Iteration < 0 {
		return nil, failure.Request(fmt.Errorf("--iteration %d: the iteration is a positive number", opts.Iteration))
	}
	if opts.Iteration > 0 {
		p.Iteration = opts.Iteration
	}
	if opts.Version != "" {
		v := strings.TrimPrefix(opts.Version, "v")
		if !version.IsDynamic(v) {
			if _, err := semver.StrictNewVersion(v); err != nil {
				return nil, failure.Request(fmt.Errorf("--version %q is not semver (major.minor.patch[-prerelease]), git, or a template", opts.Version))
			}
		}
		p.Version = v
	}
	if withVersion && version.IsDynamic(p.Version) {
		now := time.Now()
		if e, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
			now = time.Unix(e, 0)
		}
		v, err := version.Resolve(p.Version, repo.Root, now)
		if err != nil {
			return nil, failure.Stage(event.StageLoad, fmt.Errorf("%s: %w", p.At("version"), err))
		}
		p.Version = v
	}
	return &p, nil
}

// Prepared is a project after load, resolve and plan.
type Prepared struct {
	Repo       *spec.Repo
	Project    *spec.Project
	Resolution *resolve.Resolution
	Plan       *plan.Plan
	// Lock is the lock file as read (nil if there is none); LockStale says
	// how it differs from the resolution, if it does.
	Lock      *resolve.Lock
	LockStale []string
}

// Load reads and checks every definition under root, with the software
// libraries its libraries.yaml names (at their locked commits).
func Load(root string) (*spec.Repo, error) {
	r, _, err := LoadWith(context.Background(), root, library.Options{})
	return r, err
}

// LoadWith is Load with the libraries brought as o says; it returns them
// too, for coach lock.
func LoadWith(ctx context.Context, root string, o library.Options) (*spec.Repo, []library.Resolved, error) {
	libs, err := library.Load(ctx, root, o)
	if err != nil {
		return nil, nil, failure.Stage(event.StageLoad, err)
	}
	roots := make([]spec.LibraryRoot, len(libs))
	for i, l := range libs {
		roots[i] = l.Root()
	}
	r, err := spec.LoadWith(root, roots)
	return r, libs, failure.Stage(event.StageLoad, err)
}

// Prepare loads the definitions and resolves and plans one project.
func Prepare(root, project string, opts Options) (*Prepared, error) {
	repo, err := Load(root)
	if err != nil {
		return nil, err
	}
	return PrepareProject(repo, project, opts)
}

// PrepareProject resolves and plans a project of an already loaded repo.
func PrepareProject(repo *spec.Repo, project string, opts Options) (*Prepared, error) {
	p, err := For(repo, project, opts, true)
	if err != nil {
		return nil, err
	}
	lock, err := resolve.ReadLock(repo.Root, project)
	if err != nil {
		return nil, failure.Stage(event.StageResolve, err)
	}
	res, err := resolve.Resolve(repo, p, resolve.Options{Prefer: lock.Versions()})
	if err != nil {
		return nil, failure.Stage(event.StageResolve, err)
	}
	out := &Prepared{Repo: repo, Project: p, Resolution: res, Lock: lock}
	if lock != nil || opts.Locked {
		out.LockStale = resolve.Diff(lock, res.Lock())
	}
	// A library the project uses whose lock is stale is stale for it too.
	used := map[string]bool{}
	for _, c := range res.Components {
		used[c.Library] = true
	}
	for _, l := range repo.Libraries {
		if l.Stale != "" && used[l.Name] {
			out.LockStale = append(out.LockStale, "library "+l.Name+": "+l.Stale)
		}
	}
	if opts.Locked && len(out.LockStale) > 0 {
		return nil, failure.Stage(event.StageResolve, &resolve.StaleError{Path: resolve.LockPath(repo.Root, project), Project: project, Changes: out.LockStale})
	}
	targets, err := p.SelectTargets(opts.Targets)
	if err != nil {
		return nil, failure.Request(err)
	}
	// Images pinned by digest in the lock: the Dagger runner builds from
	// the digest, and the digest is part of every key of the target.
	if lock != nil {
		for i := range targets {
			if pin := lock.Images[targets[i].Name]; pin != "" {
				targets[i].Image = pin
			}
		}
	}
	arch := opts.Arch
	if arch == "" {
		arch = target.HostArch()
	}
	pl, err := plan.New(p, res, targets, arch)
	if err != nil {
		return nil, failure.Stage(event.StagePlan, fmt.Errorf("plan %s: %w", project, err))
	}
	out.Plan = pl
	return out, nil
}

// PrepareArches prepares a project for each architecture it is built for:
// arches, else the project's, else the machine's own. A bad architecture
// is a request error.
func PrepareArches(root, project string, opts Options, arches []string) ([]string, map[string]*Prepared, error) {
	repo, err := Load(root)
	if err != nil {
		return nil, nil, err
	}
	p, err := repo.Project(project)
	if err != nil {
		return nil, nil, failure.Request(err)
	}
	list, err := target.ArchList(arches, p.Arches)
	if err != nil {
		return nil, nil, failure.Request(err)
	}
	preps := map[string]*Prepared{}
	for _, a := range list {
		o := opts
		o.Arch = a
		if preps[a], err = PrepareProject(repo, project, o); err != nil {
			return nil, nil, err
		}
	}
	return list, preps, nil
}

// OnlyTarget is the plan's one target, for commands that work on one
// (coach shell); with several, a request error names them.
func (p *Prepared) OnlyTarget() (target.Target, error) {
	targets := p.Plan.TargetList()
	if len(targets) == 1 {
		return targets[0], nil
	}
	var names []string
	for _, t := range targets {
		names = append(names, t.Name)
	}
	return target.Target{}, failure.Request(fmt.Errorf("%s has %d targets (%v): choose one with -t", p.Project.Name, len(targets), names))
}

// Component is the named component of the plan, or, when name is empty,
// the project's last software (the one its package is for).
func (p *Prepared) Component(name string) (string, error) {
	if name == "" {
		sw := p.Project.Software
		name = sw[len(sw)-1]
	}
	if p.Plan.Node(name) == nil {
		return "", failure.Request(fmt.Errorf("%s is not a component of %s (its components: %v)", name, p.Project.Name, p.Plan.Order()))
	}
	return name, nil
}
