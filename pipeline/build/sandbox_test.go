package build_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/mirror"
	"github.com/coach-build/coach/pipeline/project"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/runner"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/target"
)

// sandboxRunner returns a sandbox runner whose root filesystems live in
// $COACH_ROOTFS_DIR (default /var/tmp/coach-test-rootfs) so that test runs
// share them, or skips when bubblewrap or mmdebstrap is not installed.
func sandboxRunner(t *testing.T) *sandbox.Runner {
	t.Helper()
	return sandboxRunnerMode(t, "")
}

// sandboxRunnerMode is a sandbox runner in the given mode ("" picks
// overlay where it works, as coach does).
func sandboxRunnerMode(t *testing.T, mode sandbox.Mode) *sandbox.Runner {
	t.Helper()
	for _, tool := range []string{"bwrap", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install bubblewrap mmdebstrap; .ci/run does)", tool)
		}
	}
	r := &sandbox.Runner{Rootfs: &sandbox.Rootfs{Dir: testroots.Dir()}, Mode: mode}
	if _, err := r.Probe(); err != nil {
		t.Fatalf("the sandbox cannot run here: %v", err)
	}
	return r
}

func builder(t *testing.T, r runner.Runner, root string, mirrors ...string) *build.Builder {
	cache := t.TempDir()
	return &build.Builder{
		Runner:   r,
		Fetcher:  &fetch.Fetcher{Cache: &fetch.Cache{Dir: filepath.Join(cache, "sources")}, Root: root, Mirrors: mirrors, Offline: true},
		Layers:   &build.LayerCache{Dir: filepath.Join(cache, "layers")},
		WorkDir:  filepath.Join(cache, "work"),
		Jobs:     2,
		MakeJobs: 2,
	}
}

func buildProject(t *testing.T, b *build.Builder, root, name, tgt string) (*build.Result, error) {
	t.Helper()
	prep, err := project.Prepare(root, name, project.Options{Targets: []string{tgt}})
	if err != nil {
		t.Fatal(err)
	}
	tg, _ := target.Builtin(tgt)
	b.WorkDir = filepath.Join(filepath.Dir(b.WorkDir), "work", tgt)
	return b.Build(context.Background(), prep.Plan, prep.Project, root, tg)
}

