package build_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/target"
)

// TestBuildEnvironments: a component builds in its target's base root
// with only its own build packages, installed once as an overlay whose
// files are the base's, hard-linked, and apt's; another component does
// not see them.
func TestBuildEnvironments(t *testing.T) {
	r := sandboxRunner(t)
	tg, _ := target.Builtin("debian-12")
	arch := target.HostArch()
	pkgs := []string{"autoconf", "automake", "libtool"}
	base, err := r.Rootfs.Ensure(context.Background(), tg, arch, nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := r.Rootfs.Ensure(context.Background(), tg, arch, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if env == base || !sandbox.IsEnvironment(filepath.Base(env)) || sandbox.IsEnvironment(filepath.Base(base)) {
		t.Fatalf("base %s, environment %s", base, env)
	}
	for _, p := range []string{"usr/bin/autoreconf", "usr/bin/automake", "usr/bin/libtoolize"} {
		if _, err := os.Stat(filepath.Join(base, p)); err == nil {
			t.Errorf("the base root has %s", p)
		}
		if _, err := os.Lstat(filepath.Join(env, p)); err != nil {
			t.Errorf("the environment lacks %s: %v", p, err)
		}
	}
	// The base's bytes are on disk once.
	same := func(p string) bool {
		a, err1 := os.Stat(filepath.Join(base, p))
		b, err2 := os.Stat(filepath.Join(env, p))
		return err1 == nil && err2 == nil && a.Sys().(*syscall.Stat_t).Ino == b.Sys().(*syscall.Stat_t).Ino
	}
	if !same("usr/bin/dpkg") || !same("usr/bin/make") {
		t.Error("the environment does not share the base's files")
	}
	var info sandbox.OverlayInfo
	data, _ := os.ReadFile(filepath.Join(env, sandbox.InfoFile))
	if err := json.Unmarshal(data, &info); err != nil || info.Base != sandbox.Key(tg, arch, nil) || !strings.Contains(strings.Join(info.Installed, " "), "autoconf:all=") {
		t.Errorf("the environment's record: %s (%v)", data, err)
	}
	// Made once.
	start := time.Now()
	if again, err := r.Rootfs.Ensure(context.Background(), tg, arch, []string{"libtool", "autoconf", "automake"}); err != nil || again != env {
		t.Errorf("asked again: %s %v", again, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("asking again took %s", d)
	}

	root := writeRepo(t, map[string]string{
		"software/auto.yaml":   "name: auto\nlicense: MIT\nversions: [{version: 1.0.0, path: auto}]\nbuild_packages: {deb: [autoconf, automake, libtool]}\nbuild:\n  - autoreconf --version | head -1\n  - automake --version | head -1\n  - mkdir -p {{.InstallDir}} && touch {{.InstallDir}}/auto\n",
		"software/auto/README": "x\n",
		"software/plain.yaml":  "name: plain\nlicense: MIT\nversions: [{version: 1.0.0, path: auto}]\nbuild:\n  - if command -v autoreconf; then echo the packages of another component are visible; exit 1; fi\n  - mkdir -p {{.InstallDir}} && touch {{.InstallDir}}/plain\n",
		"projects/iso.yaml":    strings.Replace(isoProject, "%s", "auto, plain", 1),
	})
	b := builder(t, r, root)
	if _, err := buildProject(t, b, root, "iso", "debian-12"); err != nil {
		var se *runner.StepError
		if asStep(err, &se) {
			t.Fatalf("%v\n%s", err, strings.Join(se.Tail, "\n"))
		}
		t.Fatal(err)
	}
}

// TestEnvironmentsMadeAtOnce: components that start together each make
// their environment over the same base at the same time; they share the
// downloaded packages' directory, and none fails for another's lock.
func TestEnvironmentsMadeAtOnce(t *testing.T) {
	r := sandboxRunner(t)
	tg, _ := target.Builtin("debian-12")
	arch := target.HostArch()
	base, err := r.Rootfs.Ensure(context.Background(), tg, arch, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A roots directory of the test's own, with the shared base linked
	// in, so that the environments are made here every run.
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-a", "--link", "--", base, filepath.Join(dir, filepath.Base(base))).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	roots := &sandbox.Rootfs{Dir: dir}
	sets := [][]string{{"m4"}, {"bison"}, {"flex"}}
	errs := make([]error, len(sets))
	var wg sync.WaitGroup
	for i, pkgs := range sets {
		wg.Go(func() { _, errs[i] = roots.Ensure(context.Background(), tg, arch, pkgs) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%v: %v", sets[i], err)
		}
	}
}
