package pipeline

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/cache"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/runner/fake"
)

// corruptFixture is a repository of two components whose sources are a
// plain tar and a gzipped tar behind file:// URLs, built by the fake
// runner (each writes a config file), packaged for debian-12.
type corruptFixture struct {
	repo, cache, upstream string
	sums                  map[string]string // component -> source sha256
	runner                *fake.Runner
	mu                    sync.Mutex
	warnings              []string
}

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	f := &corruptFixture{repo: t.TempDir(), cache: t.TempDir(), upstream: t.TempDir(), sums: map[string]string{}}
	// gc collects root filesystems too: never the shared test roots (the
	// fake runner needs none).
	t.Setenv("COACH_ROOTFS_DIR", filepath.Join(f.cache, "rootfs"))
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for _, e := range []struct{ name, body string }{{"src-1.0/LICENSE", "MIT\n"}, {"src-1.0/Makefile", "all:\n"}} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(e.body))
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarball.Bytes())
	zw.Close()
	for name, data := range map[string][]byte{"plain-1.0.tar": tarball.Bytes(), "gz-1.0.tar.gz": gz.Bytes()} {
		os.WriteFile(filepath.Join(f.upstream, name), data, 0o644)
		sum := sha256.Sum256(data)
		f.sums[strings.SplitN(name, "-", 2)[0]] = hex.EncodeToString(sum[:])
	}
	files := map[string]string{
		"projects/app.yaml": "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [plain, gz]\n",
	}
	for c, file := range map[string]string{"plain": "plain-1.0.tar", "gz": "gz-1.0.tar.gz"} {
		files["software/"+c+".yaml"] = "name: " + c + "\nlicense: MIT\nlicense_files: [LICENSE]\nrelative_path: src-1.0\nversions:\n  - version: 1.0.0\n    url: file://" +
			filepath.Join(f.upstream, file) + "\n    sha256: " + f.sums[c] + "\nbuild: [make]\n"
	}
	for name, body := range files {
		p := filepath.Join(f.repo, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	f.runner = &fake.Runner{Outputs: map[string]map[string]string{
		"plain": {"etc/plain.conf": "greeting=Hello\n"},
		"gz":    {"etc/gz.conf": "greeting=Hello\n"},
	}}
	return f
}

func (f *corruptFixture) build(t *testing.T, req BuildRequest) (*BuildResult, error) {
	t.Helper()
	req.Root, req.Project, req.Runner, req.CacheDir = f.repo, "app", f.runner, f.cache
	req.NoVerify, req.SkipHealth = true, true
	req.OutDir = filepath.Join(t.TempDir(), "pkg") // packaged anew each time
	req.Events = func(e event.Event) {
		if e.Kind == event.Warning {
			f.mu.Lock()
			f.warnings = append(f.warnings, e.Message)
			f.mu.Unlock()
		}
	}
	return Run(context.Background(), req)
}

func debSum(t *testing.T, res *BuildResult) string {
	t.Helper()
	if res == nil || res.Release == nil || len(res.Release.Artifacts) == 0 {
		t.Fatal("no package")
	}
	return res.Release.Artifacts[0].SHA256
}

func (f *corruptFixture) layer(t *testing.T, res *BuildResult, component string) (key, dir string) {
	t.Helper()
	for _, c := range res.Targets[0].Components {
		if c.Name == component {
			return c.Key, c.Layer
		}
	}
	t.Fatalf("no component %s", component)
	return "", ""
}

// flip changes one byte of a file in place: same inode, same size. With
// keepTime the modification time is put back too, as bit rot would leave
// it.
func flip(t *testing.T, path string, keepTime bool) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	fh.ReadAt(b, 0)
	b[0] ^= 0x20 // "Hello" -> "hello": one bit
	fh.WriteAt(b, 0)
	fh.Close()
	if keepTime {
		os.Chtimes(path, st.ModTime(), st.ModTime())
	} else {
		later := st.ModTime().Add(time.Second)
		os.Chtimes(path, later, later)
	}
}

