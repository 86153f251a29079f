package spec

import (
	"fmt"

	"github.com/coach-build/coach/pipeline/target"
)

// Target returns a target as this project sees it: from its custom_targets
// (merged over based_on) or from the built-in catalogue.
func (p *Project) Target(name string) (target.Target, error) {
	if ct, ok := p.CustomTargets[name]; ok {
		t := ct
		if ct.BasedOn != "" {
			base, ok := target.Builtin(ct.BasedOn)
			if !ok {
				return target.Target{}, fmt.Errorf("target %s: based_on %q is not a built-in target", name, ct.BasedOn)
			}
			t = target.Merge(base, ct)
		}
		t.Name = name
		return t, nil
	}
	if t, ok := target.Builtin(name); ok {
		return t, nil
	}
	return target.Target{}, fmt.Errorf("project %s has no target %q (it builds %v)", p.Name, name, p.Targets)
}

// SelectTargets returns the named targets, or all of the project's when
// names is empty. Asking for a target the project does not build is an error.
func (p *Project) SelectTargets(names []string) ([]target.Target, error) {
	if len(names) == 0 {
		names = p.Targets
	}
	var out []target.Target
	for _, n := range names {
		known := false
		for _, t := range p.Targets {
			known = known || t == n
		}
		if !known {
			return nil, fmt.Errorf("project %s does not build for %q; its targets are %v", p.Name, n, p.Targets)
		}
		t, err := p.Target(n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
