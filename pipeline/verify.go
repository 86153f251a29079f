package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
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
	if req.CacheDir == "" {
		req.CacheDir = cache.DefaultDir()
	}
	log := req.Log
	if log == nil {
		log = event.NewLogger(req.Events, slog.LevelInfo)
	}
	release, err := cache.New(req.CacheDir).Use(ctx, log)
	if err != nil {
		return nil, err
	}
	defer release()
	var projects map[string]*spec.Project
	if req.Root != "" {
		if repo, err := Load(req.Root); err == nil {
			projects = repo.Projects
		}
	}
	for _, name := range req.Targets {
		if _, ok := target.Builtin(name); !ok {
			return nil, failure.Request(fmt.Errorf("unknown target %q (coach targets)", name))
		}
	}
	r := req.Runner
	if r == nil {
		var err error
		r, err = runners.NewVerify(req.RunnerName, runners.Options{CacheDir: req.CacheDir, Log: log, Events: req.Events})
		if err != nil {
			return nil, err
		}
		if c, ok := r.(io.Closer); ok {
			defer c.Close()
		}
	}
	targets := req.Targets
	if len(targets) == 0 {
		targets = []string{""}
	}
	var reps []*verify.Report
	for _, pkgFile := range req.Packages {
		for _, tname := range targets {
			var rep *verify.Report
			err := runStage(req.Events, event.StageVerify, tname, func() (string, error) {
				var err error
				rep, err = verifyPackage(ctx, verifyOne{runner: r, pkgFile: pkgFile, previous: req.Previous, target: tname, cacheDir: req.CacheDir, projects: projects, log: log, sink: req.Events, reverify: req.Reverify})
				if err != nil {
					return "", err
				}
				if !rep.OK {
					return "", fmt.Errorf("%s: step %q failed: %s", rep.Package, rep.Failed().Name, rep.Failed().Detail)
				}
				caveat := ""
				if rep.Caveat != "" {
					caveat = "; " + rep.Caveat
				}
				if rep.Cached {
					return "verified (cached)" + caveat, nil
				}
				return "installed, checked, removed and purged" + caveat, nil
			})
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

// verifyOne is one package to verify.
type verifyOne struct {
	runner                              runner.Runner
	pkgFile, previous, target, cacheDir string
	// projects (which may be nil) supply the checks of the project named
	// like the package.
	projects map[string]*spec.Project
	log      *slog.Logger
	sink     event.Sink
	// reverify verifies again what passed before.
	reverify bool
	// pkgDigest is the package's digest when packaging just computed it,
	// so that the verify cache need not read the file again.
	pkgDigest string
}

func verifyPackage(ctx context.Context, v verifyOne) (*verify.Report, error) {
	if _, err := os.Stat(v.pkgFile); err != nil {
		return nil, failure.Request(err)
	}
	name, t, err := pkg.Identify(v.pkgFile)
	if err != nil && v.target == "" {
		return nil, failure.Request(err)
	}
	if v.target != "" {
		var ok bool
		if t, ok = target.Builtin(v.target); !ok {
			return nil, failure.Request(fmt.Errorf("unknown target %q", v.target))
		}
	}
	project := v.projects[name]
	if project == nil {
		v.log.Warn("no project definition for the package here: checking the install/remove cycle only", "package", name)
	}
	abs, _ := filepath.Abs(v.pkgFile)
	prev := ""
	if v.previous != "" {
		prev, _ = filepath.Abs(v.previous)
	}
	out := event.NewLineWriter(func(line string) {
		v.sink.Emit(event.Event{Kind: event.StageOutput, Stage: event.StageVerify, Target: t.Name, Component: filepath.Base(v.pkgFile), Line: line})
	})
	defer out.Flush()
	opts := verify.Options{
		Package: abs, Previous: prev, Name: name, Target: t, Arch: cmp.Or(pkg.ArchOf(v.pkgFile), runtime.GOARCH), Project: project,
		Roots:   &sandbox.Rootfs{Dir: cache.New(v.cacheDir).Rootfs(), Logger: v.log, Events: v.sink},
		WorkDir: filepath.Join(v.cacheDir, "verify"),
		Log:     out,
	}
	if d, ok := v.runner.(runner.Verifier); ok {
		// A clean machine of the target made by the runner (a container
		// on the engine): no bubblewrap or mmdebstrap on the host.
		opts.NewMachine = func(ctx context.Context, t target.Target, arch string, pkgs []string) (verify.Machine, func(), error) {
			m, err := d.Machine(ctx, t, arch, pkgs)
			if err != nil {
				return nil, nil, err
			}
			return m, func() {}, nil
		}
	}
	results := verify.Results{Dir: cache.New(v.cacheDir).Verified()}
	key := results.Key(opts, v.runner, v.pkgDigest)
	if !v.reverify {
		if rep := results.Get(key); rep != nil {
			v.log.Debug("verified before: same package bytes, clean root and checks", "target", t.Name, "package", filepath.Base(v.pkgFile))
			return rep, nil
		}
	}
	rep, err := verify.Verify(ctx, opts)
	if err == nil && ctx.Err() == nil {
		results.Put(key, rep)
	}
	if ctx.Err() != nil {
		return rep, interrupted("verify %s: its scratch root was removed", filepath.Base(v.pkgFile))
	}
	if err != nil {
		return rep, stage(event.StageVerify, err)
	}
	return rep, nil
}
