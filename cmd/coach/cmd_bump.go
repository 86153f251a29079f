package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/library"
)

func (a *app) bumpCommand() *cobra.Command {
	var req pipeline.BumpRequest
	var mirrors []string
	cmd := &cobra.Command{
		Use:   "bump <software> <version>",
		Short: "Add a version to a software definition, with its checksum, and lock again",
		Long: `bump fetches the new version through the definition's url_template (or its
highest version's URL with the version replaced; --url gives it outright),
from --source-mirror first, computes its sha256, adds the version to
software/<name>.yaml as text (the rest of the file, its comments and key
order, stay as they are), shows the change as a diff, and locks again every
project that uses the software, letting it move to the new version where its
constraints allow. --dry-run shows the change and writes nothing.`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: a.completeSoftware,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			req.Root, req.Software, req.Version, req.Log = a.dir, args[0], args[1], a.log
			req.Mirrors = mirrors
			res, err := pipeline.Bump(ctx, req)
			if res != nil {
				res.Definition = a.rel(res.Definition)
				for _, l := range res.Locks {
					l.Path = a.rel(l.Path)
				}
				if a.output(res) {
					fmt.Fprint(a.stdout, res.Diff)
					fmt.Fprintf(a.stdout, "%s %s: sha256 %s, %s, from %s\n", req.Software, res.Version, res.SHA256, mib(res.Size), res.From)
					for _, l := range res.Locks {
						switch {
						case !l.Changed:
							fmt.Fprintf(a.stdout, "%s is unchanged (its constraints keep the locked version)\n", l.Path)
						default:
							fmt.Fprintf(a.stdout, "wrote %s:\n", l.Path)
							for _, c := range l.Changes {
								fmt.Fprintf(a.stdout, "\t%s\n", c)
							}
						}
					}
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&req.URL, "url", "", "the new version's download URL (default: from the definition)")
	cmd.Flags().StringArrayVar(&mirrors, "source-mirror", nil, "file:// or http(s):// mirror base tried before upstream (repeatable; also $COACH_SOURCE_MIRROR)")
	cmd.Flags().BoolVar(&req.DryRun, "dry-run", false, "show the change; write nothing")
	return cmd
}

func (a *app) outdatedCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "outdated [project...]",
		Short: "List locked components whose definitions have newer versions",
		Long: `outdated lists, for each project's lock (all projects when none is named),
the components whose definitions list a newer version than the lock has:
locked, wanted (the highest the constraints allow: what coach lock --upgrade
picks) and latest. It exits 0 either way; --json gives the list.`,
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := a.signalContext()
			defer stop()
			list, err := pipeline.ListOutdated(ctx, pipeline.OutdatedRequest{Root: a.dir, Projects: args})
			if err != nil {
				return err
			}
			if a.output(list) {
				if len(list) == 0 {
					fmt.Fprintln(a.stdout, "every locked component is at its definition's latest version")
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PROJECT\tCOMPONENT\tLOCKED\tWANTED\tLATEST")
				for _, o := range list {
					if o.Library != "" {
						o.Project = "(" + library.LockFile + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Project, o.Component, o.Locked, o.Wanted, o.Latest)
				}
				tw.Flush()
			}
			return nil
		},
	}
	return cmd
}
