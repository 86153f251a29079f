package main

import (
	"fmt"

	"github.com/coach-build/coach/pipeline/cache"
	"github.com/spf13/cobra"
)

func (a *app) cleanCommand() *cobra.Command {
	var sf sourceFlags
	var req cache.CleanRequest
	cmd := &cobra.Command{
		Use:   "clean <project>",
		Short: "Remove a project's work trees from the cache",
		Long: `clean removes the project's work trees (one per target and arch), which
coach package and coach health read the last build from. Layers, sources and
root filesystems stay, so the next build takes every component from the cache
and writes the trees again. A tree in use by another coach run is waited for.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Project, req.Log = args[0], a.log
			res, err := cache.New(sf.cache()).Clean(ctx, req)
			if err != nil {
				return err
			}
			if a.output(res) {
				verb := "removed"
				if req.DryRun {
					verb = "would remove"
				}
				var total int64
				for _, c := range res {
					fmt.Fprintf(a.stdout, "%s %s (%s)\n", verb, c.Path, mib(c.Bytes))
					total += c.Bytes
				}
				fmt.Fprintf(a.stdout, "%s %d work trees of %s (%s)\n", verb, len(res), req.Project, mib(total))
			}
			return nil
		},
	}
	sf.registerCache(cmd.Flags())
	cmd.Flags().BoolVarP(&req.DryRun, "dry-run", "n", false, "only list what would be removed")
	return cmd
}
