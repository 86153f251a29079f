package project

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/internal/synthetic"
)

// writeSynthetic writes a repository with n software definitions forming a
// random DAG and one project that uses all of them.
func writeSynthetic(tb testing.TB, n int) string {
	dir := tb.TempDir()
	os.MkdirAll(filepath.Join(dir, "projects"), 0o755)
	os.MkdirAll(filepath.Join(dir, "software"), 0o755)
	var names []string
	for i, ds := range synthetic.DAG(n) {
		name := synthetic.Name(i)
		names = append(names, name)
		def := fmt.Sprintf(`name: %s
license: MIT
default_version: "~1.2"
dependencies: [%s]
versions:
  - {version: 1.2.%d, url: "https://example.com/%s-1.2.%d.tar.gz", sha256: %064x}
  - {version: 1.1.0, url: "https://example.com/%s-1.1.0.tar.gz", sha256: %064x}
relative_path: "%s-{{.Version}}"
build:
  - ./configure --prefix={{.Embedded}}
  - make -j{{.Jobs}}
  - make install
`, name, strings.Join(ds, ", "), i, name, i, i+1, name, i+7, name)
		if err := os.WriteFile(filepath.Join(dir, "software", name+".yaml"), []byte(def), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	proj := fmt.Sprintf("name: big\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12, debian-13, el9]\nsoftware: [%s]\n", strings.Join(names, ", "))
	if err := os.WriteFile(filepath.Join(dir, "projects", "big.yaml"), []byte(proj), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func TestPrepareSynthetic(t *testing.T) {
	dir := writeSynthetic(t, 60)
	p, err := Prepare(dir, "big", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Plan.Nodes) != 60 || p.Resolution.Component("c007").Version != "1.2.7" {
		t.Fatalf("unexpected plan: %d nodes", len(p.Plan.Nodes))
	}
	_, err = Prepare(dir, "big", Options{Locked: true})
	if failure.StageOf(err) != event.StageResolve || !strings.Contains(err.Error(), "there is no lock file") {
		t.Fatalf("--locked without a lock: %v", err)
	}
	_, err = Prepare(dir, "nosuch", Options{})
	var re *failure.RequestError
	if !errors.As(err, &re) {
		t.Fatalf("unknown project: %v", err)
	}
}

// BenchmarkPrepare500 is what `coach plan` does on a 500-component
// repository: load and validate 501 files, resolve, plan three targets.
//
//	go test ./pipeline/project -run '^$' -bench Prepare500 -count 10
func BenchmarkPrepare500(b *testing.B) {
	dir := writeSynthetic(b, 500)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Prepare(dir, "big", Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPreparePinsImages: an image pinned in the lock is the image the plan
// builds from, and part of the target's keys; the other targets keep their
// tags.
func TestPreparePinsImages(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "projects"), 0o755)
	os.MkdirAll(filepath.Join(dir, "software", "x"), 0o755)
	os.WriteFile(filepath.Join(dir, "software", "x.yaml"), []byte("name: x\nlicense: MIT\nversions: [{version: 1.0.0, path: x}]\nbuild: [make]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "software", "x", "README"), []byte("x\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "projects", "app.yaml"), []byte("name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12, debian-13]\nsoftware: [x]\n"), 0o644)
	before, err := Prepare(dir, "app", Options{})
	if err != nil {
		t.Fatal(err)
	}
	lock := before.Resolution.Lock()
	const pin = "docker.io/library/debian:bookworm@sha256:11b305dc557fc2ef0cd8f84bd7b067aec2fb48c1f37ab095dfd0f49dd9ba2127"
	lock.Images = map[string]string{"debian-12": pin}
	os.WriteFile(filepath.Join(dir, "projects", "app.lock"), lock.Marshal(), 0o644)
	after, err := Prepare(dir, "app", Options{Locked: true})
	if err != nil {
		t.Fatalf("a lock with pinned images is stale: %v", err)
	}
	images := map[string]string{}
	for _, tg := range after.Plan.TargetList() {
		images[tg.Name] = tg.Image
	}
	if images["debian-12"] != pin || images["debian-13"] != "docker.io/library/debian:trixie" {
		t.Errorf("images = %v", images)
	}
	// The plan's keys (the sandbox's layers use them as they are) do not
	// move: the pinned image reaches the Dagger runner's layer keys
	// through its environment id (TestDaggerKeyCoversTheImage).
	x0, x1 := before.Plan.Nodes[0].Keys, after.Plan.Nodes[0].Keys
	if x0["debian-12"] != x1["debian-12"] || x0["debian-13"] != x1["debian-13"] {
		t.Errorf("keys before %v, after %v: want them unchanged", x0, x1)
	}
}
