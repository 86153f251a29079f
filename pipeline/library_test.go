package pipeline_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/runners"
)

// TestLibraryCMakeAndMeson builds the library's CMake component (json-c)
// and Meson component (fribidi) from Debian's orig tarballs with the
// sandbox, for debian-12: each with its build packages over the base root,
// the health check with no warning (no RUNPATH into the build tree, the
// libraries under embedded/lib), and verify running the installed tools in
// a clean root.
func TestLibraryCMakeAndMeson(t *testing.T) {
	mirror := testroots.DebianSources(t)
	for _, tool := range []string{"bwrap", "mmdebstrap", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	t.Setenv("COACH_ROOTFS_DIR", testroots.Dir())
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, "software"), 0o755)
	os.MkdirAll(filepath.Join(repo, "projects"), 0o755)
	for _, n := range []string{"json-c", "fribidi"} {
		data, err := os.ReadFile(filepath.Join("..", "software", n+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(repo, "software", n+".yaml"), data, 0o644)
	}
	os.WriteFile(filepath.Join(repo, "projects", "libs.yaml"), []byte(`name: libs
description: the library's CMake and Meson components
maintainer: M <m@example.com>
license: MIT
version: 1.0.0
software: [json-c, fribidi]
targets: [debian-12]
health: {runpath: error, ignore: ["embedded/include/**"]}
verify:
  - echo abc | /opt/libs/embedded/bin/fribidi --nobreak
  - test -e /opt/libs/embedded/lib/libjson-c.so.5 && test -e /opt/libs/embedded/lib/libfribidi.so.0
`), 0o644)
	res, err := pipeline.Run(context.Background(), pipeline.BuildRequest{
		Root: repo, Project: "libs", Targets: []string{"debian-12"}, RunnerName: runners.Sandbox,
		CacheDir: t.TempDir(), OutDir: t.TempDir(), Mirrors: []string{"file://" + mirror},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := res.Targets[0]
	if tr.Health == nil || !tr.Health.OK() || tr.Health.Warnings != 0 || len(tr.Verify) != 1 || !tr.Verify[0].OK {
		t.Fatalf("health %+v, verify %+v", tr.Health, tr.Verify)
	}
	for _, c := range tr.Components {
		t.Logf("%-8s built in %5.1fs, %d files", c.Name, c.Seconds, c.Files)
	}
}
