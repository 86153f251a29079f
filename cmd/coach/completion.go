package main

import (
	"fmt"
	"maps"
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

// archFlag registers -a/--arch, the same repeatable flag on every command
// that takes architectures (completed from completeEnums).
func (a *app) archFlag(cmd *cobra.Command, into *[]string, usage string) {
	cmd.Flags().StringSliceVarP(into, "arch", "a", nil, usage)
}

// oneArch is the one architecture of a command that works in one (a
// plan's graph, a shell's environment): "" for this machine's, or a usage
// error for more than one.
func oneArch(arches []string, what string) (string, error) {
	switch len(arches) {
	case 0:
		return "", nil
	case 1:
		return arches[0], nil
	}
	return "", usageError(fmt.Errorf("%s is of one architecture: give one -a, not %d (%s)", what, len(arches), strings.Join(arches, ", ")))
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

// enumCompletions are the values of the flags of these names, on every
// command that has one.
var enumCompletions = map[string][]string{
	"runner":     {"auto", "sandbox", "dagger"},
	"progress":   {"auto", "tty", "plain", "quiet"},
	"log-format": {"auto", "text", "json"},
	"arch":       target.Arches,
}

// completeEnums registers the completion of enumCompletions' flags on
// root and every command beneath it.
func completeEnums(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, values := range enumCompletions {
			if c.LocalFlags().Lookup(name) != nil {
				// An error says it is registered already: that one stands.
				_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeSoftware completes software names (the first argument).
func (a *app) completeSoftware(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	repo, err := project.Load(a.completionRoot(cmd))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range repo.SoftwareNames() {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeProjectComponent completes a project, then one of its
// components (its software and their dependencies).
func (a *app) completeProjectComponent(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return a.completeProjects(cmd, args, toComplete)
	}
	if len(args) > 1 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	repo, err := project.Load(a.completionRoot(cmd))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	p, err := repo.Project(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	seen := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		s, ok := repo.Software[name]
		if seen[name] || !ok {
			return
		}
		seen[name] = true
		for _, d := range s.Dependencies {
			visit(d)
		}
	}
	for _, ref := range p.Software {
		visit(ref)
	}
	var out []string
	for _, n := range slices.Sorted(maps.Keys(seen)) {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
