package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/target"
)

// targetFlag registers -t/--target, repeatable, with completion of the
// project's targets (or the catalogue's).
func (a *app) targetFlag(cmd *cobra.Command, into *[]string, usage string) {
	cmd.Flags().StringSliceVarP(into, "target", "t", nil, usage)
	cmd.RegisterFlagCompletionFunc("target", a.completeTargets)
}

// completionRoot is the repository completion looks in: -C if given on
// the command line being completed, else the nearest one above.
func (a *app) completionRoot(cmd *cobra.Command) string {
	if f := cmd.Flag("chdir"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return findRootOfWD()
}

// completeProjects completes project names.
func (a *app) completeProjects(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	repo, err := project.Load(a.completionRoot(cmd))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range repo.ProjectNames() {
		if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeTargets completes the targets of the project named in args, or
// the whole catalogue.
func (a *app) completeTargets(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	names := target.BuiltinNames()
	if len(args) > 0 {
		if repo, err := project.Load(a.completionRoot(cmd)); err == nil {
			if p, err := repo.Project(args[0]); err == nil {
				names = p.Targets
			}
		}
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