// layerFiles lists the non-directory paths of a layer.
func layerFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// runIn runs a command in a sandbox of the target's rootfs with the built
// tree at its install dir, the way an installed package would see it.
func runIn(t *testing.T, rootfs, tree, installDir string, argv ...string) (string, error) {
	t.Helper()
	args := []string{"--unshare-all", "--die-with-parent", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"}
	entries, _ := os.ReadDir(rootfs)
	for _, e := range entries {
		switch e.Name() {
		case "proc", "dev", "sys", "tmp", "opt", "run":
			continue
		}
		p := filepath.Join(rootfs, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			link, _ := os.Readlink(p)
			args = append(args, "--symlink", link, "/"+e.Name())
		} else if e.IsDir() {
			args = append(args, "--ro-bind", p, "/"+e.Name())
		}
	}
	args = append(args, "--ro-bind", filepath.Join(tree, installDir), installDir, "--")
	out, err := exec.Command("bwrap", append(args, argv...)...).CombinedOutput()
	return string(out), err
}

func rootfsOf(t *testing.T, r *sandbox.Runner, tgt string, pkgs []string) string {
	tg, _ := target.Builtin(tgt)
	dir, err := r.Rootfs.Ensure(context.Background(), tg, "amd64", pkgs)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSandboxHello builds the repository's hello project in the sandbox
// and runs the result in a clean root of the same target.
func TestSandboxHello(t *testing.T) {
	// Overlay is what runs here; copy is the fallback where overlayfs
	// cannot be mounted, and must give the same layers.
	for _, mode := range []sandbox.Mode{sandbox.Overlay, sandbox.Copy} {
		t.Run(string(mode), func(t *testing.T) { testSandboxHello(t, sandboxRunnerMode(t, mode)) })
	}
}

func testSandboxHello(t *testing.T, r *sandbox.Runner) {
	_, optBefore := os.Stat("/opt/hello")
	root, _ := filepath.Abs("../..")
	b := builder(t, r, root)
	res, err := buildProject(t, b, root, "hello", "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	checkHelloLayers(t, res)
	out, err := runIn(t, rootfsOf(t, r, "debian-12", nil), res.Tree, "/opt/hello", "/opt/hello/bin/hello", "--version")
	if err != nil || out != "hello 1.2.0 (libgreet 1.0.0)\n" {
		t.Errorf("hello --version: %q %v", out, err)
	}
	if _, err := os.Stat("/opt/hello"); optBefore != nil && err == nil {
		t.Error("the build wrote /opt/hello on the host")
	}
}

// checkHelloLayers checks the layers of the repository's hello project:
// what every runner must produce.
func checkHelloLayers(t *testing.T, res *build.Result) {
	t.Helper()
	layers := map[string][]string{}
	for _, c := range res.Components {
		layers[c.Name] = layerFiles(t, c.Layer)
	}
	if want := []string{"LICENSES/hello/LICENSE", "bin/hello", "etc/hello.conf"}; !slices.Equal(layers["hello"], want) {
		t.Errorf("hello's layer = %v, want %v", layers["hello"], want)
	}
	if want := []string{"LICENSES/libgreet/LICENSE", "embedded/include/greet.h", "embedded/lib/libgreet.so", "embedded/lib/libgreet.so.1", "embedded/lib/libgreet.so.1.0.0"}; !slices.Equal(layers["libgreet"], want) {
		t.Errorf("libgreet's layer = %v, want %v", layers["libgreet"], want)
	}
}

func writeRepo(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	return root
}

const isoProject = "name: iso\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [%s]\n"

// TestSandboxIsolation: a component sees only its declared dependencies,
// has no network, and writes nothing outside its layer.
func TestSandboxIsolation(t *testing.T) {
	r := sandboxRunner(t)
	files := map[string]string{
		"software/liba.yaml":     "name: liba\nlicense: MIT\nversions: [{version: 1.0.0, path: liba}]\nbuild:\n  - mkdir -p {{.Embedded}}/include && cp a.h {{.Embedded}}/include/\n",
		"software/liba/a.h":      "#define A_VALUE 7\n",
		"software/usesa.yaml":    "name: usesa\nlicense: MIT\nversions: [{version: 1.0.0, path: usesa}]\nbuild:\n  - cc $CPPFLAGS -o usesa main.c\n  - mkdir -p {{.InstallDir}}/bin && cp usesa {{.InstallDir}}/bin/\n",
		"software/usesa/main.c":  "#include <a.h>\nint main(void){return A_VALUE-7;}\n",
		"software/declared.yaml": "name: declared\nlicense: MIT\ndependencies: [liba]\nversions: [{version: 1.0.0, path: usesa}]\nbuild:\n  - cc $CPPFLAGS -o usesa main.c\n  - mkdir -p {{.InstallDir}}/bin && cp usesa {{.InstallDir}}/bin/declared\n",
		"software/escape.yaml":   "name: escape\nlicense: MIT\nversions: [{version: 1.0.0, path: liba}]\nbuild:\n  - touch /usr/escaped\n",
		"projects/iso.yaml":      fmt.Sprintf(isoProject, "liba, usesa"),
		"projects/declared.yaml": strings.Replace(fmt.Sprintf(isoProject, "declared"), "name: iso", "name: declared", 1),
		"projects/escape.yaml":   strings.Replace(fmt.Sprintf(isoProject, "escape"), "name: iso", "name: escape", 1),
	}
	root := writeRepo(t, files)

	_, err := buildProject(t, builder(t, r, root), root, "iso", "debian-12")
	var se *runner.StepError
	if !asStep(err, &se) || se.Component != "usesa" || !strings.Contains(strings.Join(se.Tail, "\n"), "a.h: No such file or directory") {
		t.Errorf("an undeclared dependency was visible, or the error is wrong: %v", err)
	}
	if _, err := buildProject(t, builder(t, r, root), root, "declared", "debian-12"); err != nil {
		t.Errorf("the declared dependency was not visible: %v", err)
	}
	if _, err := buildProject(t, builder(t, r, root), root, "escape", "debian-12"); !asStep(err, &se) || !strings.Contains(strings.Join(se.Tail, "\n"), "Read-only file system") {
		t.Errorf("writing outside the install dir: %v", err)
	}

	// The network: reachable from the host, not from a build step.
	// The Debian archive of the host's apt sources is one address it can reach.
	base, err := mirror.Host().Base("debian")
	if err != nil {
		t.Skipf("no Debian archive configured, so no address known to be reachable: %v", err)
	}
	u, _ := url.Parse(base)
	addr := u.Host
	if u.Port() == "" {
		addr += ":80"
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Skipf("the host cannot reach %s, so the network check proves nothing: %v", addr, err)
	}
	ip := conn.RemoteAddr().(*net.TCPAddr).IP.String()
	conn.Close()
	net := writeRepo(t, map[string]string{
		"software/netcheck.yaml":   "name: netcheck\nlicense: MIT\nversions: [{version: 1.0.0, path: netcheck}]\nbuild:\n  - bash -c 'exec 3<>/dev/tcp/" + ip + "/80' && echo reach$((1+1))ed\n",
		"software/netcheck/README": "x\n",
		"projects/netcheck.yaml":   strings.Replace(fmt.Sprintf(isoProject, "netcheck"), "name: iso", "name: netcheck", 1),
	})
	_, err = buildProject(t, builder(t, r, net), net, "netcheck", "debian-12")
	if !asStep(err, &se) || strings.Contains(strings.Join(se.Tail, "\n"), "reach2ed") {
		t.Errorf("a build step reached %s: %v", ip, err)
	}
}

func asStep(err error, se **runner.StepError) bool {
	for err != nil {
		if s, ok := err.(*runner.StepError); ok {
			*se = s
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// TestSandboxRealSoftware builds zlib, pcre2 (on zlib), libyaml and xz from
// Debian's orig tarballs, served through a file:// mirror, for debian-12 and
// debian-13. Each layer holds only its component's files, the programs run
// in a clean root of their target, and a second build compiles nothing.
func TestSandboxRealSoftware(t *testing.T) {
	mirror := testroots.DebianSources(t)
	r := sandboxRunner(t)
	files := map[string]string{
		"projects/libs.yaml": "name: libs\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12, debian-13]\nsoftware: [pcre2, libyaml, xz, bzip2]\n",
	}
	for _, n := range []string{"zlib", "pcre2", "libyaml", "xz", "bzip2"} {
		b, err := os.ReadFile(filepath.Join("../../software", n+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		files["software/"+n+".yaml"] = string(b)
	}
	root := writeRepo(t, files)
	own := map[string]string{"zlib": "libz.", "pcre2": "pcre2", "libyaml": "yaml", "xz": "lzma", "bzip2": "bz2"}
	for _, tgt := range []string{"debian-12", "debian-13"} {
		t.Run(tgt, func(t *testing.T) {
			b := builder(t, r, root, "file://"+mirror)
			res, err := buildProject(t, b, root, "libs", tgt)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]build.ComponentResult{}
			for _, c := range res.Components {
				byName[c.Name] = c
				t.Logf("%s %-8s built in %5.1fs (%s .. %s), %d files", tgt, c.Name, c.Seconds, c.Start.Format("15:04:05.0"), c.End.Format("15:04:05.0"), c.Files)
				for _, f := range layerFiles(t, c.Layer) {
					lib := strings.HasPrefix(f, "embedded/lib/lib") && !strings.Contains(f, "pkgconfig")
					if lib && !strings.Contains(f, own[c.Name]) {
						t.Errorf("%s's layer holds %s", c.Name, f)
					}
				}
			}
			for name, want := range map[string]string{"zlib": "embedded/lib/libz.so.1", "pcre2": "embedded/lib/libpcre2-8.so.0", "libyaml": "embedded/lib/libyaml-0.so.2", "xz": "embedded/lib/liblzma.so.5", "bzip2": "embedded/lib/libbz2.so.1.0"} {
				if _, err := os.Stat(filepath.Join(byName[name].Layer, want)); err != nil {
					t.Errorf("%s's layer lacks %s", name, want)
				}
			}
			z, p := byName["zlib"], byName["pcre2"]
			if p.Start.Before(z.End) {
				t.Error("pcre2 started before zlib was built")
			}
			rootfs := rootfsOf(t, r, tgt, []string{"autoconf", "automake", "libtool"})
			for _, argv := range [][]string{{"/opt/libs/embedded/bin/xz", "--version"}, {"/opt/libs/embedded/bin/pcre2grep", "-V"}, {"/opt/libs/embedded/bin/bzip2", "--version"}} {
				out, err := runIn(t, rootfs, res.Tree, "/opt/libs", argv...)
				if err != nil {
					t.Errorf("%v: %v\n%s", argv, err, out)
				}
			}
			start := time.Now()
			again, err := buildProject(t, b, root, "libs", tgt)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range again.Components {
				if !c.CacheHit {
					t.Errorf("no-op rebuild built %s", c.Name)
				}
			}
			t.Logf("%s no-op rebuild: %v", tgt, time.Since(start))
		})
	}
}

// TestStepTimeout: a step that runs past its timeout: is stopped within
// 2 s of it, with everything it started, and reported as a timeout; so is
// a component whose steps together run past the component's timeout.
func TestStepTimeout(t *testing.T) {
	r := sandboxRunner(t)
	marker := fmt.Sprintf("coach-timeout-%d", time.Now().UnixNano())
	files := map[string]string{
		// The step leaves a background sleeper behind before it hangs.
		"software/hangs.yaml": "name: hangs\nlicense: MIT\nversions: [{version: 1.0.0, path: hangs}]\nbuild:\n" +
			"  - cp /bin/sleep /tmp/" + marker + "\n  - name: hang\n    run: (/tmp/" + marker + " 600 &) ; /tmp/" + marker + " 600\n    timeout: 2s\n",
		"software/hangs/README": "x\n",
		"software/slow.yaml": "name: slow\nlicense: MIT\nversions: [{version: 1.0.0, path: hangs}]\ntimeout: 3s\nbuild:\n" +
			"  - cp /bin/sleep /tmp/" + marker + " && sleep 2\n  - /tmp/" + marker + " 600\n",
		"projects/hangs.yaml": strings.Replace(fmt.Sprintf(isoProject, "hangs"), "name: iso", "name: hangs", 1),
		"projects/slow.yaml":  strings.Replace(fmt.Sprintf(isoProject, "slow"), "name: iso", "name: slow", 1),
	}
	root := writeRepo(t, files)
	for _, tc := range []struct {
		project, of, step string
		limit             time.Duration
	}{{"hangs", "step", "hang", 2 * time.Second}, {"slow", "component", "/tmp/" + marker + " 600", 3 * time.Second}} {
		t.Run(tc.project, func(t *testing.T) {
			start := time.Now()
			_, err := buildProject(t, builder(t, r, root), root, tc.project, "debian-12")
			took := time.Since(start)
			var se *runner.StepError
			if !asStep(err, &se) || se.TimedOut != tc.limit || se.TimeoutOf != tc.of || se.Step != 1 || se.StepName != tc.step {
				t.Fatalf("not a timeout of the %s: %v (%+v)", tc.of, err, se)
			}
			if !strings.Contains(err.Error(), "timed out") {
				t.Errorf("the message does not say so: %v", err)
			}
			// The limit, the sandbox's start-up and the layer's staging:
			// well under the 600 s the step would have slept.
			if took > tc.limit+2*time.Second+5*time.Second {
				t.Errorf("stopped after %s, for a timeout of %s", took, tc.limit)
			}
			// Gone within 2 s (the kernel tears a pid namespace down
			// asynchronously).
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				out, err := exec.Command("pgrep", "-f", "--", marker).Output()
				if err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("left running: %s", out)
				}
			}
		})
	}
}