func (f *corruptFixture) warned(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.warnings {
		if strings.Contains(w, s) {
			return true
		}
	}
	return false
}

// TestCorruptionCorpus flips one byte in each thing a build takes from the
// cache, and checks that the next build either rebuilds or fetches again
// and ships the right bytes, or fails naming the corrupt entry (and the
// build after it ships the right bytes); never the flipped byte.
func TestCorruptionCorpus(t *testing.T) {
	hit := func(res *BuildResult, c string) bool {
		for _, x := range res.Targets[0].Components {
			if x.Name == c {
				return x.CacheHit
			}
		}
		return false
	}
	for _, tc := range []struct {
		name string
		// corrupt damages the cache after a good build; it returns what
		// the message must name.
		corrupt func(t *testing.T, f *corruptFixture, res *BuildResult) string
		// then is how the next build goes: "rebuilt" (plain rebuilt, the
		// right bytes), "failed" (an error naming the entry, then the
		// right bytes), "refetched" (--no-cache: the source fetched
		// again, the right bytes).
		then string
	}{
		{"a file of a cached layer", func(t *testing.T, f *corruptFixture, res *BuildResult) string {
			_, dir := f.layer(t, res, "plain")
			flip(t, filepath.Join(dir, "etc/plain.conf"), false)
			return "(plain) is corrupt"
		}, "rebuilt"},
		{"a file of a cached layer, its time kept (bit rot)", func(t *testing.T, f *corruptFixture, res *BuildResult) string {
			_, dir := f.layer(t, res, "plain")
			flip(t, filepath.Join(dir, "etc/plain.conf"), true)
			return "(plain) is corrupt"
		}, "failed"},
		{"a hard-linked file of the merged tree", func(t *testing.T, f *corruptFixture, res *BuildResult) string {
			flip(t, filepath.Join(res.Targets[0].Result.InstallTree(), "etc/plain.conf"), false)
			return "(plain) is corrupt"
		}, "rebuilt"},
		{"a layer's meta.json, not JSON any more", func(t *testing.T, f *corruptFixture, res *BuildResult) string {
			_, dir := f.layer(t, res, "plain")
			flip(t, filepath.Join(filepath.Dir(dir), "meta.json"), false)
			return ""
		}, "rebuilt"},
		{"a layer's meta.json, its digest changed", func(t *testing.T, f *corruptFixture, res *BuildResult) string {
			_, dir := f.layer(t, res, "plain")
			p := filepath.Join(filepath.Dir(dir), "meta.json")
			var m map[string]any
			b, _ := os.ReadFile(p)
			json.Unmarshal(b, &m)
			d := m["digest"].(string)
			m["digest"] = d[:len(d)-1] + map[bool]string{true: "0", false: "1"}[d[len(d)-1] != '0']
			b, _ = json.Marshal(m)
			os.WriteFile(p, b, 0o644)
			return "(plain) is corrupt"
		}, "rebuilt"},
		{"a cached plain-tar source", func(t *testing.T, f *corruptFixture, res *BuildResult) string {
			flip(t, filepath.Join(f.cache, "sources/sha256", f.sums["plain"]), true)
			return "cache entry sources/sha256/" + f.sums["plain"] + " is corrupt"
		}, "refetched"},
		{"a cached compressed source", func(t *testing.T, f *corruptFixture, res *BuildResult) string {
			p := filepath.Join(f.cache, "sources/sha256", f.sums["gz"])
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x40
			os.WriteFile(p, b, 0o644)
			return "cache entry sources/sha256/" + f.sums["gz"] + " is corrupt"
		}, "refetched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCorruptFixture(t)
			good, err := f.build(t, BuildRequest{})
			if err != nil {
				t.Fatal(err)
			}
			want := debSum(t, good)
			names := tc.corrupt(t, f, good)
			req := BuildRequest{}
			if tc.then == "refetched" {
				req.NoCache = true // so that the sources are unpacked again
			}
			res, err := f.build(t, req)
			switch tc.then {
			case "failed":
				if err == nil || !strings.Contains(err.Error(), names) || !strings.Contains(err.Error(), "cache entry layers/") {
					t.Fatalf("the build did not fail naming the corrupt layer: %v", err)
				}
				t.Logf("failed: %v", err)
				if res, err = f.build(t, req); err != nil {
					t.Fatalf("the build after: %v", err)
				}
				fallthrough
			case "rebuilt", "refetched":
				if err != nil {
					t.Fatalf("the build after the damage: %v", err)
				}
				if got := debSum(t, res); got != want {
					t.Errorf("the package changed: %s, want %s", got, want)
				}
				if tc.then == "rebuilt" && hit(res, "plain") {
					t.Error("plain came from the cache")
				}
				if names != "" && tc.then != "failed" && !f.warned(names) {
					t.Errorf("no warning named %q; warnings: %q", names, f.warnings)
				}
			}
		})
	}
}

