package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/plan"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/runner/fake"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

func softwareDef(name, deps, extra string) string {
	return "name: " + name + "\nlicense: MIT\ndependencies: [" + deps + "]\nversions:\n  - {version: 1.0.0, path: " + name + "}\n" +
		"build:\n  - ./configure --prefix={{.Embedded}}\n  - make -j{{.Jobs}} install\n" + extra
}

// testRepo writes four components: zlib, pcre2 (needs zlib), libyaml and xz.
func testRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"projects/app.yaml":        "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12, debian-13]\nsoftware: [pcre2, libyaml, xz]\n",
		"software/zlib.yaml":       softwareDef("zlib", "", ""),
		"software/pcre2.yaml":      softwareDef("pcre2", "zlib", "patches: [fix.patch]\nbuild_packages: {deb: [autoconf]}\n"),
		"software/libyaml.yaml":    softwareDef("libyaml", "", ""),
		"software/xz.yaml":         softwareDef("xz", "", "env: {CFLAGS: \"-O3 -I{{.Embedded}}/include\"}\n"),
		"software/pcre2/fix.patch": "--- a/x\n+++ b/x\n",
	}
	for _, n := range []string{"zlib", "pcre2", "libyaml", "xz"} {
		files["software/"+n+"/configure"] = "#!/bin/sh\n"
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	return root
}

type fixture struct {
	root    string
	cache   string
	runner  *fake.Runner
	builder *Builder
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{root: testRepo(t), cache: t.TempDir(), runner: &fake.Runner{}}
	f.builder = &Builder{Runner: f.runner, Layers: &LayerCache{Dir: filepath.Join(f.cache, "layers")}, WorkDir: filepath.Join(f.cache, "work"), Jobs: 2, MakeJobs: 4}
	f.builder.Fetcher = &fetch.Fetcher{Cache: &fetch.Cache{Dir: filepath.Join(f.cache, "sources")}, Root: f.root}
	return f
}

func (f *fixture) build(t *testing.T, tgt string) (*Result, error) {
	t.Helper()
	prep, err := prepare(f.root, tgt)
	if err != nil {
		t.Fatal(err)
	}
	tg, _ := target.Builtin(tgt)
	return f.builder.Build(context.Background(), prep.Plan, prep.Project, f.root, tg)
}

