package verify_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/dagger"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

// TestVerifyCacheKey checks that the key of a verification changes with
// everything its result depends on, and that only passing reports are
// kept.
// resultPath is where Results keeps key.
func resultPath(c verify.Results, key string) string {
	return filepath.Join(c.Dir, strings.TrimPrefix(key, "sha256:")+".json")
}

func TestVerifyCacheKey(t *testing.T) {
	dir := t.TempDir()
	pkg, other := filepath.Join(dir, "a.deb"), filepath.Join(dir, "b.deb")
	os.WriteFile(pkg, []byte("package one"), 0o644)
	os.WriteFile(other, []byte("package two"), 0o644)
	d12, _ := target.Builtin("debian-12")
	d13, _ := target.Builtin("debian-13")
	base := func() verify.Options {
		return verify.Options{Package: pkg, Name: "app", Target: d12, Arch: "amd64",
			Project: &spec.Project{Name: "app", InstallDir: "/opt/app", Verify: []string{"app --version"}}}
	}
	c := verify.Results{Dir: filepath.Join(dir, "cache")}
	sandboxRunner, daggerRunner := &sandbox.Runner{}, dagger.New(nil)
	k := c.Key(base(), sandboxRunner, "")
	if k == "" || k != c.Key(base(), sandboxRunner, "") {
		t.Fatalf("key %q is not stable", k)
	}
	for _, change := range []struct {
		what   string
		edit   func(*verify.Options)
		runner runner.Runner
	}{
		{"package bytes", func(o *verify.Options) { o.Package = other }, sandboxRunner},
		{"previous package", func(o *verify.Options) { o.Previous = other }, sandboxRunner},
		{"target", func(o *verify.Options) { o.Target = d13 }, sandboxRunner},
		{"arch", func(o *verify.Options) { o.Arch = "arm64" }, sandboxRunner},
		{"verify commands", func(o *verify.Options) { o.Project.Verify = []string{"app --help"} }, sandboxRunner},
		{"links", func(o *verify.Options) {
			o.Project.Package.Links = map[string]string{"/usr/bin/app": "/opt/app/bin/app"}
		}, sandboxRunner},
		{"no project", func(o *verify.Options) { o.Project = nil }, sandboxRunner},
		{"runner", func(o *verify.Options) {}, daggerRunner},
	} {
		o := base()
		change.edit(&o)
		if c.Key(o, change.runner, "") == k {
			t.Errorf("changing the %s left the key as it was", change.what)
		}
	}
	if c.Get(k) != nil {
		t.Fatal("a report before any was kept")
	}
	c.Put(k, &verify.Report{Package: "a.deb", OK: false})
	if c.Get(k) != nil {
		t.Error("a failed report was kept")
	}
	c.Put(k, &verify.Report{Package: "a.deb", OK: true, Seconds: 4})
	if r := c.Get(k); r == nil || !r.Cached || r.Seconds != 4 {
		t.Errorf("kept report: %+v", r)
	}
	// A damaged entry is not taken for a pass: the package is verified
	// again.
	data, _ := os.ReadFile(resultPath(c, k))
	damaged := []byte(strings.Replace(string(data), `"seconds":4`, `"seconds":5`, 1))
	if string(damaged) == string(data) {
		t.Fatalf("the test could not damage %s", data)
	}
	os.WriteFile(resultPath(c, k), damaged, 0o644)
	if r := c.Get(k); r != nil {
		t.Errorf("a damaged entry was taken: %+v", r)
	}
}
