package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/health"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

type buildJSON struct {
	Project string           `json:"project"`
	Version string           `json:"version"`
	Runner  string           `json:"runner"`
	Targets []targetBuild    `json:"targets"`
	Release *pkg.Release     `json:"release,omitempty"`
	Verify  []*verify.Report `json:"verify,omitempty"`
	Seconds float64          `json:"seconds"`
}

type targetBuild struct {
	*build.Result
	Health *health.Report `json:"health,omitempty"`
}

type buildFlags struct {
	sourceFlags
	targets    []string
	runnerName string
	makeJobs   int
	noCache    bool
	keepFailed bool
	locked     bool
	skipHealth bool
	noVerify   bool
	packageFlags
}

// packageFlags are the flags of the commands that write packages.
type packageFlags struct {
	outDir    string
	signKey   string
	noPackage bool
}

func (pf *packageFlags) registerPackage(f *pflag.FlagSet) {
	f.StringVarP(&pf.outDir, "out", "o", "", "directory the packages and their manifests go to (default: pkg/ in the repository)")
	f.StringVar(&pf.signKey, "sign-key", "", "GPG private key file to sign the deb and rpm with; the passphrase is read from $COACH_SIGNING_PASSPHRASE")
}

func (pf *packageFlags) out(a *app) string {
	if pf.outDir != "" {
		abs, _ := filepath.Abs(pf.outDir)
		return abs
	}
	return filepath.Join(a.dir, "pkg")
}

