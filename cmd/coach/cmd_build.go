package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/runner"
)

// packageFlags are the flags of the commands that write packages.
type packageFlags struct {
	outDir  string
	signKey string
}

func (pf *packageFlags) registerPackage(f *pflag.FlagSet) {
	f.StringVarP(&pf.outDir, "out", "o", "", "directory the packages and their manifests go to (default: pkg/ in the repository)")
	f.StringVar(&pf.signKey, "sign-key", "", "GPG private key file to sign the deb and rpm with; the passphrase is read from $COACH_SIGNING_PASSPHRASE")
}

func (pf *packageFlags) out() string {
	if pf.outDir == "" {
		return ""
	}
	abs, _ := filepath.Abs(pf.outDir)
	return abs
}

func (a *app) buildCommand() *cobra.Command {
	var req pipeline.BuildRequest
	var sf sourceFlags
	var pf packageFlags
	var proj projectFlags
	var rf remoteFlags
	var debug bool
	var skip []string
	cmd := &cobra.Command{
		Use:   "build <project>",
		Short: "Build, check, package and verify a project for each target",
		Long: `build resolves and plans the project, fetches its sources, and builds each
component in an isolated runner for each target, in parallel where the graph
allows. A component whose cache key is unchanged is not rebuilt. The layers
are merged into one tree per target, its linkage is checked, and the targets
that pass are packaged and verified. A target that fails is named at the end;
the others still go through.

In the sandbox, coach runs a GNU make job server with one token per core
(--cores, default all) and puts it in every step's MAKEFLAGS: every
component that builds at once (--jobs, default the cores) takes a token for
itself, and every make of every build takes its parallel jobs from the same
tokens, so that together they use the cores and never more. Steps that run
plain make need no -j. {{.Jobs}} (for tools that are not make-aware: ninja,
cargo, cmake --build) is --make-jobs, default the cores.

Without a job server (--no-jobserver), --jobs and --make-jobs split the
cores so that together they do not exceed them (2 cores: 1 × 2; 16 cores:
4 × 4); give one and the other is derived. On Dagger, whose containers
cannot share the job server, both default to all the cores (components
start as soon as they are ready; at peaks the cores are oversubscribed).

With a remote cache (--cache-from, or --cache-to to write it too), a
component missing from this machine's cache is looked up there by its layer
key before it is built, and its source by its sha256 before upstream. A
pulled layer is unpacked confined and used only when its content digest is
the one its metadata records (and, with --cache-verify-key, when it is signed
by that key). See docs/remote-cache.md.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeProjects,
		Annotations:       map[string]string{"live": "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Root, req.Project = a.dir, args[0]
			req.CacheDir, req.Mirrors, req.Offline = sf.cache(), sf.mirrors, sf.offline
			req.OutDir, req.SignKey = pf.out(), pf.signKey
			req.Remote = rf.options()
			for _, stage := range skip {
				switch stage {
				case "health":
					req.SkipHealth = true
				case "package":
					req.NoPackage = true
				case "verify":
					req.NoVerify = true
				default:
					return usageError(fmt.Errorf("--skip %q: the stages that can be skipped are health, package and verify", stage))
				}
			}
			req.Log, req.Events, req.EngineLog = a.log, a.events, a.verbose
			req.Version, req.Iteration = proj.version, proj.iteration
			var err error
			if req.Overrides, err = proj.parsedOverrides(); err != nil {
				return err
			}
			if debug {
				req.Debug = &runner.Shell{Stdin: os.Stdin, Stdout: a.stderr, Stderr: a.stderr}
				if !a.json {
					req.Debug.Stdout = a.rawStdout // the shell's terminal
				}
			}
			res, err := pipeline.Run(ctx, req)
			if res != nil && res.Version != "" {
				if a.output(res) {
					a.writeBuild(res)
				}
			}
			return err
		},
	}
	fl := cmd.Flags()
	sf.registerCache(fl)
	sf.registerSources(fl)
	a.targetFlag(cmd, &req.Targets, "build only these targets (repeatable; default: all of the project's)")
	a.archFlag(cmd, &req.Arches, "build for these architectures, amd64 or arm64 (repeatable; default: the project's arches, else this machine's); a foreign one builds under qemu-user emulation")
	fl.StringVar(&req.RunnerName, "runner", "auto", "auto, sandbox or dagger (auto: dagger when an engine is configured or off Linux, else sandbox)")
	fl.IntVarP(&req.Jobs, "jobs", "j", 0, "components built at once (default: see above)")
	fl.IntVar(&req.MakeJobs, "make-jobs", 0, "the {{.Jobs}} of each build's steps, and plain make's -j without a job server (default: see above)")
	fl.IntVar(&req.Cores, "cores", 0, "the budget of cores every build shares (default: all)")
	fl.BoolVar(&req.NoJobserver, "no-jobserver", false, "do not run a make job server; split the cores between --jobs and --make-jobs")
	fl.BoolVar(&req.NoCache, "no-cache", false, "rebuild every component")
	fl.BoolVar(&req.KeepFailed, "keep-failed", false, "keep the work directory of a failed component")
	fl.BoolVar(&debug, "debug", false, "open a shell where a build step fails, as the step left the source and the install dir (sandbox runner; components build one at a time, and progress is plain lines)")
	fl.BoolVar(&req.Locked, "locked", false, "fail if the lock file is missing or out of date")
	fl.StringSliceVar(&skip, "skip", nil, "stages to skip, comma-separated: health (the linkage check, loudly), package (stop after the health check; implies verify), verify (do not install and check the packages in a clean root)")
	cmd.RegisterFlagCompletionFunc("skip", cobra.FixedCompletions([]string{"health", "package", "verify"}, cobra.ShellCompDirectiveNoFileComp))
	// The old spellings, kept working.
	fl.BoolVar(&req.SkipHealth, "skip-health", false, "same as --skip=health")
	fl.BoolVar(&req.NoPackage, "no-package", false, "same as --skip=package")
	fl.BoolVar(&req.NoVerify, "no-verify", false, "same as --skip=verify")
	for _, old := range []string{"skip-health", "no-package", "no-verify"} {
		fl.MarkHidden(old)
	}
	fl.BoolVar(&req.Reverify, "reverify", false, "verify packages that passed before again (same bytes, clean root and checks)")
	pf.registerPackage(fl)
	proj.register(fl, true)
	rf.register(fl, true, true)
	return cmd
}

// writeBuild prints a build's outcome, in pipeline order: components,
// packages, verification, trees and health.
func (a *app) writeBuild(res *pipeline.BuildResult) {
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	for _, t := range res.Targets {
		if t.Result == nil {
			continue
		}
		for _, c := range t.Components {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1fs\t%s\n", t.Label(), c.Name, c.Version, c.State, c.Seconds, mib(c.Bytes))
		}
	}
	tw.Flush()
	if rc := res.RemoteCache; rc != nil {
		fmt.Fprintf(a.stdout, "remote cache %s: pulled %d entries (%s), pushed %d (%s)\n", rc.Ref, rc.Pulled, mib(rc.PulledBytes), rc.Pushed, mib(rc.PushedBytes))
	}
	for _, p := range res.Packages() {
		fmt.Fprintf(a.stdout, "%s: %s\n", p.Target, a.rel(p.Path))
	}
	for _, t := range res.Targets {
		for _, v := range t.Verify {
			switch {
			case v.OK && v.Cached:
				fmt.Fprintf(a.stdout, "%s: verified %s (cached: the same bytes passed in the same clean root with the same checks; --reverify runs it again)\n", v.Target, v.Package)
			case v.OK:
				fmt.Fprintf(a.stdout, "%s: verified %s: installed, checked, removed and purged cleanly (%d steps, %d hook runs, %.1fs)\n", v.Target, v.Package, len(v.Steps), len(v.Hooks), v.Seconds)
			default:
				writeVerify(a, v)
			}
		}
	}
	for _, t := range res.Targets {
		if t.Result != nil && t.Tree != "" {
			fmt.Fprintf(a.stdout, "%s: tree %s (%.1fs)\n", t.Label(), t.Tree, t.Seconds)
		}
		if t.Health != nil && t.Health.OK() {
			deps := "none"
			if len(t.Health.Dependencies) > 0 {
				deps = strings.Join(t.Health.Dependencies, ", ")
			}
			fmt.Fprintf(a.stdout, "%s: health check passed (%d ELF files, %d warnings); runtime dependencies: %s\n", t.Label(), t.Health.ELF, t.Health.Warnings, deps)
		}
		if !t.OK() {
			fmt.Fprintf(a.stdout, "%s: FAILED at %s\n", t.Label(), t.FailedStage)
		}
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
