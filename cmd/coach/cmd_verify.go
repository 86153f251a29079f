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
		Long: `verify installs each package into a fresh copy of a clean root filesystem of
its target (made with mmdebstrap, without any build tools), with the distro's
own tooling so that its runtime dependencies resolve from the target's
repositories, runs the project's verify commands, checks that every file is
owned by root and the links exist, upgrades from --previous if given, then
removes and purges it and checks that nothing is left. rpm packages go
through rpm --root with their scriptlets run. Every hook invocation is
recorded with its arguments. With several --target, each package is
verified on each.`,
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
}
