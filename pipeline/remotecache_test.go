package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/remote"
	"github.com/coach-build/coach/pipeline/remote/remotetest"
	"github.com/coach-build/coach/pipeline/runner/fake"
)

// machine is the corrupt fixture's repository on another machine: its own
// empty cache and runner.
func (f *corruptFixture) machine(t *testing.T) *corruptFixture {
	t.Helper()
	m := &corruptFixture{repo: f.repo, cache: t.TempDir(), upstream: f.upstream, sums: f.sums}
	m.runner = &fake.Runner{Outputs: f.runner.Outputs}
	return m
}

func froms(res *BuildResult) map[string]string {
	out := map[string]string{}
	for _, c := range res.Targets[0].Components {
		out[c.Name] = c.From
	}
	return out
}

// TestRemoteCacheTwoMachines: the first machine builds and pushes; the
// second, with an empty cache and its sources' upstream gone, pulls every
// layer and builds nothing, and packages the same bytes.
func TestRemoteCacheTwoMachines(t *testing.T) {
	reg := remotetest.Start(t)
	ref := "oci://" + reg.Host + "/team/coach-cache"
	first := newCorruptFixture(t)
	res1, err := first.build(t, BuildRequest{Remote: RemoteCache{To: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res1); got["plain"] != build.FromBuild || got["gz"] != build.FromBuild {
		t.Fatalf("first machine: %v", got)
	}
	if rc := res1.RemoteCache; rc == nil || rc.Pushed != 4 { // 2 layers, 2 sources
		t.Fatalf("first machine pushed %+v", rc)
	}
	// The second machine cannot reach upstream: sources and layers come
	// from the registry alone.
	os.RemoveAll(first.upstream)
	second := first.machine(t)
	res2, err := second.build(t, BuildRequest{Remote: RemoteCache{From: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res2); got["plain"] != build.FromRemote || got["gz"] != build.FromRemote {
		t.Errorf("second machine: %v", got)
	}
	if built := second.runner.Built(); len(built) != 0 {
		t.Errorf("the second machine built %v", built)
	}
	if debSum(t, res1) != debSum(t, res2) {
		t.Error("the two machines packaged different bytes")
	}
	if rc := res2.RemoteCache; rc == nil || rc.Pulled != 2 || rc.PulledBytes == 0 || rc.Pushed != 0 {
		t.Errorf("second machine moved %+v", rc)
	}
	// Again on the second machine: its own cache now.
	res3, err := second.build(t, BuildRequest{Remote: RemoteCache{From: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res3); got["plain"] != build.FromLocal {
		t.Errorf("second run: %v", got)
	}
	// A third machine that must build one component (--no-cache is not
	// it; a changed output is) finds its source in the registry.
	third := first.machine(t)
	third.runner.Outputs = map[string]map[string]string{"plain": {"etc/plain.conf": "x\n"}, "gz": {"etc/gz.conf": "greeting=Hello\n"}}
	if _, err := third.build(t, BuildRequest{NoCache: true, Remote: RemoteCache{From: ref}}); err != nil {
		t.Fatalf("building from the registry's sources: %v", err)
	}
}

// TestRemoteCacheTamperedEntry: an entry whose tree is not the one its
// metadata records (another tar pushed under the key) is refused with a
// clear message, and the component is built here; with --cache-to the
// good layer then replaces it.
func TestRemoteCacheTamperedEntry(t *testing.T) {
	reg := remotetest.Start(t)
	ref := "oci://" + reg.Host + "/team/coach-cache"
	first := newCorruptFixture(t)
	res1, err := first.build(t, BuildRequest{Remote: RemoteCache{To: ref}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := first.layer(t, res1, "plain")
	// Push another tree under plain's key, with plain's metadata.
	c := build.LayerCache{Dir: filepath.Join(first.cache, "layers")}
	meta, err := c.MetaJSON(key)
	if err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(t.TempDir(), "layer")
	os.MkdirAll(filepath.Join(evil, "etc"), 0o755)
	os.WriteFile(filepath.Join(evil, "etc", "plain.conf"), []byte("greeting=Owned\n"), 0o644)
	w, err := remote.Open(ref, remote.Options{Push: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.PushLayer(context.Background(), key, evil, meta, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	second := first.machine(t)
	res2, err := second.build(t, BuildRequest{Remote: RemoteCache{To: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res2); got["plain"] != build.FromBuild || got["gz"] != build.FromRemote {
		t.Errorf("with a tampered entry: %v", got)
	}
	i := slices.IndexFunc(second.warnings, func(w string) bool {
		return strings.Contains(w, "refused") && strings.Contains(w, "hashes to") && strings.Contains(w, "building it here")
	})
	if i >= 0 {
		t.Log(second.warnings[i])
	} else {
		t.Errorf("no clear refusal among the warnings: %q", second.warnings)
	}
	if debSum(t, res1) != debSum(t, res2) {
		t.Error("the package differs from the first machine's")
	}
	data, _ := os.ReadFile(filepath.Join(res2.Targets[0].Tree, "opt", "app", "etc", "plain.conf"))
	if bytes.Contains(data, []byte("Owned")) {
		t.Error("the tampered tree was used")
	}
	// The second machine pushed the good layer over it.
	third := first.machine(t)
	res3, err := third.build(t, BuildRequest{Remote: RemoteCache{From: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res3); got["plain"] != build.FromRemote {
		t.Errorf("after the good push: %v (warnings %q)", got, third.warnings)
	}
}

// TestRemoteCacheDown: a registry that cannot be reached is said once and
// the build goes on locally; marked required, the build fails.
func TestRemoteCacheDown(t *testing.T) {
	reg := remotetest.Start(t)
	ref := "oci://" + reg.Host + "/team/coach-cache"
	reg.Stop()
	f := newCorruptFixture(t)
	res, err := f.build(t, BuildRequest{Remote: RemoteCache{To: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res); got["plain"] != build.FromBuild || got["gz"] != build.FromBuild {
		t.Errorf("%v", got)
	}
	n := 0
	for _, w := range f.warnings {
		if strings.Contains(w, "cannot be used") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("said %d times: %q", n, f.warnings)
	}
	g := f.machine(t)
	_, err = g.build(t, BuildRequest{Remote: RemoteCache{From: ref, Required: true}})
	var ue *remote.UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("required and down: %v", err)
	}
}

// TestRemoteCacheConcurrentPushers: two machines building and pushing the
// same keys at once both succeed, and a third pulls whole entries.
func TestRemoteCacheConcurrentPushers(t *testing.T) {
	reg := remotetest.Start(t)
	ref := "oci://" + reg.Host + "/team/coach-cache"
	base := newCorruptFixture(t)
	var wg sync.WaitGroup
	var errs [2]error
	var sums [2]string
	for i := range errs {
		m := base.machine(t)
		wg.Go(func() {
			res, err := m.build(t, BuildRequest{Remote: RemoteCache{To: ref}})
			errs[i] = err
			if err == nil {
				sums[i] = res.Release.Artifacts[0].SHA256
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pusher %d: %v", i, err)
		}
	}
	third := base.machine(t)
	res, err := third.build(t, BuildRequest{Remote: RemoteCache{From: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res); got["plain"] != build.FromRemote || got["gz"] != build.FromRemote {
		t.Errorf("%v (warnings %q)", got, third.warnings)
	}
	if debSum(t, res) != sums[0] || sums[0] != sums[1] {
		t.Error("different packages")
	}
}

// TestCachePushPull: a machine that built without a remote cache seeds
// one with coach cache push (layers and sources); another warms its empty
// cache with coach cache pull and then builds nothing.
func TestCachePushPull(t *testing.T) {
	reg := remotetest.Start(t)
	ref := "oci://" + reg.Host + "/team/coach-cache"
	first := newCorruptFixture(t)
	res1, err := first.build(t, BuildRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := CachePush(context.Background(), CacheSyncRequest{Root: first.repo, Project: "app", CacheDir: first.cache, Remote: RemoteCache{To: ref}})
	if err != nil {
		t.Fatal(err)
	}
	states := func(r *CacheSyncResult) string {
		var out []string
		for _, l := range r.Layers {
			out = append(out, l.Component+"="+l.State)
		}
		for _, s := range r.Sources {
			out = append(out, s.Component+"="+s.State)
		}
		return strings.Join(out, " ")
	}
	if got := states(pushed); got != "gz=pushed plain=pushed gz=shared plain=shared" {
		t.Errorf("push: %s", got)
	}
	again, err := CachePush(context.Background(), CacheSyncRequest{Root: first.repo, Project: "app", CacheDir: first.cache, Remote: RemoteCache{To: ref}})
	if err != nil || !strings.HasPrefix(states(again), "gz=present plain=present") {
		t.Errorf("second push: %s, %v", states(again), err)
	}
	second := first.machine(t)
	pulled, err := CachePull(context.Background(), CacheSyncRequest{Root: first.repo, Project: "app", CacheDir: second.cache, Runner: second.runner, Remote: RemoteCache{From: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if got := states(pulled); got != "gz=pulled plain=pulled" {
		t.Errorf("pull: %s", got)
	}
	os.RemoveAll(first.upstream)
	res2, err := second.build(t, BuildRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res2); got["plain"] != build.FromLocal || got["gz"] != build.FromLocal || len(second.runner.Built()) != 0 {
		t.Errorf("after the pull: %v, built %v", got, second.runner.Built())
	}
	if debSum(t, res1) != debSum(t, res2) {
		t.Error("different packages")
	}
	// A registry that cannot be reached fails a push or pull.
	reg.Stop()
	if _, err := CachePull(context.Background(), CacheSyncRequest{Root: first.repo, Project: "app", CacheDir: t.TempDir(), Runner: second.runner, Remote: RemoteCache{From: ref}}); err == nil {
		t.Error("a pull from a registry that is down succeeded")
	}
}

// TestRemoteCacheHealthReport: the second machine takes the health report
// of the same tree from the remote cache instead of checking it against a
// root it would have to make.
func TestRemoteCacheHealthReport(t *testing.T) {
	reg := remotetest.Start(t)
	ref := "oci://" + reg.Host + "/team/coach-cache"
	first := newCorruptFixture(t)
	build := func(f *corruptFixture, rc RemoteCache) *BuildResult {
		t.Helper()
		res, err := Run(context.Background(), BuildRequest{Root: f.repo, Project: "app", Runner: f.runner, CacheDir: f.cache, NoVerify: true,
			OutDir: filepath.Join(t.TempDir(), "pkg"), Remote: rc})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res1 := build(first, RemoteCache{To: ref})
	if res1.Targets[0].Health == nil || res1.RemoteCache.Pushed != 5 { // 2 layers, 2 sources, 1 report
		t.Fatalf("first machine: health %v, pushed %d", res1.Targets[0].Health, res1.RemoteCache.Pushed)
	}
	second := first.machine(t)
	res2 := build(second, RemoteCache{From: ref})
	if res2.RemoteCache.Pulled != 3 { // 2 layers, 1 report
		t.Errorf("second machine pulled %d entries", res2.RemoteCache.Pulled)
	}
	h1, h2 := res1.Targets[0].Health, res2.Targets[0].Health
	if h2 == nil || h2.Files != h1.Files || !slices.Equal(h1.Dependencies, h2.Dependencies) {
		t.Errorf("reports differ: %+v, %+v", h1, h2)
	}
	if debSum(t, res1) != debSum(t, res2) {
		t.Error("different packages")
	}
}
