package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/spec"
)

type validateJSON struct {
	OK       bool            `json:"ok"`
	Root     string          `json:"root"`
	Projects []string        `json:"projects"`
	Software []string        `json:"software"`
	Problems []*spec.Problem `json:"problems"`
}

func (a *app) validateCommand() *cobra.Command {
	var locked bool
	cmd := &cobra.Command{
		Use:   "validate [project...]",
		Short: "Check every definition and report every problem at once",
		Long: `validate loads every projects/*.yaml, software/*.yaml and scripts/<project>/
hook, reports every problem with file:line:col and a hint, then resolves and
plans each project (or only those named) so that unsatisfiable constraints and
dependency cycles are caught too.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := project.Load(a.dir)
			if err != nil {
				if a.json {
					return withCode(exitInvalid, err)
				}
				return err
			}
			projects := args
			if len(projects) == 0 {
				projects = repo.ProjectNames()
			}
			var errs []error
			for _, name := range projects {
				if _, err := project.PrepareProject(repo, name, project.Options{Locked: locked}); err != nil {
					errs = append(errs, err)
				}
			}
			if err := errors.Join(errs...); err != nil {
				// Report the first failing stage's exit code.
				return withCode(exitCode(errs[0]), err)
			}
			if !a.output(validateJSON{OK: true, Root: a.dir, Projects: repo.ProjectNames(), Software: repo.SoftwareNames(), Problems: []*spec.Problem{}}) {
				return nil
			}
			fmt.Fprintf(a.stdout, "ok: %s, %s\n", plural(len(repo.Projects), "project"), plural(len(repo.Software), "software definition"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&locked, "locked", false, "also fail if a project's lock file is missing or out of date")
	return cmd
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
