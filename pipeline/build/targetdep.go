package build

import (
	"fmt"
	"slices"

	"github.com/coach-build/coach/pipeline/plan"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// TargetDependent names the components of the plan whose definitions
// render differently for target b than for target a: their steps,
// environment or source directory use {{.Target}}, {{.Format}} or
// {{.Multiarch}} in a way that differs. A tree built for a is then not
// what b needs (coach package --from).
func TargetDependent(pl *plan.Plan, p *spec.Project, a, b target.Target) ([]string, error) {
	var out []string
	for _, n := range pl.Nodes {
		if n.Component == nil || n.Component.Software == nil {
			continue
		}
		s := n.Component.Software
		render := func(t target.Target) ([]string, error) {
			vars := stepVars(pl, p, t, n, 1)
			steps, err := jobSteps(s, nil, vars)
			if err != nil {
				return nil, err
			}
			var out []string
			for _, st := range steps {
				out = append(out, st.Name)
				out = append(out, st.Argv...)
			}
			env, err := expandEnv(s.Env, vars)
			if err != nil {
				return nil, err
			}
			out = append(out, envList(env)...)
			rel, err := spec.Expand(s.RelativePath, vars)
			if err != nil {
				return nil, err
			}
			slices.Sort(out)
			return append(out, rel), nil
		}
		ra, err := render(a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		rb, err := render(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		if !slices.Equal(ra, rb) {
			out = append(out, n.Name)
		}
	}
	return out, nil
}