func (f *fixture) edit(t *testing.T, name, old, new string) {
	t.Helper()
	p := filepath.Join(f.root, "software", name+".yaml")
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

func TestBuildParallelCachedIncremental(t *testing.T) {
	f := newFixture(t)
	f.runner.Delay = 300 * time.Millisecond
	res, err := f.build(t, "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.runner.Built(); !slices.Equal(got, []string{"libyaml", "pcre2", "xz", "zlib"}) {
		t.Fatalf("built %v", got)
	}
	// Independent components overlapped; pcre2 started after zlib ended.
	calls := map[string]fake.Call{}
	for _, c := range f.runner.Calls() {
		calls[c.Component] = c
	}
	overlaps := 0
	names := []string{"libyaml", "xz", "zlib"}
	for i, a := range names {
		for _, b := range names[i+1:] {
			if calls[a].Start.Before(calls[b].End) && calls[b].Start.Before(calls[a].End) {
				overlaps++
			}
		}
	}
	if overlaps == 0 {
		t.Error("no independent components overlapped with --jobs 2")
	}
	if calls["pcre2"].Start.Before(calls["zlib"].End) {
		t.Error("pcre2 started before zlib was built")
	}
	// pcre2 saw exactly zlib's layer.
	zlibLayer := ""
	for _, c := range res.Components {
		if c.Name == "zlib" {
			zlibLayer = c.Layer
		}
	}
	if !slices.Equal(calls["pcre2"].Layers, []string{zlibLayer}) || len(calls["xz"].Layers) != 0 {
		t.Errorf("pcre2 layers %v, xz layers %v", calls["pcre2"].Layers, calls["xz"].Layers)
	}
	// Patches run first, templates are expanded, the environment is set.
	job := calls["pcre2"].Job
	if job.Steps[0].Name != "patch 01-fix.patch" || !slices.Contains(job.Steps[0].Argv, runner.SourceMount+"/.coach-patches/01-fix.patch") {
		t.Errorf("first step = %+v", job.Steps[0])
	}
	if got := job.Steps[1].Argv; !slices.Equal(got, []string{"/bin/sh", "-e", "-c", "./configure --prefix=/opt/app/embedded"}) {
		t.Errorf("configure step = %v", got)
	}
	if got := job.Steps[2].Argv[3]; got != "make -j4 install" {
		t.Errorf("make step = %q", got)
	}
	for _, want := range []string{"LDFLAGS=-L/opt/app/embedded/lib -Wl,-rpath,/opt/app/embedded/lib", "PKG_CONFIG_PATH=/opt/app/embedded/lib/pkgconfig:/opt/app/embedded/share/pkgconfig", "HOME=" + runner.HomeDir} {
		if !slices.Contains(job.Env, want) {
			t.Errorf("env lacks %s", want)
		}
	}
	if !slices.Contains(calls["xz"].Job.Env, "CFLAGS=-O3 -I/opt/app/embedded/include") {
		t.Error("xz's env does not override CFLAGS")
	}
	// Each package set's environment once: the base for the components
	// without build packages, pcre2's with autoconf.
	if got := f.runner.Prepared(); len(got) != 2 || !slices.Contains(got, "debian-12/amd64 []") || !slices.Contains(got, "debian-12/amd64 [autoconf]") {
		t.Errorf("prepared %v", got)
	}
	if got := calls["pcre2"].Job.Packages; !slices.Equal(got, []string{"autoconf"}) {
		t.Errorf("pcre2's job has packages %v, want its own", got)
	}
	if got := calls["zlib"].Job.Packages; len(got) != 0 {
		t.Errorf("zlib's job has packages %v, want none (pcre2's are its own)", got)
	}
	// The merged tree holds every layer under the install dir.
	for _, n := range []string{"zlib", "pcre2", "libyaml", "xz"} {
		if _, err := os.Stat(filepath.Join(res.Tree, "opt/app/embedded/share", n, "built")); err != nil {
			t.Errorf("tree lacks %s: %v", n, err)
		}
	}

	rebuilt := func() []string {
		t.Helper()
		f.runner = &fake.Runner{}
		f.builder.Runner = f.runner
		res, err := f.build(t, "debian-12")
		if err != nil {
			t.Fatal(err)
		}
		var hits []string
		for _, c := range res.Components {
			if c.CacheHit {
				hits = append(hits, c.Name)
			}
		}
		if len(hits)+len(f.runner.Built()) != 4 {
			t.Fatalf("hits %v + built %v != 4", hits, f.runner.Built())
		}
		return f.runner.Built()
	}
	if got := rebuilt(); len(got) != 0 {
		t.Errorf("no-op rebuild built %v", got)
	}
	f.edit(t, "pcre2", "make -j{{.Jobs}} install", "make -j{{.Jobs}} install-strip")
	if got := rebuilt(); !slices.Equal(got, []string{"pcre2"}) {
		t.Errorf("after editing pcre2, built %v", got)
	}
	// An edit of zlib that leaves its layer byte-identical stops there.
	f.edit(t, "zlib", "make -j{{.Jobs}} install", "make install")
	if got := rebuilt(); !slices.Equal(got, []string{"zlib"}) {
		t.Errorf("after editing zlib into the same layer, built %v", got)
	}
	os.WriteFile(filepath.Join(f.root, "software/libyaml/configure"), []byte("#!/bin/sh\n# changed source\n"), 0o755)
	if got := rebuilt(); !slices.Equal(got, []string{"libyaml"}) {
		t.Errorf("after changing libyaml's source, built %v", got)
	}
	// Another target has its own keys.
	f.runner = &fake.Runner{}
	f.builder.Runner = f.runner
	if _, err := f.build(t, "debian-13"); err != nil || len(f.runner.Built()) != 4 {
		t.Errorf("debian-13 built %v: %v", f.runner.Built(), err)
	}
}

// TestEarlyCutoff edits inputs one at a time and checks the exact set of
// components each edit rebuilds: a component is rebuilt when its own
// inputs, its build environment or the content of a layer it builds
// against changed, and only then.
func TestEarlyCutoff(t *testing.T) {
	f := newFixture(t)
	f.builder.Jobs = 1
	build := func(outputs map[string]map[string]string) []string {
		t.Helper()
		f.runner = &fake.Runner{Outputs: outputs}
		f.builder.Runner = f.runner
		if _, err := f.build(t, "debian-12"); err != nil {
			t.Fatal(err)
		}
		got := f.runner.Built()
		slices.Sort(got)
		return got
	}
	zlibV2 := map[string]map[string]string{"zlib": {"embedded/lib/libz.so.1": "zlib, changed\n"}}
	build(nil)
	for _, c := range []struct {
		edit    string
		do      func()
		outputs map[string]map[string]string
		want    []string
	}{
		{"nothing", func() {}, nil, nil},
		{"zlib: an unused env var, same layer", func() { f.edit(t, "zlib", "build:\n", "env: {UNUSED: x}\nbuild:\n") }, nil, []string{"zlib"}},
		{"zlib: a step that changes its layer", func() { f.edit(t, "zlib", "make -j{{.Jobs}} install", "make install") }, zlibV2, []string{"pcre2", "zlib"}},
		{"nothing again, zlib's new layer cached", func() {}, zlibV2, nil},
		{"pcre2: its own step", func() { f.edit(t, "pcre2", "make -j{{.Jobs}} install", "make -j{{.Jobs}} install-strip") }, zlibV2, []string{"pcre2"}},
		{"xz: its source", func() {
			os.WriteFile(filepath.Join(f.root, "software/xz/configure"), []byte("#!/bin/sh\n# new\n"), 0o755)
		}, zlibV2, []string{"xz"}},
		{"libyaml: build_packages (its own environment, not the others')", func() {
			f.edit(t, "libyaml", "build:\n", "build_packages: {deb: [libncurses-dev]}\nbuild:\n")
		}, zlibV2, []string{"libyaml"}},
		{"libyaml: one more build package", func() {
			f.edit(t, "libyaml", "[libncurses-dev]", "[libncurses-dev, cmake]")
		}, zlibV2, []string{"libyaml"}},
		{"zlib: build_packages, the same layer: pcre2 is not rebuilt", func() {
			f.edit(t, "zlib", "build:\n", "build_packages: {deb: [cmake]}\nbuild:\n")
		}, zlibV2, []string{"zlib"}},
		{"zlib: another build package that changes its layer", func() {
			f.edit(t, "zlib", "[cmake]", "[cmake, nasm]")
		}, map[string]map[string]string{"zlib": {"embedded/lib/libz.so.1": "zlib, built with nasm\n"}}, []string{"pcre2", "zlib"}},
	} {
		c.do()
		if got := build(c.outputs); !slices.Equal(got, c.want) {
			t.Errorf("after %s: built %v, want %v", c.edit, got, c.want)
		}
	}
}

func TestBuildFailureReportsTheStep(t *testing.T) {
	for _, keep := range []bool{false, true} {
		f := newFixture(t)
		f.builder.KeepFailed = keep
		f.runner.FailAt = map[string]int{"pcre2": 2}
		_, err := f.build(t, "debian-12")
		var se *runner.StepError
		if !errors.As(err, &se) {
			t.Fatalf("want a step error, got %v", err)
		}
		if se.Component != "pcre2" || se.Step != 2 || se.ExitCode != 2 || se.StepName != "make -j4 install" {
			t.Errorf("step error = %+v", se)
		}
		msg := err.Error()
		for _, want := range []string{"build pcre2: step 3 (make -j4 install) exited with code 2", "error: step 3 of pcre2 failed on purpose", "full log: "} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q:\n%s", want, msg)
			}
		}
		if _, err := os.Stat(se.LogPath); err != nil {
			t.Errorf("log %s: %v", se.LogPath, err)
		}
		if keep {
			if _, err := os.Stat(filepath.Join(se.WorkDir, "src", "configure")); err != nil {
				t.Errorf("--keep-failed did not keep the work dir: %v", err)
			}
		} else if se.WorkDir != "" {
			t.Errorf("work dir reported without --keep-failed")
		}
		// Nothing of pcre2 is cached: a retry builds it again.
		f.runner.FailAt = nil
		f.runner = &fake.Runner{}
		f.builder.Runner = f.runner
		if _, err := f.build(t, "debian-12"); err != nil {
			t.Fatal(err)
		}
		if built := f.runner.Built(); !slices.Contains(built, "pcre2") {
			t.Errorf("pcre2 was not rebuilt after failing: %v", built)
		}
	}
}

