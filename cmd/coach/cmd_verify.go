package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/verify"
)

func (a *app) verifyCommand() *cobra.Command {
	var req pipeline.VerifyRequest
	var sf sourceFlags
	cmd := &cobra.Command{
		Use:   "verify <package>...",
		Short: "Install, upgrade, remove and purge packages in a clean root of their target",
		Long: `verify installs each package into an overlay of a clean root filesystem of
its target (made with mmdebstrap, without any build tools), as root of a user
namespace whose ids are unprivileged host ids, the way a build step runs. The
distribution's apt first downloads what the package depends on from the
target's repositories (the one step with the network, running no package
code); then, offline, it installs the package, runs the project's verify
commands, checks that every file is owned as the package says and the links
exist, upgrades from --previous if given, removes and purges it and checks that
nothing is left. rpm packages go through Debian's rpm inside the same sandbox,
over a clean Debian root, with their scriptlets run and their dependencies not
resolved (the report's "where" says so). Every hook invocation is recorded
with its arguments. With several --target, each package is verified on each.`,
		Args:        cobra.MinimumNArgs(1),
		Annotations: map[string]string{"live": "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Root, req.Packages, req.CacheDir = a.dir, args, sf.cache()
			req.Log, req.Events = a.log, a.events
			reps, err := pipeline.Verify(ctx, req)
			if a.output(reps) {
				for _, r := range reps {
					writeVerify(a, r)
				}
			}
			if err != nil {
				return err
			}
			var failures []error
			for _, rep := range reps {
				if !rep.OK {
					f := rep.Failed()
					failures = append(failures, fmt.Errorf("%s on %s: step %q failed: %s", rep.Package, rep.Target, f.Name, f.Detail))
				}
			}
			if len(failures) > 0 {
				return withCode(exitVerify, errors.Join(failures...))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&req.Reverify, "reverify", false, "verify again a package that passed before (same bytes, clean root and checks)")
	cmd.Flags().StringVar(&req.Previous, "previous", "", "an older package to install first and upgrade from")
	a.targetFlag(cmd, &req.Targets, "target to verify on (repeatable; default: each package's own, from its dist tag)")
	sf.registerCache(cmd.Flags())
	cmd.Flags().StringVar(&req.RunnerName, "runner", "auto", "where to install: auto, sandbox (a clean root in bubblewrap) or dagger (a clean container on the engine); auto: sandbox where bubblewrap is, else dagger")
	return cmd
}

func writeVerify(a *app, r *verify.Report) {
	status := "passed"
	switch {
	case !r.OK:
		status = "FAILED"
	case r.Cached:
		status = "passed before (cached; --reverify runs it again)"
	}
	fmt.Fprintf(a.stdout, "verify %s on %s: %s (%.1fs)\n", r.Package, r.Target, status, r.Seconds)
	if r.Where != "" {
		fmt.Fprintf(a.stdout, "  in %s\n", r.Where)
	}
	if r.Caveat != "" {
		fmt.Fprintf(a.stdout, "  note: %s\n", r.Caveat)
	}
	for _, s := range r.Steps {
		mark := "ok  "
		switch {
		case s.Skipped:
			mark = "skip"
		case !s.OK:
			mark = "FAIL"
		}
		fmt.Fprintf(a.stdout, "  %s %s (%.1fs)\n", mark, s.Name, s.Seconds)
		if !s.OK && !s.Skipped {
			fmt.Fprintf(a.stdout, "       %s\n", s.Detail)
			for _, line := range strings.Split(s.Output, "\n") {
				fmt.Fprintf(a.stdout, "       | %s\n", line)
			}
		}
	}
	for _, h := range r.Hooks {
		fmt.Fprintf(a.stdout, "  hook %-9s %-10s %s\n", h.Script, h.Args, "("+h.Step+")")
	}
	if r.Log != "" && !r.OK {
		fmt.Fprintf(a.stdout, "  the tools' whole output: %s\n", r.Log)
	}
}
