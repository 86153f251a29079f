// Package build walks a plan and builds each component in a runner, in
// parallel where the graph allows, caching each component's layer under its
// plan key, and merges the layers into the tree that gets packaged.
package build

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/internal/jobserver"
	"github.com/coach-build/coach/pipeline/internal/userns"
	"github.com/coach-build/coach/pipeline/plan"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

// Builder builds the components of a plan.
type Builder struct {
	Runner  runner.Runner
	Fetcher *fetch.Fetcher
	Layers  *LayerCache
	// WorkDir holds per-component work directories and logs.
	WorkDir string
	// Jobs is how many components build at once; MakeJobs is {{.Jobs}}.
	Jobs     int
	MakeJobs int
	// NoCache rebuilds every component (and replaces its cached layer).
	NoCache bool
	// Remote, when set, is a layer cache shared between machines: looked
	// up when Layers misses, and given what was built (and what it lacks)
	// when it takes pushes.
	Remote Remote
	// KeepFailed keeps the work directory of a failed component.
	KeepFailed bool
	// Debug, when set, is passed to every job (runner.Job.Debug): a
	// runner that can (the sandbox) opens it where a step fails, before
	// the build goes on to fail.
	Debug *runner.Shell
	Log   *slog.Logger
	// Events, if set, hears each component's progress and every line its
	// steps print; calls are serialised.
	Events event.Sink
	// History keeps build times for the scheduler; nil means
	// history.json beside the layer cache's directory.
	History *History
	// Jobserver, when set, is the make job server of the run: a build
	// takes a token for itself before it starts (its make's implicit
	// slot), and its makes take the rest from the same pool.
	Jobserver *jobserver.Server

	// up are the pushes to Remote this build started, under upCtx (the
	// build's context, which outlives buildNodes').
	up    *pushes
	upCtx context.Context
}

func (b *Builder) history() *History {
	if b.History != nil {
		return b.History
	}
	return &History{Path: filepath.Join(filepath.Dir(b.Layers.Dir), "history.json")}
}

// scheduleEstimates are the estimated build times the scheduler ranks by:
// from the history, else (for components never built here) from the size
// of their source, fetched ahead for that.
func (b *Builder) scheduleEstimates(ctx context.Context, pl *plan.Plan, jobs int) map[string]float64 {
	hist := b.history().Load()
	if len(hist) == 0 {
		// Times recorded only in the layers, before there was a history.
		for name, secs := range b.Layers.Durations() {
			hist[name] = HistoryEntry{Seconds: secs}
		}
	}
	var reqs []fetch.Request
	for _, n := range pl.Nodes {
		// With a remote cache most components are pulled, not built:
		// their sources are not fetched just to rank them.
		if _, ok := hist[n.Name]; !ok && b.Fetcher != nil && b.Remote == nil {
			reqs = append(reqs, fetch.Request{Name: n.Name, Version: n.Version, Source: n.Component.Source})
		}
	}
	sizes := map[string]int64{}
	if len(reqs) > 0 {
		// Errors are the build's to report, when it fetches again.
		results, _ := b.Fetcher.FetchAll(ctx, reqs, jobs)
		for _, r := range results {
			if r != nil {
				sizes[r.Name] = r.Bytes
			}
		}
	}
	return estimates(pl, hist, sizes)
}

