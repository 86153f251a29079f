package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
)

func (a *app) lockCommand() *cobra.Command {
	var req pipeline.LockRequest
	var proj projectFlags
	cmd := &cobra.Command{
		Use:   "lock [project...]",
		Short: "Resolve versions and write projects/<name>.lock",
		Long: `lock resolves every component of the named projects (all projects when none
is named) and writes projects/<name>.lock. A version already locked is kept
while it still satisfies its constraint; --upgrade resolves afresh to the
highest allowed versions. --check writes nothing and exits 4 if a lock file
is missing or out of date.`,
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Root, req.Projects, req.Log = a.dir, args, a.log
			var err error
			if req.Overrides, err = proj.parsedOverrides(); err != nil {
				return err
			}
			results, err := pipeline.Lock(ctx, req)
			for _, r := range results {
				r.Path = a.rel(r.Path)
			}
			if a.output(results) {
				for _, r := range results {
					comps := plural(len(r.Components), "component")
					if r.Project == "" {
						comps = count(len(r.Libraries), "library", "libraries")
					}
					switch {
					case !r.Changed:
						fmt.Fprintf(a.stdout, "%s is up to date (%s)\n", r.Path, comps)
					case req.Check:
					case r.New:
						fmt.Fprintf(a.stdout, "wrote %s, a new lock file (%s)\n", r.Path, comps)
					default:
						fmt.Fprintf(a.stdout, "wrote %s (%s):\n", r.Path, comps)
						for _, c := range r.Changes {
							fmt.Fprintf(a.stdout, "\t%s\n", c)
						}
					}
				}
			}
			return err
		},
	}
	proj.register(cmd.Flags(), false)
	cmd.Flags().BoolVar(&req.Upgrade, "upgrade", false, "ignore locked versions and resolve to the highest allowed")
	cmd.Flags().BoolVar(&req.Check, "check", false, "write nothing; exit 4 if a lock file is missing or out of date")
	cmd.Flags().StringVar(&req.PinImages, "pin-images", "auto", "pin each target's image by digest through the Dagger engine: auto (when an engine is configured), always or never")
	return cmd
}