// TestCorruptSourceOffline: a corrupt source that cannot be fetched again
// fails the build in the fetch stage, naming the entry.
func TestCorruptSourceOffline(t *testing.T) {
	f := newCorruptFixture(t)
	if _, err := f.build(t, BuildRequest{}); err != nil {
		t.Fatal(err)
	}
	flip(t, filepath.Join(f.cache, "sources/sha256", f.sums["plain"]), true)
	os.Remove(filepath.Join(f.upstream, "plain-1.0.tar")) // gone upstream
	_, err := f.build(t, BuildRequest{NoCache: true, Offline: true})
	if err == nil || failure.StageOf(err) != StageFetch || !strings.Contains(err.Error(), "cache entry sources/sha256/"+f.sums["plain"]+" is corrupt") {
		t.Fatalf("err = %v (stage %q), want a fetch failure naming the entry", err, failure.StageOf(err))
	}
	t.Logf("%v", err)
}

// TestGCKeepsWhatOtherRepositoriesUse: two repositories share a cache.
// gc run in one keeps the other's sources and layers, and says for whom;
// once the other repository is deleted, gc collects them.
func TestGCKeepsWhatOtherRepositoriesUse(t *testing.T) {
	a, b := newCorruptFixture(t), newCorruptFixture(t)
	b.cache = a.cache
	// b's components are its own: other names, other sources.
	for _, c := range []string{"plain", "gz"} {
		data, _ := os.ReadFile(filepath.Join(b.repo, "software", c+".yaml"))
		os.Remove(filepath.Join(b.repo, "software", c+".yaml"))
		os.WriteFile(filepath.Join(b.repo, "software", "b"+c+".yaml"), []byte(strings.Replace(string(data), "name: "+c, "name: b"+c, 1)), 0o644)
	}
	os.WriteFile(filepath.Join(b.repo, "projects/app.yaml"), []byte("name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [bplain, bgz]\n"), 0o644)
	// b's sources differ from a's in bytes, so they are other entries.
	for _, name := range []string{"plain-1.0.tar", "gz-1.0.tar.gz"} {
		p := filepath.Join(b.upstream, name)
		data, _ := os.ReadFile(p)
		data = append(data, make([]byte, 512)...) // a tar with one more zero block
		os.WriteFile(p, data, 0o644)
		sum := sha256.Sum256(data)
		c := strings.SplitN(name, "-", 2)[0]
		y := filepath.Join(b.repo, "software", "b"+c+".yaml")
		def, _ := os.ReadFile(y)
		os.WriteFile(y, []byte(strings.Replace(string(def), b.sums[c], hex.EncodeToString(sum[:]), 1)), 0o644)
		b.sums[c] = hex.EncodeToString(sum[:])
	}
	b.runner.Outputs = map[string]map[string]string{"bplain": {"etc/bplain.conf": "x\n"}, "bgz": {"etc/bgz.conf": "x\n"}}
	if _, err := a.build(t, BuildRequest{}); err != nil {
		t.Fatal(err)
	}
	resB, err := b.build(t, BuildRequest{})
	if err != nil {
		t.Fatal(err)
	}
	bLayer := filepath.Dir(resB.Targets[0].Components[0].Layer)
	bSource := filepath.Join(a.cache, "sources/sha256", b.sums["plain"])
	for _, p := range []string{bLayer, bSource} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("b's build left no %s", p)
		}
	}

	res, err := GC(context.Background(), GCRequest{Root: a.repo, CacheDir: a.cache, KeepSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bLayer, bSource} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("gc in a removed %s, which b uses", p)
		}
	}
	if len(res.Roots) != 1 || res.Roots[0].Gone || res.Roots[0].Layers != 2 || res.Roots[0].Sources != 2 {
		t.Errorf("roots %+v, want b's with 2 layers and 2 sources", res.Roots)
	}

	// A dry run with --ignore-other-repositories would take them.
	res, err = GC(context.Background(), GCRequest{Root: a.repo, CacheDir: a.cache, KeepSize: -1, DryRun: true, IgnoreOtherRepositories: true})
	if err != nil {
		t.Fatal(err)
	}
	would := map[string]bool{}
	for _, r := range res.Removed {
		would[r.Path] = true
	}
	if !would[bLayer] || !would[bSource] {
		t.Errorf("--ignore-other-repositories would not collect b's: %+v", res.Removed)
	}

	os.RemoveAll(b.repo)
	res, err = GC(context.Background(), GCRequest{Root: a.repo, CacheDir: a.cache, KeepSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bLayer, bSource} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("gc kept %s, which only the deleted repository used", p)
		}
	}
	if len(res.Roots) != 1 || !res.Roots[0].Gone {
		t.Errorf("roots %+v, want b's dropped", res.Roots)
	}
	// a's own are still there: its next build is all cache hits.
	again, err := a.build(t, BuildRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again.Targets[0].Components {
		if !c.CacheHit {
			t.Errorf("%s was rebuilt after gc", c.Name)
		}
	}
}

