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
	// Libraries are the software libraries used, in search order, and
	// Overrides the library definitions replaced by the repository's
	// own (or an earlier library's).
	Libraries []libraryJSON   `json:"libraries"`
	Overrides []spec.Override `json:"overrides"`
}

type libraryJSON struct {
	Name     string   `json:"name"`
	Label    string   `json:"label"`
	Dir      string   `json:"dir"`
	Software []string `json:"software"`
	Stale    string   `json:"stale,omitempty"`
}

// libraries says which software each library gives the repository.
func libraries(repo *spec.Repo) []libraryJSON {
	out := []libraryJSON{}
	for _, l := range repo.Libraries {
		j := libraryJSON{Name: l.Name, Label: l.Label, Dir: l.Dir, Software: []string{}, Stale: l.Stale}
		for _, name := range repo.SoftwareNames() {
			if repo.Software[name].Library == l.Name {
				j.Software = append(j.Software, name)
			}
		}
		out = append(out, j)
	}
	return out
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
			libs := libraries(repo)
			overrides := repo.Overrides
			if overrides == nil {
				overrides = []spec.Override{}
			}
			if !a.output(validateJSON{OK: true, Root: a.dir, Projects: repo.ProjectNames(), Software: repo.SoftwareNames(), Problems: []*spec.Problem{}, Libraries: libs, Overrides: overrides}) {
				return nil
			}
			fmt.Fprintf(a.stdout, "ok: %s, %s\n", plural(len(repo.Projects), "project"), plural(len(repo.Software), "software definition"))
			for _, l := range libs {
				fmt.Fprintf(a.stdout, "library %s: %s (%s)\n", l.Label, plural(len(l.Software), "definition"), a.rel(l.Dir))
				if l.Stale != "" {
					fmt.Fprintf(a.stdout, "\tnot locked as used: %s (run coach lock)\n", l.Stale)
				}
			}
			for _, o := range overrides {
				fmt.Fprintf(a.stdout, "override: %s\n", o)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&locked, "locked", false, "also fail if a project's lock file is missing or out of date")
	return cmd
}

func plural(n int, word string) string { return count(n, word, word+"s") }

// count is n with the word's singular or plural form.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
