package verify

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// FileRequest is one package file to verify, in the sandbox's clean
// roots (RootfsDir, with scratch in WorkDir) or the Runner's machines when
// it is a runner.Verifier, its passing result kept in ResultsDir.
type FileRequest struct {
	Runner            runner.Runner
	Package, Previous string
	// Target is the target to verify on; empty means the package's own,
	// from its dist tag.
	Target string
	// Projects (which may be nil) supply the checks of the project named
	// like the package.
	Projects                       map[string]*spec.Project
	RootfsDir, WorkDir, ResultsDir string
	Log                            *slog.Logger
	Events                         event.Sink
	// Reverify verifies again what passed before.
	Reverify bool
	// PackageDigest is the package's digest when packaging just computed
	// it, so that the results' key need not read the file again.
	PackageDigest string
}

// File verifies one package file: the install, checks, upgrade, removal
// and purge of Verify, or the result kept from an earlier run of the same
// package bytes, clean root and checks. A failed check is a report that
// is not OK; the error is for what kept the checks from running.
func File(ctx context.Context, v FileRequest) (*Report, error) {
	if _, err := os.Stat(v.Package); err != nil {
		return nil, failure.Request(err)
	}
	name, t, err := pkg.Identify(v.Package)
	if err != nil && v.Target == "" {
		return nil, failure.Request(err)
	}
	if v.Target != "" {
		var ok bool
		if t, ok = target.Builtin(v.Target); !ok {
			return nil, failure.Request(fmt.Errorf("unknown target %q", v.Target))
		}
	}
	project := v.Projects[name]
	if project == nil {
		v.Log.Warn("no project definition for the package here: checking the install/remove cycle only", "package", name)
	}
	abs, _ := filepath.Abs(v.Package)
	prev := ""
	if v.Previous != "" {
		prev, _ = filepath.Abs(v.Previous)
	}
	// The tools' whole output goes to a log file; the events get one
	// line per step.
	logPath := filepath.Join(cmp.Or(v.WorkDir, os.TempDir()), "logs", filepath.Base(v.Package)+"."+t.Name+".log")
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	opts := Options{
		Package: abs, Previous: prev, Name: name, Target: t, Arch: cmp.Or(pkg.ArchOf(v.Package), runtime.GOARCH), Project: project,
		Roots:   &sandbox.Rootfs{Dir: v.RootfsDir, Logger: v.Log, Events: v.Events},
		WorkDir: v.WorkDir,
		Log:     logFile,
		OnStep: func(s Step) {
			v.Events.Emit(event.Event{Kind: event.StageOutput, Stage: event.StageVerify, Target: t.Name, Component: filepath.Base(v.Package), Line: StepLine(s)})
		},
	}
	if d, ok := v.Runner.(runner.Verifier); ok {
		// A clean machine of the target made by the runner (a container
		// on the engine): no bubblewrap or mmdebstrap on the host.
		opts.NewMachine = func(ctx context.Context, t target.Target, arch string, pkgs []string) (Machine, func(), error) {
			m, err := d.Machine(ctx, t, arch, pkgs)
			if err != nil {
				return nil, nil, err
			}
			return m, func() {}, nil
		}
	}
	results := Results{Dir: v.ResultsDir}
	key := results.Key(opts, v.Runner, v.PackageDigest)
	if !v.Reverify {
		if rep := results.Get(key); rep != nil {
			v.Log.Debug("verified before: same package bytes, clean root and checks", "target", t.Name, "package", filepath.Base(v.Package))
			return rep, nil
		}
	}
	rep, err := Verify(ctx, opts)
	if rep != nil {
		rep.Log = logPath
	}
	if err == nil && ctx.Err() == nil {
		results.Put(key, rep)
	}
	if ctx.Err() != nil {
		return rep, failure.Interrupted("verify %s: its scratch root was removed", filepath.Base(v.Package))
	}
	if err != nil {
		return rep, failure.Stage(event.StageVerify, err)
	}
	return rep, nil
}
