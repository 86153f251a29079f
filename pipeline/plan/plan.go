// Package plan turns a resolution into the build graph: the components in a
// deterministic dependency order, grouped into levels that can build in
// parallel, each with a cache key per target.
package plan

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// KeySchema is mixed into every cache key; bump it when the way a layer is
// built changes so that every cached layer is rebuilt.
const KeySchema = 4 // 2: layers carry LICENSES/<component>/; 3: SOURCE_DATE_EPOCH in builds; 4: layer keys on dependency layer digests

// Node is one component in the plan.
type Node struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
	// Library is the software library the definition comes from; empty
	// for the repository's own.
	Library      string   `json:"library,omitempty"`
	Dependencies []string `json:"dependencies"`
	Level        int      `json:"level"`
	// Keys are the plan keys, per target: the component's own inputs and
	// its dependencies' plan keys. They change whenever anything a build
	// could see changes, before anything is built.
	Keys map[string]string `json:"keys"`
	// InputKeys are the component's own inputs only, per target: the
	// build combines one with the build environment's identity and the
	// content digests of the dependency layers it builds against, so that
	// an edit leaving a dependency's layer byte-identical rebuilds nothing
	// after it (early cutoff).
	InputKeys map[string]string `json:"input_keys"`
	// Transitive lists every component this one builds against, sorted:
	// the layers its build sees.
	Transitive []string           `json:"transitive"`
	Component  *resolve.Component `json:"-"`
}

// Plan is the build graph for one project.
type Plan struct {
	Project    string   `json:"project"`
	Version    string   `json:"version"`
	InstallDir string   `json:"install_dir"`
	Arch       string   `json:"arch"`
	Targets    []string `json:"targets"`
	// Levels group the components that can build at the same time: every
	// dependency of a component is in an earlier level.
	Levels [][]string `json:"levels"`
	// Nodes are in build order: dependencies first, ties broken by name.
	Nodes []*Node `json:"components"`

	targets []target.Target
	index   map[string]*Node
}

// Node returns the named node.
func (p *Plan) Node(name string) *Node { return p.index[name] }

// Order returns the component names in build order.
func (p *Plan) Order() []string {
	out := make([]string, len(p.Nodes))
	for i, n := range p.Nodes {
		out[i] = n.Name
	}
	return out
}

// TargetList returns the targets the plan is for.
func (p *Plan) TargetList() []target.Target { return p.targets }

// CycleError reports a dependency cycle as the path around it.
type CycleError struct{ Path []string }

func (e *CycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.Path, " -> ")
}

// New builds the plan for a project's resolution.
func New(p *spec.Project, res *resolve.Resolution, targets []target.Target, arch string) (*Plan, error) {
	pl := &Plan{Project: p.Name, Version: p.Version, InstallDir: p.InstallDir, Arch: arch, targets: targets, index: map[string]*Node{}}
	for _, t := range targets {
		pl.Targets = append(pl.Targets, t.Name)
	}
	var missing []error
	for i := range res.Components {
		c := &res.Components[i]
		pl.index[c.Name] = &Node{Name: c.Name, Version: c.Version, Source: c.Source.Pin(), Library: c.Library, Dependencies: c.Dependencies, Component: c, Keys: map[string]string{}, InputKeys: map[string]string{}}
	}
	for _, n := range pl.index {
		for _, d := range n.Dependencies {
			if pl.index[d] == nil {
				missing = append(missing, fmt.Errorf("plan: %s depends on %s, which is not resolved", n.Name, d))
			}
		}
	}
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	order, err := topoOrder(pl.index)
	if err != nil {
		return nil, err
	}
	// A target's image is not in its digest: the Dagger runner's
	// environment id (in every layer key it builds) covers it, and the
	// sandbox never reads it, so pinning an image by digest (coach lock
	// with an engine) must not rebuild the sandbox's layers.
	targetDigests := make([]string, len(targets))
	for i, t := range targets {
		t.Image = ""
		targetDigests[i] = digest.JSON(t)
	}
	for _, name := range order {
		n := pl.index[name]
		trans := map[string]bool{}
		for _, d := range n.Dependencies {
			dn := pl.index[d]
			n.Level = max(n.Level, dn.Level+1)
			trans[d] = true
			for _, t := range dn.Transitive {
				trans[t] = true
			}
		}
		n.Transitive = append([]string{}, slices.Sorted(maps.Keys(trans))...)
		if n.Dependencies == nil {
			n.Dependencies = []string{}
		}
		for i, t := range targets {
			n.Keys[t.Name] = key(p, n, t.Name, targetDigests[i], arch, pl.index)
			n.InputKeys[t.Name] = inputKey(p, n, targetDigests[i], arch)
		}
		pl.Nodes = append(pl.Nodes, n)
		for len(pl.Levels) <= n.Level {
			pl.Levels = append(pl.Levels, nil)
		}
		pl.Levels[n.Level] = append(pl.Levels[n.Level], n.Name)
	}
	return pl, nil
}