func (a *app) buildCommand() *cobra.Command {
	var bf buildFlags
	cmd := &cobra.Command{
		Use:   "build <project>",
		Short: "Build every component of a project for each target",
		Long: `build resolves and plans the project, fetches its sources, and builds each
component in an isolated runner for each target, in parallel where the graph
allows. A component whose cache key is unchanged is not rebuilt. The layers
are merged into one tree per target.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			prep, err := pipeline.Prepare(a.dir, args[0], pipeline.Options{Targets: bf.targets, Locked: bf.locked})
			if err != nil {
				return err
			}
			if len(prep.LockStale) > 0 {
				a.log.Warn("lock file is out of date; building the fresh resolution (run coach lock)", "project", args[0], "changes", strings.Join(prep.LockStale, "; "))
			}
			f, d, err := bf.fetcher(a, true)
			if err != nil {
				return err
			}
			r, err := a.newRunner(bf.runnerName, bf.cache())
			if err != nil {
				return err
			}
			if c, ok := r.(io.Closer); ok {
				defer c.Close() // after the last query, so no output is cut
			}
			ctx, stop := signalContext()
			defer stop()
			out := buildJSON{Project: prep.Project.Name, Version: prep.Project.Version, Runner: r.Name()}
			status := newBuildStatus(a)
			var unlocks unlockers
			// A target that fails is reported at the end; the others are
			// still built, packaged and verified.
			var failed []targetFailure
			// buildTarget builds and checks one target: its result, or why
			// it failed; interrupted reports a cancelled run.
			buildTarget := func(t target.Target) (tb *targetBuild, fail *targetFailure, interrupted error) {
				workDir := filepath.Join(bf.cache(), "work", prep.Project.Name, t.Name)
				unlock, err := build.LockWork(ctx, workDir, a.log)
				if err != nil {
					if ctx.Err() != nil {
						return nil, nil, withCode(exitInterrupted, fmt.Errorf("build %s for %s: interrupted while waiting for another coach run", prep.Project.Name, t.Name))
					}
					return nil, &targetFailure{t.Name, exitFailure, err}, nil
				}
				unlocks.add(unlock) // held until the packages are verified
				b := &build.Builder{
					Runner: r, Fetcher: f,
					Layers:  &build.LayerCache{Dir: filepath.Join(bf.cache(), "layers")},
					WorkDir: workDir,
					Jobs:    bf.jobs, MakeJobs: bf.makeJobs,
					NoCache: bf.noCache, KeepFailed: bf.keepFailed,
					Log: a.log, Events: status.event,
				}
				res, err := b.Build(ctx, prep.Plan, prep.Project, a.dir, t)
				if ctx.Err() != nil {
					return nil, nil, withCode(exitInterrupted, fmt.Errorf("build %s for %s: interrupted; nothing half-built was kept", prep.Project.Name, t.Name))
				}
				if err != nil {
					a.log.Error("target not built", "target", t.Name, "err", err)
					f := buildFailure(prep.Project.Name, t, err)
					return nil, &f, nil
				}
				tb = &targetBuild{Result: res}
				if bf.skipHealth {
					a.log.Warn("HEALTH CHECK SKIPPED (--skip-health): nothing checked that this tree links only what it ships and what the target allows", "target", t.Name)
					return tb, nil, nil
				}
				// The target's root as the runner built it; when every
				// component came from the cache, make sure it exists.
				sysroot := ""
				if s, ok := r.(interface {
					Sysroot(target.Target, string) string
				}); ok {
					if sysroot = s.Sysroot(t, prep.Plan.Arch); sysroot == "" {
						if err := r.Prepare(ctx, t, prep.Plan.Arch, build.Packages(prep.Plan, t)); err == nil {
							sysroot = s.Sysroot(t, prep.Plan.Arch)
						}
					}
				}
				rep, err := checkBuild(res, prep.Project, t, sysroot, nil, nil)
				if err != nil {
					return nil, &targetFailure{t.Name, exitHealth, fmt.Errorf("health check of %s for %s: %w", prep.Project.Name, t.Name, err)}, nil
				}
				tb.Health = rep
				if !rep.OK() {
					rep.WriteText(a.stderr)
					return nil, &targetFailure{t.Name, exitHealth, fmt.Errorf("health check of %s for %s failed: %d errors (the tree is at %s; --skip-health builds anyway)", prep.Project.Name, t.Name, rep.Errors, res.Tree)}, nil
				}
				a.log.Info("health check passed", "target", t.Name, "elf_files", rep.ELF, "warnings", rep.Warnings, "dependencies", strings.Join(rep.Dependencies, ", "))
				return tb, nil, nil
			}
			defer unlocks.release()
			targets := prep.Plan.TargetList()
			type outcome struct {
				tb          *targetBuild
				fail        *targetFailure
				interrupted error
			}
			outcomes := make([]outcome, len(targets))
			if r.Name() == "dagger" {
				// The engine schedules the work: every target at once.
				var wg sync.WaitGroup
				for i, t := range targets {
					wg.Go(func() {
						tb, fail, intr := buildTarget(t)
						outcomes[i] = outcome{tb, fail, intr}
					})
				}
				wg.Wait()
			} else {
				for i, t := range targets {
					tb, fail, intr := buildTarget(t)
					outcomes[i] = outcome{tb, fail, intr}
					if intr != nil {
						break
					}
				}
			}
			d.finish()
			status.finish()
			for _, o := range outcomes {
				switch {
				case o.interrupted != nil:
					return o.interrupted
				case o.fail != nil:
					failed = append(failed, *o.fail)
				case o.tb != nil:
					out.Targets = append(out.Targets, *o.tb)
				}
			}
			if !bf.noPackage && len(out.Targets) > 0 {
				var trees []pkg.TargetTree
				for _, tb := range out.Targets {
					t, _ := prep.Project.Target(tb.Target)
					var deps []string
					if tb.Health != nil {
						deps = tb.Health.Dependencies
					}
					trees = append(trees, pkg.TargetTree{Target: t, Tree: tb.InstallTree(), Depends: deps})
				}
				rel, err := a.release(prep, trees, bf.packageFlags, map[string]any{"build": out})
				if err != nil {
					return err
				}
				out.Release = rel
				if !bf.noVerify {
					var failures []string
					for _, art := range rel.Artifacts {
						rep, err := a.verifyOne(ctx, r, art.Path, "", art.Target, bf.cache(), map[string]*spec.Project{prep.Project.Name: prep.Project})
						if ctx.Err() != nil {
							return err
						}
						if err != nil {
							return withCode(exitVerify, fmt.Errorf("verify %s: %w", art.File, err))
						}
						out.Verify = append(out.Verify, rep)
						if !rep.OK {
							writeVerify(a, rep)
							failures = append(failures, fmt.Sprintf("%s: step %q failed: %s", art.File, rep.Failed().Name, rep.Failed().Detail))
						} else {
							a.log.Info("verified", "package", art.File, "seconds", fmt.Sprintf("%.1f", rep.Seconds), "hooks", len(rep.Hooks))
						}
					}
					if len(failures) > 0 {
						failed = append(failed, targetFailure{"", exitVerify, fmt.Errorf("verification failed (the packages are in %s):\n\t%s", rel.OutDir, strings.Join(failures, "\n\t"))})
					}
				}
			}
			out.Seconds = time.Since(start).Seconds()
			if len(failed) > 0 {
				if a.json {
					a.writeJSON(out)
				}
				return failedTargets(prep.Project.Name, len(out.Targets), failed)
			}
			if a.json {
				return a.writeJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			for _, res := range out.Targets {
				for _, c := range res.Components {
					state := "built"
					if c.CacheHit {
						state = "cached"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1fs\t%s\n", res.Target, c.Name, c.Version, state, c.Seconds, mib(c.Bytes))
				}
			}
			tw.Flush()
			if out.Release != nil {
				for _, p := range out.Release.Artifacts {
					fmt.Fprintf(a.stdout, "%s: %s\n", p.Target, a.rel(p.Path))
				}
			}
			for _, v := range out.Verify {
				fmt.Fprintf(a.stdout, "%s: verified %s: installed, checked, removed and purged cleanly (%d steps, %d hook runs, %.1fs)\n", v.Target, v.Package, len(v.Steps), len(v.Hooks), v.Seconds)
			}
			for _, res := range out.Targets {
				fmt.Fprintf(a.stdout, "%s: tree %s (%.1fs)\n", res.Target, res.Tree, res.Seconds)
				if res.Health != nil {
					fmt.Fprintf(a.stdout, "%s: health check passed (%d ELF files, %d warnings); runtime dependencies: %s\n", res.Target, res.Health.ELF, res.Health.Warnings, strings.Join(res.Health.Dependencies, ", "))
				}
			}
			return nil
		},
	}
	bf.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringSliceVarP(&bf.targets, "target", "t", nil, "build only these targets (repeatable)")
	fl.StringVar(&bf.runnerName, "runner", "auto", "auto, sandbox or dagger (auto: dagger when an engine is configured or off Linux, else sandbox)")
	fl.IntVar(&bf.makeJobs, "make-jobs", build.DefaultJobs(), "parallel jobs inside each build ({{.Jobs}})")
	fl.BoolVar(&bf.noCache, "no-cache", false, "rebuild every component")
	fl.BoolVar(&bf.keepFailed, "keep-failed", false, "keep the work directory of a failed component")
	fl.BoolVar(&bf.locked, "locked", false, "fail if the lock file is missing or out of date")
	fl.BoolVar(&bf.skipHealth, "skip-health", false, "do not run the linkage health check (loudly)")
	fl.BoolVar(&bf.noPackage, "no-package", false, "stop after the health check")
	fl.BoolVar(&bf.noVerify, "no-verify", false, "do not install and check the packages in a clean root of their target")
	bf.packageFlags.registerPackage(fl)
	return cmd
}

// unlockers collects the work-directory locks of a run, taken by targets
// built at once, to release them together.
type unlockers struct {
	mu  sync.Mutex
	fns []func()
}

func (u *unlockers) add(f func()) { u.mu.Lock(); u.fns = append(u.fns, f); u.mu.Unlock() }

func (u *unlockers) release() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, f := range u.fns {
		f()
	}
	u.fns = nil
}

// targetFailure is a target that was not built, checked or verified.
type targetFailure struct {
	target string
	code   int
	err    error
}

// buildFailure says why a target was not built, and what to do where the
// runner cannot build it at all.
func buildFailure(project string, t target.Target, err error) targetFailure {
	if errors.Is(err, sandbox.ErrNoBootstrap) {
		err = fmt.Errorf("%s cannot be built here: the sandbox runner makes root filesystems for the Debian family only; build it with --runner dagger and a Dagger engine, or package a Debian target's tree with coach package %s -t %s --from debian-12", t.Name, project, t.Name)
	} else {
		err = fmt.Errorf("build %s for %s: %w", project, t.Name, err)
	}
	return targetFailure{t.Name, exitBuild, err}
}

// failedTargets is the error of a build in which some targets failed: each
// named with its reason; the exit code is the first failure's.
func failedTargets(project string, ok int, failed []targetFailure) error {
	if len(failed) == 1 && (ok == 0 || failed[0].target == "") {
		return withCode(failed[0].code, failed[0].err)
	}
	msgs := make([]string, len(failed))
	notBuilt := 0
	for i, f := range failed {
		msgs[i] = f.err.Error()
		if f.target != "" {
			notBuilt++
		}
	}
	summary := fmt.Sprintf("%d of %d targets failed (the packages of the others were written)", notBuilt, notBuilt+ok)
	return withCode(failed[0].code, fmt.Errorf("%s: %s:\n\t%s", project, summary, strings.Join(msgs, "\n\t")))
}

func (s *sourceFlags) cache() string {
	if s.cacheDir != "" {
		return s.cacheDir
	}
	return defaultCacheDir()
}

// rootfsDir is $COACH_ROOTFS_DIR, else rootfs/ in the cache: root
// filesystems are large and slow to make, so several caches may share them.
func rootfsDir(cacheDir string) string {
	if d := os.Getenv("COACH_ROOTFS_DIR"); d != "" {
		return d
	}
	return filepath.Join(cacheDir, "rootfs")
}

// daggerConfigured reports whether the environment points at a Dagger
// engine: inside `dagger run`, or with an explicit runner host.
func daggerConfigured() bool {
	return os.Getenv("DAGGER_SESSION_PORT") != "" || os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") != ""
}

func (a *app) newRunner(name, cacheDir string) (runner.Runner, error) {
	switch name {
	case "auto":
		// The sandbox is Linux's; elsewhere (macOS and Windows laptops,
		// with Docker Desktop, OrbStack or Colima) the engine is the way.
		if daggerConfigured() || runtime.GOOS != "linux" {
			return a.newRunner("dagger", cacheDir)
		}
		return a.newRunner("sandbox", cacheDir)
	case "sandbox":
		r := &sandbox.Runner{Rootfs: &sandbox.Rootfs{Dir: rootfsDir(cacheDir), Logger: a.log}}
		mode, err := r.Check()
		if err != nil {
			return nil, withCode(exitBuild, fmt.Errorf("the sandbox runner cannot run here: %w (see coach doctor)", err))
		}
		a.log.Debug("sandbox runner", "mode", mode)
		return r, nil
	case "dagger":
		return newDaggerRunner(a)
	}
	return nil, usageError(errors.New("--runner must be auto, sandbox or dagger"))
}