func TestBuildConflictNamesBothComponents(t *testing.T) {
	f := newFixture(t)
	f.runner.Outputs = map[string]map[string]string{
		"zlib":    {"embedded/lib/libz.so.1": "zlib"},
		"xz":      {"embedded/lib/libz.so.1": "xz's copy", "embedded/bin/xz": "xz"},
		"pcre2":   {"embedded/lib/libpcre2.so": "p"},
		"libyaml": {"embedded/lib/libyaml.so": "y"},
	}
	_, err := f.build(t, "debian-12")
	var ce *ConflictError
	if !errors.As(err, &ce) || len(ce.Conflicts) != 1 || ce.Conflicts[0] != (Conflict{"embedded/lib/libz.so.1", "xz", "zlib"}) {
		t.Fatalf("want one conflict naming zlib and xz, got %v", err)
	}
}

func TestBuildCancelLeavesNoLayer(t *testing.T) {
	f := newFixture(t)
	f.runner.Delay = 5 * time.Second
	prep, err := prepare(f.root, "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	tg, _ := target.Builtin("debian-12")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = f.builder.Build(ctx, prep.Plan, prep.Project, f.root, tg)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancelled build: %v after %v", err, time.Since(start))
	}
	entries, _ := os.ReadDir(f.builder.Layers.Dir)
	for _, e := range entries {
		if e.Name() != "tmp" {
			t.Errorf("a layer was committed: %s", e.Name())
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(f.builder.Layers.Dir, "tmp"))
	if len(tmp) != 0 {
		t.Errorf("temporary layers left: %d", len(tmp))
	}
}

