package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline/spec"
)

// schemaDir is where coach new and coach schema --write put the JSON
// Schemas in a repository, for the definitions' yaml-language-server
// modelines (# yaml-language-server: $schema=../.coach/schema/...).
const schemaDir = ".coach/schema"

func (a *app) schemaCommand() *cobra.Command {
	var write bool
	cmd := &cobra.Command{
		Use:   "schema [project|software]",
		Short: "Print the JSON Schema of project or software definitions, or write both into the repository",
		Long: `schema prints the JSON Schema (draft 2020-12) of a project or software
definition, made from the same types the loader reads, so editors can
complete and check definitions. --write puts both into .coach/schema/ in the
repository, where the modelines coach new writes point:

  # yaml-language-server: $schema=../.coach/schema/project.schema.json`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"project", "software"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if write {
				if len(args) > 0 {
					return usageError(errors.New("--write writes both schemas; name no kind"))
				}
				paths, err := writeSchemas(a.dir, true)
				if err != nil {
					return err
				}
				if a.output(map[string][]string{"written": paths}) {
					for _, p := range paths {
						fmt.Fprintf(a.stdout, "wrote %s\n", p)
					}
				}
				return nil
			}
			if len(args) == 0 {
				return usageError(errors.New("name the kind: coach schema project, or coach schema software (or --write)"))
			}
			if args[0] != "project" && args[0] != "software" {
				return usageError(fmt.Errorf("no schema for %q: project or software", args[0]))
			}
			s := spec.Schema(args[0])
			if a.output(s) {
				b, _ := json.MarshalIndent(s, "", "  ")
				fmt.Fprintf(a.stdout, "%s\n", b)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&write, "write", false, "write both schemas into .coach/schema/ in the repository")
	return cmd
}

// writeSchemas writes the schemas into the repository's schemaDir and
// returns their paths relative to it: all of them when replace is set,
// else only those missing.
func writeSchemas(root string, replace bool) ([]string, error) {
	var out []string
	for _, kind := range []string{"project", "software"} {
		rel := filepath.Join(schemaDir, kind+".schema.json")
		p := filepath.Join(root, rel)
		if _, err := os.Stat(p); err == nil && !replace {
			continue
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		b, err := json.MarshalIndent(spec.Schema(kind), "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
		out = append(out, rel)
	}
	return out, nil
}
