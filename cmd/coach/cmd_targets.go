package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/target"
)

func (a *app) targetsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "targets [project]",
		Short: "List the target catalogue, or a project's targets with its custom ones",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var list []target.Target
			if len(args) == 1 {
				repo, err := project.Load(a.dir)
				if err != nil {
					return err
				}
				p, err := repo.Project(args[0])
				if err != nil {
					return usageError(err)
				}
				if list, err = p.SelectTargets(nil); err != nil {
					return err
				}
			} else {
				for _, n := range target.BuiltinNames() {
					t, _ := target.Builtin(n)
					list = append(list, t)
				}
			}
			if !a.output(list) {
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFORMAT\tDIST TAG\tGLIBC\tCOMPRESSION\tSANDBOX\tIMAGE")
			for _, t := range list {
				sandbox := "image only"
				if t.Bootstrap.Tool != "" {
					sandbox = t.Bootstrap.Tool + " " + t.Bootstrap.Suite
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Format, t.DistTag, t.Glibc, t.Compression, sandbox, t.Image)
			}
			return tw.Flush()
		},
	}
}
