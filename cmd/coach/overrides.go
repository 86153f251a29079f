package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// projectFlags are the command line's replacements for what a project
// file says: --version, --iteration and --override.
type projectFlags struct {
	version   string
	iteration int
	overrides []string
}

func (f *projectFlags) register(fl *pflag.FlagSet, withVersion bool) {
	if withVersion {
		fl.StringVar(&f.version, "version", "", "package this version instead of the project's (semver, git, or a template)")
		fl.IntVar(&f.iteration, "iteration", 0, "package this iteration (revision) instead of the project's")
	}
	fl.StringArrayVar(&f.overrides, "override", nil, "component=constraint, as in the project's overrides (repeatable)")
}

// parsedOverrides reads the --override flags: component=constraint each.
func (f *projectFlags) parsedOverrides() (map[string]string, error) {
	if len(f.overrides) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, o := range f.overrides {
		name, constraint, ok := strings.Cut(o, "=")
		name, constraint = strings.TrimSpace(name), strings.TrimSpace(constraint)
		if !ok || name == "" || constraint == "" {
			return nil, usageError(fmt.Errorf("--override %q: give component=constraint, e.g. --override zlib=~1.3", o))
		}
		if prev, dup := out[name]; dup && prev != constraint {
			return nil, usageError(fmt.Errorf("--override gives %s twice (%s and %s)", name, prev, constraint))
		}
		out[name] = constraint
	}
	return out, nil
}