func TestCriticalPathFirst(t *testing.T) {
	f := newFixture(t)
	f.builder.Jobs = 1
	if _, err := f.build(t, "debian-12"); err != nil {
		t.Fatal(err)
	}
	calls := f.runner.Calls()
	if calls[0].Component != "zlib" {
		t.Errorf("with one job, %s built first; zlib has pcre2 waiting on it", calls[0].Component)
	}
}

// envRunner is the fake runner with a build environment identity.
type envRunner struct {
	*fake.Runner
	id func(t target.Target, arch string, packages []string) string
}

func (e envRunner) EnvironmentID(t target.Target, arch string, packages []string) string {
	return e.id(t, arch, packages)
}

func rebuilt(res *Result) []string {
	var out []string
	for _, c := range res.Components {
		if !c.CacheHit {
			out = append(out, c.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestLayerKeyCoversTheEnvironment: a layer is never reused from another
// build environment. The sandbox's environment is the target's base root
// with the component's own build_packages over it, so adding a package to
// one component's build_packages rebuilds that component (and its
// dependents only if its layer changed); and a layer of one runner is
// never taken by another.
func TestLayerKeyCoversTheEnvironment(t *testing.T) {
	f := newFixture(t)
	sandboxEnv := func(tg target.Target, arch string, pkgs []string) string {
		return (&sandbox.Runner{}).EnvironmentID(tg, arch, pkgs)
	}
	f.builder.Runner = envRunner{f.runner, sandboxEnv}
	all := []string{"libyaml", "pcre2", "xz", "zlib"}
	res, err := f.build(t, "debian-12")
	if err != nil || !slices.Equal(rebuilt(res), all) {
		t.Fatalf("first build: %v %v", rebuilt(res), err)
	}
	if res, err = f.build(t, "debian-12"); err != nil || len(rebuilt(res)) != 0 {
		t.Fatalf("no-op: rebuilt %v %v", rebuilt(res), err)
	}
	// One component's build_packages: that component's environment
	// changes, no other's.
	for _, c := range []string{"xz", "zlib"} {
		p := filepath.Join(f.root, "software", c+".yaml")
		b, _ := os.ReadFile(p)
		os.WriteFile(p, append(b, []byte("build_packages: {deb: [libncurses-dev]}\n")...), 0o644)
		if res, err = f.build(t, "debian-12"); err != nil || !slices.Equal(rebuilt(res), []string{c}) {
			t.Errorf("after %s's build_packages changed, rebuilt %v (want %s alone) %v", c, rebuilt(res), c, err)
		}
	}
	// The same definitions in another runner's environment: nothing is
	// taken from the sandbox's layers.
	f.builder.Runner = envRunner{f.runner, func(tg target.Target, arch string, pkgs []string) string { return "dagger " + tg.Image }}
	if res, err = f.build(t, "debian-12"); err != nil || !slices.Equal(rebuilt(res), all) {
		t.Errorf("in another environment, rebuilt %v (want every component) %v", rebuilt(res), err)
	}
}

type prepared struct {
	Project *spec.Project
	Plan    *plan.Plan
}

// prepare loads, resolves and plans the fixture's app for one target, as
// pipeline.Prepare does (which this package cannot import).
func prepare(root, tgt string) (*prepared, error) {
	repo, err := spec.Load(root)
	if err != nil {
		return nil, err
	}
	p, err := repo.Project("app")
	if err != nil {
		return nil, err
	}
	res, err := resolve.Resolve(repo, p, resolve.Options{})
	if err != nil {
		return nil, err
	}
	ts, err := p.SelectTargets([]string{tgt})
	if err != nil {
		return nil, err
	}
	pl, err := plan.New(p, res, ts, target.HostArch())
	if err != nil {
		return nil, err
	}
	return &prepared{p, pl}, nil
}

// TestSiblingIsCancelledNotFailed: when one component fails, one that was
// stopped because of it is reported cancelled, not failed; the failure
// names its step.
func TestSiblingIsCancelledNotFailed(t *testing.T) {
	f := newFixture(t)
	f.runner.FailAt = map[string]int{"zlib": 1}
	f.runner.Delay = 5 * time.Second
	var mu sync.Mutex
	kinds := map[string]event.Event{}
	f.builder.Events = func(e event.Event) {
		if e.Kind == event.ComponentFailed || e.Kind == event.ComponentCancelled {
			mu.Lock()
			kinds[e.Component] = e
			mu.Unlock()
		}
	}
	res, err := f.build(t, "debian-12")
	if err == nil {
		t.Fatal("the build did not fail")
	}
	// The failed build still says what each component came to.
	states := map[string]string{}
	if res != nil {
		for _, c := range res.Components {
			states[c.Name] = c.State
		}
	}
	if states["zlib"] != StateFailed || states["pcre2"] != StateNotStarted || len(states) != 4 {
		t.Errorf("states %v", states)
	}
	for _, name := range []string{"libyaml", "xz"} {
		if st := states[name]; st != StateCancelled && st != StateNotStarted {
			t.Errorf("%s: %s", name, st)
		}
	}
	if e := kinds["zlib"]; e.Kind != event.ComponentFailed || e.Step != "2/2 make -j4 install" {
		t.Errorf("zlib: %+v", e)
	}
	cancelled := 0
	for name, e := range kinds {
		if name != "zlib" {
			if e.Kind != event.ComponentCancelled || e.Error != "" {
				t.Errorf("%s: %+v", name, e)
			}
			cancelled++
		}
	}
	if cancelled == 0 {
		t.Error("no sibling was cancelled")
	}
}

// TestDaggerKeyCoversTheImage: pinning a target's image by digest (what
// coach lock does with an engine) rebuilds every component in the Dagger
// runner's environment, whose base the image is, and none in the
// sandbox's, which never reads it.
func TestDaggerKeyCoversTheImage(t *testing.T) {
	build := func(f *fixture, image string) []string {
		t.Helper()
		repo, err := spec.Load(f.root)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := repo.Project("app")
		res, err := resolve.Resolve(repo, p, resolve.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ts, err := p.SelectTargets([]string{"debian-12"})
		if err != nil {
			t.Fatal(err)
		}
		if image != "" {
			ts[0].Image = image
		}
		pl, err := plan.New(p, res, ts, target.HostArch())
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.builder.Build(context.Background(), pl, p, f.root, ts[0])
		if err != nil {
			t.Fatal(err)
		}
		return rebuilt(r)
	}
	pin := "docker.io/library/debian@sha256:" + strings.Repeat("d", 64)
	for _, c := range []struct {
		runner string
		id     func(target.Target, string, []string) string
		want   int // components rebuilt once the image is pinned
	}{
		{"sandbox", (&sandbox.Runner{}).EnvironmentID, 0},
		{"dagger", (&dagger.Runner{}).EnvironmentID, 4},
	} {
		f := newFixture(t)
		f.builder.Runner = envRunner{f.runner, c.id}
		if got := build(f, ""); len(got) != 4 {
			t.Fatalf("%s: first build rebuilt %v", c.runner, got)
		}
		if got := build(f, pin); len(got) != c.want {
			t.Errorf("%s: with the image pinned, rebuilt %v, want %d components", c.runner, got, c.want)
		}
	}
}
