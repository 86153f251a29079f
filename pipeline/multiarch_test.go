package pipeline_test

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/binfmt"
	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runners"
)

// TestHelloArm64Dagger builds, checks, packages and verifies hello for
// arm64 on a real Dagger engine: the containers' platform is linux/arm64,
// run under the engine host's emulation (the engine's probe says it can,
// first), and verify installs the package in a clean arm64 container.
// It runs before TestHelloArm64, which may wait for .ci/run to finish
// its emulated roots; this one needs none.
func TestHelloArm64Dagger(t *testing.T) {
	if os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") == "" && os.Getenv("DAGGER_SESSION_PORT") == "" {
		t.Skip("no Dagger engine is configured (_EXPERIMENTAL_DAGGER_RUNNER_HOST); .ci/run starts one where one is built")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the test builds arm64 on an amd64 engine")
	}
	root, _ := filepath.Abs("..")
	cache, out := t.TempDir(), t.TempDir()
	res, err := pipeline.Run(context.Background(), pipeline.BuildRequest{
		Root: root, Project: "hello", Targets: []string{"debian-12"}, Arches: []string{"arm64"},
		RunnerName: runners.Dagger, CacheDir: cache, OutDir: out,
	})
	if err != nil && strings.Contains(err.Error(), "no match for platform") {
		t.Skipf("the engine's registry has no linux/arm64 debian:bookworm (.ci/dagger-arm64-image adds one): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	pkgs := res.Packages()
	if len(pkgs) != 1 || pkgs[0].File != "hello_1.2.0-1+deb12_arm64.deb" {
		t.Fatalf("packages: %+v", pkgs)
	}
	checkArm64Hello(t, pkgs[0].Path)
	tr := res.Targets[0]
	if res.Runner != runners.Dagger || tr.Arch != "arm64" || tr.Health == nil || !tr.Health.OK() || len(tr.Verify) != 1 || !tr.Verify[0].OK {
		t.Fatalf("runner %s, target: arch %s, health %+v, verify %+v", res.Runner, tr.Arch, tr.Health, tr.Verify)
	}
}

// TestHelloArm64 builds, checks, packages and verifies hello for arm64 on
// this machine, under qemu-user: a debian-12 arm64 root made with
// mmdebstrap, every step run in the sandbox through binfmt_misc, the
// health check judging aarch64 files against that root, and verify in a
// clean arm64 root. Then the rpm for el9 is made from the same tree.
func TestHelloArm64(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the test builds arm64 on an amd64 machine")
	}
	for _, tool := range []string{"bwrap", "mmdebstrap", "dpkg-deb", "rpm", "arch-test"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	if err := binfmt.CanRun(binfmt.Path(), "arm64"); err != nil {
		t.Skipf("%v (.ci/run sets it up)", err)
	}
	t.Setenv("COACH_ROOTFS_DIR", testroots.Dir())
	root, _ := filepath.Abs("..")
	cache, out := t.TempDir(), t.TempDir()
	res, err := pipeline.Run(context.Background(), pipeline.BuildRequest{
		Root: root, Project: "hello", Targets: []string{"debian-12"}, Arches: []string{"arm64"},
		RunnerName: runners.Sandbox, CacheDir: cache, OutDir: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := res.Packages()
	if len(pkgs) != 1 || pkgs[0].File != "hello_1.2.0-1+deb12_arm64.deb" || pkgs[0].Arch != "arm64" {
		t.Fatalf("packages: %+v", pkgs)
	}
	checkArm64Hello(t, pkgs[0].Path)
	tr := res.Targets[0]
	if tr.Arch != "arm64" || tr.Health == nil || !tr.Health.OK() || len(tr.Verify) != 1 || !tr.Verify[0].OK {
		t.Fatalf("target: arch %s, health %+v, verify %+v", tr.Arch, tr.Health, tr.Verify)
	}
	if !slices.Contains(tr.Health.Dependencies, "libc6 (>= 2.34)") {
		t.Errorf("dependencies %v", tr.Health.Dependencies)
	}

	// The rpm of the arm64 tree.
	rel, err := pipeline.Package(context.Background(), pipeline.PackageRequest{
		Root: root, Project: "hello", Targets: []string{"el9"}, From: "debian-12", Arches: []string{"arm64"},
		CacheDir: cache, OutDir: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	var rpm string
	for _, a := range rel.Artifacts {
		if a.Format == "rpm" {
			rpm = a.Path
		}
	}
	if filepath.Base(rpm) != "hello-1.2.0-1.el9.aarch64.rpm" {
		t.Fatalf("artifacts: %+v", rel.Artifacts)
	}
	if got, _ := exec.Command("rpm", "-qp", "--qf", "%{ARCH}", rpm).Output(); string(got) != "aarch64" {
		t.Errorf("rpm ARCH %q", got)
	}
	sums, _ := os.ReadFile(rel.Sums)
	for _, w := range []string{"hello_1.2.0-1+deb12_arm64.deb", "hello-1.2.0-1.el9.aarch64.rpm"} {
		if !strings.Contains(string(sums), w) {
			t.Errorf("SHA256SUMS lacks %s:\n%s", w, sums)
		}
	}
}

// checkArm64Hello: hello's deb says arm64, and its binary is aarch64.
func checkArm64Hello(t *testing.T, deb string) {
	t.Helper()
	if got, _ := exec.Command("dpkg-deb", "-f", deb, "Architecture").Output(); strings.TrimSpace(string(got)) != "arm64" {
		t.Errorf("Architecture: %q", got)
	}
	x := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f, err := elf.Open(filepath.Join(x, "opt/hello/bin/hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("hello is built for %s", f.Machine)
	}
}

// TestFromOmnibusExample plans the project docs/from-omnibus.md converted
// from omnibus-software (docs/examples/from-omnibus), locked: the guide's
// worked example stays a valid project.
func TestFromOmnibusExample(t *testing.T) {
	root, _ := filepath.Abs("../docs/examples/from-omnibus")
	prep, err := project.Prepare(root, "omni", project.Options{Locked: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(prep.Plan.Order(), " "); got != "libffi ncurses zlib pcre2" {
		t.Errorf("components in order: %s", got)
	}
	for name, want := range map[string]string{"zlib": "1.2.13", "libffi": "3.4.4", "ncurses": "6.4", "pcre2": "10.42.0"} {
		if n := prep.Plan.Node(name); n == nil || n.Version != want {
			t.Errorf("%s: %+v, want version %s (Omnibus's default_version)", name, n, want)
		}
	}
}
