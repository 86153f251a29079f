package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/runner/fake"
)

// gcRepo writes a project app of two components, b on a, with path
// sources.
func gcRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	files := map[string]string{
		"projects/app.yaml":   "name: app\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [b]\n",
		"software/src/README": "a source tree\n",
		"software/a.yaml":     "name: a\nlicense: MIT\nversions: [{version: 1.0.0, path: src}]\nbuild: [make a]\n",
		"software/b.yaml":     "name: b\nlicense: MIT\nversions: [{version: 1.0.0, path: src}]\ndependencies: [a]\nbuild: [make b]\n",
	}
	for name, data := range files {
		p := filepath.Join(repo, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

// deadPid is the id of a process that has exited.
func deadPid(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	return cmd.Process.Pid
}

func gcBuild(t *testing.T, repo, cache string, r *fake.Runner) *BuildResult {
	t.Helper()
	res, err := Run(context.Background(), BuildRequest{Root: repo, Project: "app", Runner: r, CacheDir: cache, NoPackage: true, SkipHealth: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func cacheHits(res *BuildResult) map[string]bool {
	out := map[string]bool{}
	for _, c := range res.Targets[0].Components {
		out[c.Name] = c.CacheHit
	}
	return out
}

func touchAt(t *testing.T, path string, at time.Time) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, at, at)
}

// TestGCCollectsWhatNoBuildUses builds a project, edits one component and
// builds again, plants leftovers, and collects: exactly the garbage goes
// (the edited component's old layer, old and half-made root filesystems,
// leftovers of dead processes, another project's work tree), and the next
// build finds every layer it needs. With --keep-size 0 everything goes,
// and the build after that builds everything again, correctly.
func TestGCCollectsWhatNoBuildUses(t *testing.T) {
	repo, cache := gcRepo(t), t.TempDir()
	roots := filepath.Join(t.TempDir(), "roots")
	t.Setenv("COACH_ROOTFS_DIR", roots)
	r := &fake.Runner{}
	gcBuild(t, repo, cache, r)
	// An edit of b: a new key for b, a's layer stays.
	os.WriteFile(filepath.Join(repo, "software/b.yaml"), []byte("name: b\nlicense: MIT\nversions: [{version: 1.0.0, path: src}]\ndependencies: [a]\nbuild: [make b V=2]\n"), 0o644)
	if hits := cacheHits(gcBuild(t, repo, cache, r)); !hits["a"] || hits["b"] {
		t.Fatalf("after the edit, cache hits are %v; want a only", hits)
	}
	layers, _ := os.ReadDir(filepath.Join(cache, "layers"))
	old := time.Now().Add(-40 * 24 * time.Hour)
	dead := deadPid(t)
	planted := map[string]string{ // path -> what gc must do: "remove" or "keep"
		filepath.Join(roots, "debian-12-0000000000000001", ".coach-rootfs.json"):     "remove", // unused for 40 days
		filepath.Join(roots, "debian-12-0000000000000002", ".coach-rootfs.json"):     "keep",
		filepath.Join(roots, "debian-12-0000000000000003.partial-"+itoa(dead), "x"):  "remove",
		filepath.Join(cache, "layers/tmp", itoa(dead)+"-0123456789ab-1", "layer/x"):  "remove",
		filepath.Join(cache, "layers/tmp", itoa(os.Getpid())+"-0123456789ab-2", "x"): "keep", // this process is alive
		filepath.Join(cache, "verify", "root-"+itoa(dead)+"-1", "x"):                 "remove",
		filepath.Join(cache, "verify", "root-"+itoa(os.Getpid())+"-2", "x"):          "keep",
		filepath.Join(cache, "work/gone/debian-12/tree/x"):                           "remove",
	}
	for p := range planted {
		at := time.Now()
		if strings.Contains(p, "0000000000000001") {
			at = old
		}
		touchAt(t, p, at)
	}
	unlisted := filepath.Join(cache, "sources/sha256", strings.Repeat("ab", 32))
	touchAt(t, unlisted, time.Now())
	dry, err := GC(context.Background(), GCRequest{Root: repo, CacheDir: cache, KeepSize: -1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(unlisted); err != nil {
		t.Errorf("the dry run removed a source: %v", err)
	}
	for p := range planted {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the dry run removed %s", p)
		}
	}
	res, err := GC(context.Background(), GCRequest{Root: repo, CacheDir: cache, KeepSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(unlisted); !os.IsNotExist(err) {
		t.Errorf("a source no definition lists is still there")
	}
	if len(dry.Removed) != len(res.Removed) {
		t.Errorf("the dry run listed %d entries, gc removed %d", len(dry.Removed), len(res.Removed))
	}
	for p, want := range planted {
		_, err := os.Stat(p)
		if gone := os.IsNotExist(err); gone != (want == "remove") {
			t.Errorf("%s: gone %v, want %s", p, gone, want)
		}
	}
	var removedLayers int
	for _, e := range res.Removed {
		if e.Kind == "layers" && filepath.Base(filepath.Dir(e.Path)) != "tmp" {
			removedLayers++
			if e.Reason != "no project's build uses it" {
				t.Errorf("layer %s removed because %q", e.Path, e.Reason)
			}
		}
	}
	// Three layers were built (a, b, b edited) beside tmp/: one is garbage.
	if len(layers) != 4 || removedLayers != 1 {
		t.Errorf("layers before: %d entries; removed %d; want 4 entries (3 layers and tmp/) and 1 removed: %+v", len(layers), removedLayers, res.Removed)
	}
	if hits := cacheHits(gcBuild(t, repo, cache, r)); !hits["a"] || !hits["b"] {
		t.Errorf("after gc the build found %v in the cache; want both: gc removed a layer in use", hits)
	}
	if res.After >= res.Before {
		t.Errorf("the cache took %d bytes before and %d after", res.Before, res.After)
	}

	// --keep-size 0: nothing is left but the locks, and the next build
	// is a full, correct one.
	res, err = GC(context.Background(), GCRequest{Root: repo, CacheDir: cache, KeepSize: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.After > 64<<10 {
		t.Errorf("after --keep-size 0 the cache takes %d bytes: %+v", res.After, res.Removed)
	}
	for _, d := range []string{"layers", "work/app"} {
		entries, _ := os.ReadDir(filepath.Join(cache, d))
		for _, e := range entries {
			if e.Name() != "tmp" && !strings.HasSuffix(e.Name(), ".lock") {
				t.Errorf("%s/%s is still there after --keep-size 0", d, e.Name())
			}
		}
	}
	after := gcBuild(t, repo, cache, r)
	if hits := cacheHits(after); hits["a"] || hits["b"] {
		t.Errorf("after gc --keep-size 0 the build found %v in the cache", hits)
	}
	for _, c := range []string{"a", "b"} {
		if data, err := os.ReadFile(filepath.Join(after.Targets[0].InstallTree(), "embedded/share", c, "built")); err != nil || string(data) != "1.0.0\n" {
			t.Errorf("the build after gc lacks %s's file: %q %v", c, data, err)
		}
	}
}

// TestGCWaitsForARun starts a build, and a collection of everything
// (--keep-size 0) while it runs: nothing the build uses goes while it
// runs (the collection waits for it), and the build goes through.
func TestGCWaitsForARun(t *testing.T) {
	repo, cache := gcRepo(t), t.TempDir()
	t.Setenv("COACH_ROOTFS_DIR", filepath.Join(t.TempDir(), "roots"))
	r := &fake.Runner{Delay: time.Second}
	started := make(chan struct{})
	var once sync.Once
	runDone, gcDone := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), BuildRequest{Root: repo, Project: "app", Runner: r, CacheDir: cache, NoPackage: true, SkipHealth: true,
			Events: event.Sink(func(e event.Event) {
				if e.Kind == event.ComponentStarted && e.Component == "b" {
					once.Do(func() { close(started) })
				}
			})})
		runDone <- err
	}()
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("the build never started b")
	}
	// The layers the build has when b starts (a's, which b builds on).
	inUse, _ := filepath.Glob(filepath.Join(cache, "layers", "*", "meta.json"))
	if len(inUse) == 0 {
		t.Fatal("no layer in the cache when b started")
	}
	// As if built yesterday: the least recently used, first to go.
	for _, p := range inUse {
		yesterday := time.Now().Add(-24 * time.Hour)
		os.Chtimes(p, yesterday, yesterday)
	}
	go func() {
		_, err := GC(context.Background(), GCRequest{Root: repo, CacheDir: cache, KeepSize: 0})
		gcDone <- err
	}()
	// While the build runs, nothing it uses may go, and gc does not end.
	for running := true; running; {
		select {
		case err := <-runDone:
			if err != nil {
				t.Fatalf("the build failed while gc ran: %v", err)
			}
			running = false
			continue
		case err := <-gcDone:
			t.Fatalf("gc finished (%v) while the build ran", err)
		case <-time.After(10 * time.Millisecond):
		}
		for _, p := range inUse {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("gc removed %s while the build using it ran", p)
			}
		}
	}
	if err := <-gcDone; err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestGCGoesOnPastAMountedLeftover: a half-made root filesystem of a dead
// process with a file system still mounted in it (as a bootstrap killed
// by an older coach left /proc mounted) is not walked into: gc removes
// everything else, lists the leftover as failed and returns an error
// naming it; what is mounted there keeps its files.
func TestGCGoesOnPastAMountedLeftover(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	repo, cache := gcRepo(t), t.TempDir()
	roots := filepath.Join(t.TempDir(), "roots")
	t.Setenv("COACH_ROOTFS_DIR", roots)
	gcBuild(t, repo, cache, &fake.Runner{})
	dead := deadPid(t)
	leftover := filepath.Join(roots, "debian-12-0000000000000003.partial-"+itoa(dead))
	other := filepath.Join(roots, "debian-12-0000000000000004.partial-"+itoa(dead))
	outside := t.TempDir()
	touchAt(t, filepath.Join(outside, "keep"), time.Now())
	touchAt(t, filepath.Join(leftover, "proc/x"), time.Now())
	touchAt(t, filepath.Join(other, "x"), time.Now())
	proc := filepath.Join(leftover, "proc")
	if err := syscall.Mount(outside, proc, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(proc, syscall.MNT_DETACH) })

	res, err := GC(context.Background(), GCRequest{Root: repo, CacheDir: cache, KeepSize: -1})
	if err == nil || !strings.Contains(err.Error(), proc) {
		t.Errorf("gc returned %v; want an error naming %s", err, proc)
	}
	if res == nil || len(res.Failed) != 1 || res.Failed[0].Path != leftover {
		t.Fatalf("gc's failures: %+v; want the mounted leftover only", res)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Error("gc stopped at the mounted leftover: the next one is still there")
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("gc removed a file under a mount: %v", err)
	}
}