// ComponentResult is one component's outcome on one target.
type ComponentResult struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Key      string `json:"key"`
	CacheHit bool   `json:"cache_hit"`
	// From is where the layer came from: local (this machine's cache),
	// remote (the remote cache) or build.
	From string `json:"from"`
	// State is the component's outcome: built, cached, pulled; or, in a
	// target that failed, failed, cancelled (stopped because another
	// failed) or not started.
	State   string    `json:"state"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Seconds float64   `json:"seconds"`
	Files   int       `json:"layer_files"`
	Bytes   int64     `json:"layer_bytes"`
	Layer   string    `json:"layer"`
	Log     string    `json:"log,omitempty"`
	// Digest is the layer's content digest; Inputs what its key covers.
	Digest string     `json:"digest"`
	Inputs *KeyInputs `json:"inputs,omitempty"`
}

// Result is one target's build.
type Result struct {
	Target     string            `json:"target"`
	Components []ComponentResult `json:"components"`
	// Tree is the merged install tree: its files appear at
	// <Tree>/<install_dir>.
	Tree       string  `json:"tree"`
	InstallDir string  `json:"install_dir"`
	Seconds    float64 `json:"seconds"`
}

func (b *Builder) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.New(slog.DiscardHandler)
}

// ComponentPackages are a component's own build packages for a target's
// format, sorted, each once: what its environment adds to the target's
// base root.
func ComponentPackages(n *plan.Node, t target.Target) []string {
	return runner.PackageSet(n.Component.Software.BuildPackages.For(t.Format))
}

// Packages is the union of the build packages of the plan's components for
// a target's format, sorted: the environment the merged tree's health
// check resolves system libraries in.
func Packages(pl *plan.Plan, t target.Target) []string {
	set := map[string]bool{}
	for _, n := range pl.Nodes {
		for _, p := range n.Component.Software.BuildPackages.For(t.Format) {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Build builds every component of the plan for target t, then merges the
// layers into <WorkDir>/tree. On failure it returns the first error (a
// *runner.StepError for a failed step) after stopping the other builds.
func (b *Builder) Build(ctx context.Context, pl *plan.Plan, p *spec.Project, root string, t target.Target) (*Result, error) {
	start := time.Now()
	if err := os.MkdirAll(b.WorkDir, 0o755); err != nil {
		return nil, err
	}
	b.sweepPartials()
	b.up, b.upCtx = &pushes{}, ctx
	results, err := b.buildNodes(ctx, pl, p, root, t, nil)
	// What was built is worth sharing even when a sibling failed.
	if perr := b.up.wait(); err == nil && perr != nil {
		err = fmt.Errorf("remote cache: %w", perr)
	}
	if err != nil {
		// What each component came to, for the report of the failure.
		partial := &Result{Target: t.Name, InstallDir: p.InstallDir, Seconds: time.Since(start).Seconds()}
		for _, n := range pl.Nodes {
			r, ok := results[n.Name]
			if !ok {
				r = ComponentResult{Name: n.Name, Version: n.Version, State: StateNotStarted}
			}
			partial.Components = append(partial.Components, r)
		}
		return partial, err
	}
	res := &Result{Target: t.Name}
	var layers []NamedLayer
	for _, n := range pl.Nodes {
		r := results[n.Name]
		res.Components = append(res.Components, r)
		layers = append(layers, NamedLayer{Component: n.Name, Dir: r.Layer})
	}
	tree := filepath.Join(b.WorkDir, "tree")
	archive.RemoveAll(tree)
	if err := Merge(layers, filepath.Join(tree, filepath.FromSlash(strings.TrimPrefix(p.InstallDir, "/")))); err != nil {
		return nil, fmt.Errorf("merge layers for %s: %w", t.Name, err)
	}
	res.Tree = tree
	res.InstallDir = p.InstallDir
	res.Seconds = time.Since(start).Seconds()
	if data, err := json.MarshalIndent(res, "", "  "); err == nil {
		os.WriteFile(filepath.Join(b.WorkDir, "result.json"), data, 0o644)
	}
	return res, nil
}

// buildNodes builds the components of the plan in want (every one when
// want is nil; want must hold the dependencies of what it holds), as many
// at once as Jobs allows, and returns their results by name. The runner
// is readied for the target (once) when a component must be built, under
// buildNodes' own context: it is cancelled when buildNodes returns.
func (b *Builder) buildNodes(ctx context.Context, pl *plan.Plan, p *spec.Project, root string, t target.Target, want map[string]bool) (map[string]ComponentResult, error) {
	jobs := max(b.Jobs, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Each package set's environment is readied once, when a component
	// that builds in it must be built.
	type readied struct {
		once sync.Once
		err  error
	}
	var prepMu sync.Mutex
	ready := map[string]*readied{}
	prepare := func(packages []string) error {
		prepMu.Lock()
		r := ready[strings.Join(packages, ",")]
		if r == nil {
			r = &readied{}
			ready[strings.Join(packages, ",")] = r
		}
		prepMu.Unlock()
		r.once.Do(func() {
			if err := b.Runner.Prepare(ctx, t, pl.Arch, packages); err != nil {
				r.err = fmt.Errorf("prepare %s for %s: %w", b.Runner.Name(), t.Name, err)
			}
		})
		return r.err
	}

	sink := event.Serialize(b.Events)
	// Events name the target, and the arch when it is not the machine's
	// own, as the pipeline's stage events do.
	label := t.Name
	if pl.Arch != "" && pl.Arch != target.HostArch() {
		label += "-" + pl.Arch
	}
	emit := func(e event.Event) {
		e.Target = label
		sink.Emit(e)
	}

	type outcome struct {
		name string
		res  ComponentResult
		err  error
	}
	results := map[string]ComponentResult{}
	done := make(chan outcome)
	started := map[string]bool{}
	inflight := 0
	var firstErr error
	// stopped are the components that failed or were cancelled.
	stopped := map[string]ComponentResult{}
	wanted := 0
	for _, n := range pl.Nodes {
		if want == nil || want[n.Name] {
			wanted++
			emit(event.Event{Kind: event.ComponentQueued, Component: n.Name, Version: n.Version})
		}
	}
	order := criticalFirst(pl, b.scheduleEstimates(ctx, pl, max(jobs, 4)))
	for len(results) < wanted {
		// Start every component whose dependencies are built, those at the
		// head of the longest (estimated) chain of builds first.
		for _, n := range order {
			if firstErr != nil || inflight >= jobs {
				break
			}
			waiting := slices.ContainsFunc(n.Dependencies, func(d string) bool { _, built := results[d]; return !built })
			if started[n.Name] || waiting || (want != nil && !want[n.Name]) {
				continue
			}
			started[n.Name] = true
			inflight++
			deps := b.depLayers(pl, n, results)
			go func(n *plan.Node) {
				res, err := b.buildOne(ctx, pl, p, root, t, n, deps, prepare, emit)
				done <- outcome{n.Name, res, err}
			}(n)
		}
		if inflight == 0 {
			break
		}
		o := <-done
		inflight--
		if o.err != nil {
			if firstErr == nil || (errors.Is(firstErr, context.Canceled) && !errors.Is(o.err, context.Canceled)) {
				firstErr = o.err
			}
			o.res.State = StateFailed
			if errors.Is(o.err, context.Canceled) {
				o.res.State = StateCancelled
			}
			stopped[o.name] = o.res
			cancel()
			continue
		}
		results[o.name] = o.res
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		// The components done and those stopped, for the report.
		for name, r := range stopped {
			results[name] = r
		}
		return results, firstErr
	}
	return results, nil
}

// ReadResult reads the result a build left in its work directory.
func ReadResult(workDir string) (*Result, error) {
	data, err := os.ReadFile(filepath.Join(workDir, "result.json"))
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// InstallTree is the host directory holding the install dir's contents.
func (r *Result) InstallTree() string {
	return filepath.Join(r.Tree, filepath.FromSlash(strings.TrimPrefix(r.InstallDir, "/")))
}

// FileDigests is what each regular file of the merged tree must hash to,
// from its layer's manifest (checked against the layer's digest), and
// the component whose layer holds it.
func (r *Result) FileDigests() (sums, owners map[string]string, err error) {
	sums, owners = map[string]string{}, map[string]string{}
	for _, c := range r.Components {
		m, err := os.ReadFile(filepath.Join(filepath.Dir(c.Layer), "manifest"))
		if err == nil && confine.ManifestDigest(m) != c.Digest {
			err = fmt.Errorf("its manifest does not hash to the layer's digest %s", c.Digest)
		}
		if err != nil {
			return nil, nil, &CorruptError{Key: c.Key, Component: c.Name, Reason: err.Error()}
		}
		files, err := confine.ManifestFiles(m)
		if err != nil {
			return nil, nil, &CorruptError{Key: c.Key, Component: c.Name, Reason: err.Error()}
		}
		for p, sum := range files {
			sums[p], owners[p] = sum, c.Name
		}
	}
	return sums, owners, nil
}

// FileSums is FileDigests' sums alone: what packaging checks the tree
// against.
func (r *Result) FileSums() (map[string]string, error) {
	sums, _, err := r.FileDigests()
	return sums, err
}

// Owners maps every file of the merged tree (relative to the install dir)
// to the component whose layer holds it, and every shared library's file
// name to the component that ships it.
func (r *Result) Owners() (files, libraries map[string]string, err error) {
	files, libraries = map[string]string{}, map[string]string{}
	for _, c := range r.Components {
		err := filepath.WalkDir(c.Layer, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(c.Layer, p)
			files[filepath.ToSlash(rel)] = c.Name
			if strings.Contains(d.Name(), ".so") {
				libraries[d.Name()] = c.Name
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return files, libraries, nil
}

// criticalFirst orders the plan's nodes by the estimated time of the
// longest chain of builds that starts with them (the component itself, then
// whatever depends on it, and so on), longest first, then in plan order, so
// that with few jobs the builds that others wait on longest start first.
// A component's estimate is its last build time (seconds, from the layer
// cache); one never built counts as the median of the known ones, or 1 when
// none is known, which orders by the number of components in the chain.
func criticalFirst(pl *plan.Plan, seconds map[string]float64) []*plan.Node {
	var known []float64
	for _, n := range pl.Nodes {
		if s, ok := seconds[n.Name]; ok && s > 0 {
			known = append(known, s)
		}
	}
	unknown := 1.0
	if len(known) > 0 {
		slices.Sort(known)
		unknown = known[len(known)/2]
	}
	chain := map[string]float64{}
	// Plan order puts dependencies first, so dependents are done first here.
	for i := len(pl.Nodes) - 1; i >= 0; i-- {
		n := pl.Nodes[i]
		own, ok := seconds[n.Name]
		if !ok || own <= 0 {
			own = unknown
		}
		chain[n.Name] += own
		for _, d := range n.Dependencies {
			chain[d] = max(chain[d], chain[n.Name])
		}
	}
	out := slices.Clone(pl.Nodes)
	slices.SortStableFunc(out, func(a, b *plan.Node) int { return cmp.Compare(chain[b.Name], chain[a.Name]) })
	return out
}

// depLayers lists the layers of n's transitive dependencies in plan order.
func (b *Builder) depLayers(pl *plan.Plan, n *plan.Node, results map[string]ComponentResult) []NamedLayer {
	var out []NamedLayer
	for _, m := range pl.Nodes {
		if slices.Contains(n.Transitive, m.Name) {
			out = append(out, NamedLayer{Component: m.Name, Dir: results[m.Name].Layer, Digest: results[m.Name].Digest})
		}
	}
	return out
}

// Environment is runner.Environment, where the layer keys need it.
type Environment = runner.Environment

// layerKey is a component's key for the layer cache: its own inputs, the
// identity of the environment it builds in, and the content digests of the
// dependency layers it builds against. A dependency rebuilt into the same
// bytes leaves the key as it was (early cutoff); any change to what the
// build sees changes it.
func (b *Builder) layerKey(pl *plan.Plan, t target.Target, n *plan.Node, deps []NamedLayer) (string, *KeyInputs) {
	e, _ := b.Runner.(runner.Environment)
	return layerKey(e, pl, t, n, deps)
}

func layerKey(e Environment, pl *plan.Plan, t target.Target, n *plan.Node, deps []NamedLayer) (string, *KeyInputs) {
	in := &KeyInputs{Input: n.InputKeys[t.Name], Layers: map[string]string{}}
	if e != nil {
		in.Environment = e.EnvironmentID(t, pl.Arch, ComponentPackages(n, t))
	}
	for _, d := range deps {
		in.Layers[d.Component] = d.Digest
	}
	return digest.JSON(in), in
}

// FixedEnvironment is an environment known by its identity alone, as a
// layer's KeyInputs record it.
type FixedEnvironment string

func (e FixedEnvironment) EnvironmentID(target.Target, string, []string) string { return string(e) }

// LayerKeys are the layer keys of the plan's components for target t in
// environment e, as a build there would look them up: a key needs the
// digests of its dependencies' layers, so only components whose
// dependencies are all in the cache have one.
func LayerKeys(c *LayerCache, e Environment, pl *plan.Plan, t target.Target) map[string]string {
	keys := map[string]string{}
	walkKeys(e, pl, t, func(n *plan.Node, key string, _ *KeyInputs) string {
		keys[n.Name] = key
		if _, meta, ok := c.Lookup(key); ok {
			return meta.Digest
		}
		return ""
	})
	return keys
}

// walkKeys computes the plan's layer keys in plan order: each component
// whose dependencies all have a layer digest gets its key, and layer says
// the digest of its layer ("" for none, and its dependents get no key).
func walkKeys(e Environment, pl *plan.Plan, t target.Target, layer func(n *plan.Node, key string, in *KeyInputs) string) {
	digests := map[string]string{}
	for _, n := range pl.Nodes {
		var deps []NamedLayer
		complete := true
		for _, m := range pl.Nodes {
			if slices.Contains(n.Transitive, m.Name) {
				d, ok := digests[m.Name]
				complete = complete && ok
				deps = append(deps, NamedLayer{Component: m.Name, Digest: d})
			}
		}
		if !complete {
			continue
		}
		key, in := layerKey(e, pl, t, n, deps)
		if d := layer(n, key, in); d != "" {
			digests[n.Name] = d
		}
	}
}

// Synced is one component's layer in a push to or pull from a remote
// cache.
type Synced struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	// Key is the layer's key; empty when a dependency's layer is
	// missing, so that this one's key cannot be known.
	Key string `json:"key,omitempty"`
	// State: pushed, present (the remote had it), pulled, local (this
	// cache had it), missing (neither has it: build it), or blocked (a
	// dependency is missing).
	State string `json:"state"`
}

// PushLayers gives the remote every layer of the plan's components for t,
// in environment e, that this cache has and the remote lacks.
func PushLayers(ctx context.Context, c *LayerCache, r Remote, e Environment, pl *plan.Plan, t target.Target) ([]Synced, error) {
	var out []Synced
	var errs []error
	seen := map[string]bool{}
	walkKeys(e, pl, t, func(n *plan.Node, key string, _ *KeyInputs) string {
		seen[n.Name] = true
		s := Synced{Component: n.Name, Version: n.Version, Key: key, State: "missing"}
		defer func() { out = append(out, s) }()
		dir, meta, ok := c.Lookup(key)
		if !ok {
			return ""
		}
		if err := c.Verify(key, meta); err != nil {
			errs = append(errs, err)
			return ""
		}
		has, err := r.HasLayer(ctx, key)
		if err != nil {
			errs = append(errs, err)
			return meta.Digest
		}
		if has {
			s.State = "present"
			return meta.Digest
		}
		raw, err := c.MetaJSON(key)
		if err == nil {
			err = r.PushLayer(ctx, key, dir, raw, filepath.Join(c.Dir, "tmp"))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("push %s: %w", n.Name, err))
			return meta.Digest
		}
		s.State = "pushed"
		return meta.Digest
	})
	return withBlocked(out, pl, seen), errors.Join(errs...)
}

// PullLayers brings into this cache every layer of the plan's components
// for t, in environment e, that the remote has and this cache lacks, in
// plan order (a layer's key needs its dependencies' digests). Pulled
// layers are checked as a build checks them (Pull).
func PullLayers(ctx context.Context, c *LayerCache, r Remote, e Environment, pl *plan.Plan, t target.Target, log *slog.Logger) ([]Synced, error) {
	var out []Synced
	var errs []error
	seen := map[string]bool{}
	walkKeys(e, pl, t, func(n *plan.Node, key string, in *KeyInputs) string {
		seen[n.Name] = true
		s := Synced{Component: n.Name, Version: n.Version, Key: key, State: "local"}
		defer func() { out = append(out, s) }()
		if _, meta, ok := c.Lookup(key); ok {
			if err := c.Verify(key, meta); err == nil {
				return meta.Digest
			}
			c.Evict(key)
		}
		_, meta, ok, err := c.Pull(ctx, r, key, in, r.String(), log)
		if err != nil {
			errs = append(errs, fmt.Errorf("pull %s: %w", n.Name, err))
		}
		if !ok {
			s.State = "missing"
			return ""
		}
		s.State = "pulled"
		return meta.Digest
	})
	return withBlocked(out, pl, seen), errors.Join(errs...)
}

// withBlocked adds the components walkKeys could not key.
func withBlocked(out []Synced, pl *plan.Plan, seen map[string]bool) []Synced {
	for _, n := range pl.Nodes {
		if !seen[n.Name] {
			out = append(out, Synced{Component: n.Name, Version: n.Version, State: "blocked"})
		}
	}
	return out
}

func (b *Builder) buildOne(ctx context.Context, pl *plan.Plan, p *spec.Project, root string, t target.Target, n *plan.Node, deps []NamedLayer, prepare func(packages []string) error, emit func(event.Event)) (ComponentResult, error) {
	key, inputs := b.layerKey(pl, t, n, deps)
	res := ComponentResult{Name: n.Name, Version: n.Version, Key: key, Inputs: inputs, Start: time.Now()}
	finish := func() {
		res.End = time.Now()
		res.Seconds = res.End.Sub(res.Start).Seconds()
	}
	if !b.NoCache {
		dir, meta, ok := b.Layers.Lookup(key)
		if ok {
			if err := b.Layers.Verify(key, meta); err != nil {
				// Its bytes are not the ones it was stored with: out of
				// the cache, and built again.
				b.log().Warn(err.Error()+"; rebuilding it", "target", t.Name, "component", n.Name)
				if err := b.Layers.Evict(key); err != nil {
					return res, fmt.Errorf("build %s: evict its corrupt layer: %w", n.Name, err)
				}
				ok = false
			}
		}
		if ok {
			b.Layers.Touch(key) // last used, for cache gc --keep-size
			res.CacheHit, res.From, res.State, res.Layer, res.Files, res.Bytes, res.Digest = true, FromLocal, StateCached, dir, meta.Files, meta.Bytes, meta.Digest
			res.Log = filepath.Join(filepath.Dir(dir), "build.log")
			finish()
			b.share(key, dir, true)
			emit(event.Event{Kind: event.ComponentCached, Component: n.Name, Version: n.Version})
			b.log().Debug("cached", "target", t.Name, "component", n.Name, "key", shortKey(key))
			return res, nil
		}
		if b.Remote != nil {
			dir, meta, ok, err := b.Layers.Pull(ctx, b.Remote, key, inputs, b.Remote.String(), b.log())
			if err != nil {
				return res, fmt.Errorf("build %s: %w", n.Name, err)
			}
			if ok {
				res.CacheHit, res.From, res.State, res.Layer, res.Files, res.Bytes, res.Digest = true, FromRemote, StatePulled, dir, meta.Files, meta.Bytes, meta.Digest
				finish()
				emit(event.Event{Kind: event.ComponentCached, Component: n.Name, Version: n.Version, Message: "remote"})
				b.log().Debug("pulled", "target", t.Name, "component", n.Name, "key", shortKey(key), "from", b.Remote.String())
				return res, nil
			}
		}
	}
	res.From, res.State = FromBuild, StateBuilt
	if err := prepare(ComponentPackages(n, t)); err != nil {
		return res, err
	}
	res.Start = time.Now() // after the runner is ready: the build itself
	emit(event.Event{Kind: event.ComponentStarted, Component: n.Name, Version: n.Version})
	b.log().Debug("building", "target", t.Name, "component", n.Name, "version", n.Version, "key", shortKey(key))

	s := n.Component.Software
	work := filepath.Join(b.WorkDir, n.Name)
	archive.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return res, err
	}
	logPath := filepath.Join(work, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return res, err
	}
	tail := newTail(50)
	lines := stepLines(n.Name, emit)
	defer lines.Flush()
	log := io.MultiWriter(logFile, tail, lines)
	failed := true
	defer func() {
		logFile.Close()
		if failed && b.KeepFailed {
			return
		}
		// Keep the log beside the work dir for the record; drop the rest.
		keep := filepath.Join(b.WorkDir, "logs", n.Name+".log")
		os.MkdirAll(filepath.Dir(keep), 0o755)
		os.Rename(logPath, keep)
		if res.Log == logPath {
			res.Log = keep
		}
		archive.RemoveAll(work)
	}()
	res.Log = logPath

	// The run's job server, where the runner can pass it into the build.
	js := b.Jobserver
	if js != nil && !runner.SharesJobserver(b.Runner) {
		js = nil
	}
	job, fetched, err := b.stageJob(ctx, pl, p, root, t, n, work, js != nil)
	if err != nil {
		return res, err
	}
	pending, err := b.Layers.begin(key)
	if err != nil {
		return res, err
	}
	scratch := filepath.Join(work, "scratch")
	os.MkdirAll(scratch, 0o755)
	job.Output, job.Scratch, job.Log = pending.layerDir(), scratch, log
	job.KeepFailed, job.NoCache, job.Debug = b.KeepFailed, b.NoCache, b.Debug
	job.OnStep = onStep(job, logFile, tail, lines, n.Name, emit)
	for _, d := range deps {
		job.Layers = append(job.Layers, d.Dir)
	}
	if js != nil {
		if err := js.Acquire(ctx); err != nil {
			pending.discard()
			return res, err
		}
		job.Jobserver = js
	}
	err = b.Runner.Run(ctx, job)
	if js != nil {
		js.Release()
	}
	if err == nil {
		err = collectLicenses(s, n.Name, job.Source, job.Dir, pending.layerDir())
	}
	if err != nil {
		pending.discard()
		lines.Flush()
		var se *runner.StepError
		ev := event.Event{Kind: event.ComponentFailed, Component: n.Name, Version: n.Version, Seconds: time.Since(res.Start).Seconds(), Error: firstLine(err)}
		switch {
		case ctx.Err() != nil && !errors.As(err, &se):
			// Stopped because a sibling failed, or the run was
			// interrupted: not a failure of its own.
			ev.Kind, ev.Error = event.ComponentCancelled, ""
		case errors.As(err, &se):
			ev.Step = fmt.Sprintf("%d/%d %s", se.Step+1, len(job.Steps), se.StepName)
		}
		emit(ev)
		if errors.As(err, &se) {
			se.Component, se.Tail, se.LogPath = n.Name, tail.lines(), logPath
			if b.KeepFailed {
				se.WorkDir = work
			} else {
				se.LogPath = filepath.Join(b.WorkDir, "logs", n.Name+".log")
			}
		}
		if ctx.Err() != nil && se == nil {
			return res, ctx.Err()
		}
		return res, err
	}
	finish()
	logFile.Sync()
	layer, err := pending.commit(LayerMeta{Component: n.Name, Version: n.Version, Target: t.Name, BuiltAt: res.End, Seconds: res.Seconds, Inputs: inputs}, logPath, "")
	if err != nil {
		pending.discard()
		return res, fmt.Errorf("build %s: store layer: %w", n.Name, err)
	}
	failed = false
	b.history().Record(n.Name, HistoryEntry{Seconds: res.Seconds, SourceBytes: fetched.Bytes, At: res.End})
	res.Layer = layer
	if _, meta, ok := b.Layers.Lookup(key); ok {
		res.Digest = meta.Digest
	}
	res.Files, res.Bytes, _ = treeSize(layer)
	res.Log = filepath.Join(filepath.Dir(layer), "build.log")
	b.share(key, layer, false)
	if b.Remote != nil && b.Remote.Pushes() && b.up != nil && b.Fetcher != nil && fetched != nil {
		// Its source too, so that a machine that must build it again
		// finds it in the same place.
		b.up.start(func() error { return b.Fetcher.Share(b.upCtx, fetched) })
	}
	lines.Flush()
	emit(event.Event{Kind: event.ComponentFinished, Component: n.Name, Version: n.Version, Seconds: res.Seconds})
	b.log().Debug("built", "target", t.Name, "component", n.Name, "seconds", fmt.Sprintf("%.1f", res.Seconds), "files", res.Files)
	return res, nil
}

// stageJob lays out n's source in work/src (fetched, unpacked, patched)
// and makes its job: the steps and the environment they get. Output,
// Scratch, Log and Layers are the caller's to fill in.
func (b *Builder) stageJob(ctx context.Context, pl *plan.Plan, p *spec.Project, root string, t target.Target, n *plan.Node, work string, jobserver bool) (*runner.Job, *fetch.Result, error) {
	s := n.Component.Software
	vars := stepVars(pl, p, t, n, b.MakeJobs)
	req := fetch.Request{Name: n.Name, Version: n.Version, Source: n.Component.Source}
	fetched, err := b.Fetcher.Fetch(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	src := filepath.Join(work, "src")
	dir, err := prepareSource(fetched.Path, req.FileName(), src, archive.Digest{Algo: fetched.Algo, Hex: fetched.Hex}, s, vars)
	var corrupt *archive.DigestError
	if errors.As(err, &corrupt) {
		// The cache's bytes are not what the entry is named for: evicted,
		// fetched again (offline, that fails naming the entry), unpacked
		// again.
		entry := "sources/" + fetch.Key(req.Source)
		msg := fmt.Sprintf("cache entry %s is corrupt (its content hashes to %s:%s)", entry, corrupt.Want.Algo, corrupt.Got)
		if err := b.Fetcher.Cache.Evict(ctx, fetch.Key(req.Source)); err != nil {
			return nil, nil, err
		}
		if fetched, err = b.Fetcher.Fetch(ctx, req); err != nil {
			return nil, nil, &fetch.CorruptError{Entry: entry, Message: msg, Err: err}
		}
		b.log().Warn(msg+"; fetched it again", "component", n.Name)
		dir, err = prepareSource(fetched.Path, req.FileName(), src, archive.Digest{Algo: fetched.Algo, Hex: fetched.Hex}, s, vars)
		if errors.As(err, &corrupt) {
			return nil, nil, &fetch.CorruptError{Entry: entry, Message: msg + "; fetched again, it is still not the pinned bytes", Err: err}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("build %s: source: %w", n.Name, err)
	}
	patches, err := copyPatches(root, s, src)
	if err != nil {
		return nil, nil, fmt.Errorf("build %s: %w", n.Name, err)
	}
	steps, err := jobSteps(s, patches, vars)
	if err != nil {
		return nil, nil, fmt.Errorf("build %s: %w", n.Name, err)
	}
	env, err := jobEnv(vars, s.Env, jobserver)
	if err != nil {
		return nil, nil, fmt.Errorf("build %s: %w", n.Name, err)
	}
	job := &runner.Job{
		Component: n.Name, Version: n.Version, Target: t, Arch: pl.Arch, Packages: ComponentPackages(n, t),
		Source: src, Dir: dir, InstallDir: p.InstallDir, Env: env, Steps: steps, Timeout: spec.Duration(s.Timeout),
	}
	for _, f := range s.LicenseFiles {
		job.Collect = append(job.Collect, filepath.Join(dir, filepath.FromSlash(f)))
	}
	return job, fetched, nil
}

// stepVars are the values n's templates render with for t, makeJobs
// (at least 1) as {{.Jobs}}.
func stepVars(pl *plan.Plan, p *spec.Project, t target.Target, n *plan.Node, makeJobs int) spec.StepVars {
	return spec.StepVars{Name: n.Name, Version: n.Version, InstallDir: p.InstallDir, Embedded: p.Embedded(),
		Jobs: max(makeJobs, 1), Target: t.Name, Format: t.Format, Arch: pl.Arch, Multiarch: target.Multiarch(pl.Arch)}
}

// collectLicenses copies the definition's license_files from the source
// tree into the layer, at LICENSES/<component>/, so that every package
// carries the licenses of what it ships.
func collectLicenses(s *spec.Software, name, srcTop, dir, layer string) error {
	if len(s.LicenseFiles) == 0 {
		return nil
	}
	src, err := confine.Open(srcTop)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := confine.Open(layer)
	if err != nil {
		return err
	}
	defer dst.Close()
	for _, f := range s.LicenseFiles {
		err := confine.CopyFileMax(src, filepath.Join(dir, filepath.FromSlash(f)), dst, filepath.Join("LICENSES", name, filepath.Base(f)), 0o644, confine.MaxTextBytes)
		if err != nil {
			return fmt.Errorf("build %s: license file %s (license_files in software/%s.yaml): %w", name, f, name, err)
		}
	}
	// Owned like the rest of the layer, by the build's user: a layer is a
	// lower directory of its dependents' sandboxes.
	return userns.ChownTree(filepath.Join(layer, "LICENSES"))
}

func shortKey(k string) string {
	k = strings.TrimPrefix(k, "sha256:")
	if len(k) > 12 {
		return k[:12]
	}
	return k
}

// DefaultJobs is the default number of parallel components and make jobs.
func DefaultJobs() int { return runtime.NumCPU() }

// tail keeps the last n lines written to it.
type tail struct {
	mu      sync.Mutex
	n       int
	buf     []string
	partial []byte
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	data := append(t.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		t.buf = append(t.buf, string(data[:i]))
		if len(t.buf) > t.n {
			t.buf = t.buf[len(t.buf)-t.n:]
		}
		data = data[i+1:]
	}
	t.partial = append(t.partial[:0], data...)
	return len(p), nil
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.buf)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
	}
	if len(out) > t.n {
		out = out[len(out)-t.n:]
	}
	return out
}

// stepLines turns a component's output into output events, every line as
// it is: step boundaries come as calls (Job.OnStep), never from the text.
func stepLines(component string, emit func(event.Event)) *event.LineWriter {
	return event.NewLineWriter(func(line string) {
		emit(event.Event{Kind: event.ComponentOutput, Component: component, Line: line})
	})
}

// onStep is a job's step reporter: the output so far is flushed, the
// header goes to the log file (for the person reading it) and the step
// becomes an event.
func onStep(job *runner.Job, logFile io.Writer, tail *tail, lines *event.LineWriter, component string, emit func(event.Event)) func(int) {
	return func(i int) {
		lines.Flush()
		header := runner.StepHeaderLine(job, i)
		io.WriteString(logFile, header)
		io.WriteString(tail, header)
		emit(event.Event{Kind: event.ComponentStep, Component: component, Step: label(fmt.Sprintf("%d/%d: %s", i+1, len(job.Steps), job.Steps[i].Name))})
	}
}

// firstLine is an error's first line, for an event that names it.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// sweepPartials removes the half-unpacked sources that killed runs left in
// the components' work directories (each named after its process).
func (b *Builder) sweepPartials() {
	entries, _ := os.ReadDir(b.WorkDir)
	for _, e := range entries {
		if e.IsDir() {
			archive.SweepPartials(filepath.Join(b.WorkDir, e.Name()))
		}
	}
}

// TreeDigest identifies the merged tree by its layers' content digests, in
// merge order; "" when a layer has none (a build from before digests).
func (res *Result) TreeDigest() string {
	type layer struct{ Component, Digest string }
	var layers []layer
	for _, c := range res.Components {
		if c.Digest == "" {
			return ""
		}
		layers = append(layers, layer{c.Name, c.Digest})
	}
	return digest.JSON(struct {
		InstallDir string
		Layers     []layer
	}{res.InstallDir, layers})
}

// share pushes the layer of key (dir) to the remote cache, when it takes
// pushes, in the background; Build waits for it. ifMissing asks the
// remote first (a layer this machine had cached may be there already).
func (b *Builder) share(key, dir string, ifMissing bool) {
	if b.Remote == nil || !b.Remote.Pushes() || b.up == nil {
		return
	}
	ctx := b.upCtx
	b.up.start(func() error {
		if ifMissing {
			has, err := b.Remote.HasLayer(ctx, key)
			if err != nil || has {
				return err
			}
		}
		meta, err := b.Layers.MetaJSON(key)
		if err != nil {
			return nil // evicted meanwhile: nothing to share
		}
		tmp := filepath.Join(b.Layers.Dir, "tmp")
		return b.Remote.PushLayer(ctx, key, dir, meta, tmp)
	})
}