// topoOrder is Kahn's algorithm with the ready set kept sorted, so the order
// depends only on the graph. On a cycle it returns the cycle's path.
func topoOrder(nodes map[string]*Node) ([]string, error) {
	indeg := map[string]int{}
	users := map[string][]string{}
	for name, n := range nodes {
		indeg[name] += 0
		for _, d := range n.Dependencies {
			indeg[name]++
			users[d] = append(users[d], name)
		}
	}
	var ready []string
	for name, deg := range indeg {
		if deg == 0 {
			ready = append(ready, name)
		}
	}
	slices.Sort(ready)
	order := make([]string, 0, len(nodes))
	for len(ready) > 0 {
		name := ready[0]
		ready = ready[1:]
		order = append(order, name)
		var next []string
		for _, u := range users[name] {
			indeg[u]--
			if indeg[u] == 0 {
				next = append(next, u)
			}
		}
		if len(next) > 0 {
			slices.Sort(next)
			ready = mergeSorted(ready, next)
		}
	}
	if len(order) < len(nodes) {
		return nil, &CycleError{Path: findCycle(nodes)}
	}
	return order, nil
}

func mergeSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i] <= b[j] {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return append(append(out, a[i:]...), b[j:]...)
}

// findCycle walks the graph depth-first from the smallest name and returns
// the first cycle it meets, starting and ending at the same component.
func findCycle(nodes map[string]*Node) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack, cycle []string
	var visit func(string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		deps := slices.Clone(nodes[n].Dependencies)
		slices.Sort(deps)
		for _, d := range deps {
			switch color[d] {
			case grey:
				i := slices.Index(stack, d)
				cycle = append(slices.Clone(stack[i:]), d)
				return true
			case white:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if color[n] == white && visit(n) {
			return cycle
		}
	}
	return nil
}

// keyInput is everything that decides what a component's layer holds. It is
// hashed as JSON, so the key depends on these values and nothing else: not
// the machine, the repository's path or the order definitions were read in.
type keyInput struct {
	Schema int
	// Target is the digest of the whole target definition: image, bootstrap
	// recipe, toolchain, library dirs and the rest.
	Target     string
	Arch       string
	InstallDir string
	Name       string
	Version    string
	Source     string
	Definition string
	Deps       map[string]string
}

func key(p *spec.Project, n *Node, targetName, targetDigest, arch string, index map[string]*Node) string {
	in := keyInput{
		Schema: KeySchema, Target: targetDigest, Arch: arch, InstallDir: p.InstallDir,
		Name: n.Name, Version: n.Version, Source: n.Source, Definition: n.Component.Definition,
		Deps: map[string]string{},
	}
	for _, d := range n.Dependencies {
		in.Deps[d] = index[d].Keys[targetName]
	}
	return digest.JSON(in)
}

// inputKey is key without the dependencies' keys: only the names of the
// direct dependencies (the definition names them too).
func inputKey(p *spec.Project, n *Node, targetDigest, arch string) string {
	in := keyInput{
		Schema: KeySchema, Target: targetDigest, Arch: arch, InstallDir: p.InstallDir,
		Name: n.Name, Version: n.Version, Source: n.Source, Definition: n.Component.Definition,
		Deps: map[string]string{},
	}
	for _, d := range n.Dependencies {
		in.Deps[d] = ""
	}
	return digest.JSON(in)
}