// TestVerifyCacheFindsAndRepairs: cache verify finds a flipped byte that
// left a file's metadata alone, in a source, a layer and a verify result,
// and --repair evicts each; the next build ships the right bytes.
func TestVerifyCacheFindsAndRepairs(t *testing.T) {
	f := newCorruptFixture(t)
	good, err := f.build(t, BuildRequest{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cache.New(f.cache).Check(context.Background(), cache.VerifyCacheRequest{})
	if err != nil || len(res.Corrupt) != 0 || res.Sources != 2 || res.Layers != 2 {
		t.Fatalf("a good cache: %+v, %v", res, err)
	}
	_, dir := f.layer(t, good, "gz")
	flip(t, filepath.Join(dir, "etc/gz.conf"), true)
	flip(t, filepath.Join(f.cache, "sources/sha256", f.sums["plain"]), true)
	os.MkdirAll(filepath.Join(f.cache, "verified"), 0o755)
	os.WriteFile(filepath.Join(f.cache, "verified", "x.json"), []byte(`{"report":{"ok":true},"digest":"sha256:00"}`), 0o644)
	res, err = cache.New(f.cache).Check(context.Background(), cache.VerifyCacheRequest{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, c := range res.Corrupt {
		kinds[c.Kind] = true
		t.Logf("%s %s: %s", c.Kind, c.Path, c.Problem)
	}
	if len(res.Corrupt) != 3 || !kinds["sources"] || !kinds["layers"] || !kinds["verify results"] || res.BytesRead == 0 {
		t.Fatalf("found %+v", res)
	}
	res, err = cache.New(f.cache).Check(context.Background(), cache.VerifyCacheRequest{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Corrupt {
		if !c.Evicted {
			t.Errorf("not evicted: %+v", c)
		}
	}
	if res, err = cache.New(f.cache).Check(context.Background(), cache.VerifyCacheRequest{}); err != nil || len(res.Corrupt) != 0 {
		t.Errorf("after --repair: %+v, %v", res.Corrupt, err)
	}
	again, err := f.build(t, BuildRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if debSum(t, again) != debSum(t, good) {
		t.Error("the package after repair differs")
	}
}
