package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
)

func (a *app) packageCommand() *cobra.Command {
	var pf packageFlags
	var sf sourceFlags
	var req pipeline.PackageRequest
	var proj projectFlags
	cmd := &cobra.Command{
		Use:   "package <project>",
		Short: "Package the last build of a project again, for its targets or from another target's tree",
		Long: `package writes the packages of the project's last build (coach build) for the
given targets, without building. --from packages another target's tree:
coach package hello -t el9 --from debian-12 makes an rpm of the tree built
for debian-12, for hosts where el9 itself cannot be built.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeProjects,
		Annotations:       map[string]string{"live": "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Root, req.Project, req.CacheDir = a.dir, args[0], sf.cache()
			req.OutDir, req.SignKey = pf.out(), pf.signKey
			req.Log, req.Events = a.log, a.events
			req.Version, req.Iteration = proj.version, proj.iteration
			var err error
			if req.Overrides, err = proj.parsedOverrides(); err != nil {
				return err
			}
			rel, err := pipeline.Package(ctx, req)
			if err != nil {
				return err
			}
			if a.output(rel) {
				for _, p := range rel.Artifacts {
					fmt.Fprintf(a.stdout, "%s: %s\n", p.Target, a.rel(p.Path))
				}
			}
			return nil
		},
	}
	pf.registerPackage(cmd.Flags())
	sf.registerCache(cmd.Flags())
	proj.register(cmd.Flags(), true)
	a.targetFlag(cmd, &req.Targets, "targets to package (repeatable; default: all of the project's)")
	a.archFlag(cmd, &req.Arches, "the builds' architectures to package (repeatable; default: the project's arches, else this machine's)")
	cmd.Flags().StringVar(&req.From, "from", "", "package the tree built for this target instead")
	cmd.RegisterFlagCompletionFunc("from", a.completeTargets)
	cmd.Flags().BoolVar(&req.SkipHealth, "skip-health", false, "package even when the health check fails (loudly; the check still runs and derives the dependencies)")
	return cmd
}
