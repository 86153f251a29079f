package pkg

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

var update = flag.Bool("update", false, "rewrite golden files")

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
}

// run runs a host tool, skipping the test when the tool is not installed.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	need(t, name)
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// fixture makes a repository with hooks and a built tree for /opt/app.
func fixture(t *testing.T) (root, tree string, p *spec.Project) {
	t.Helper()
	need(t, "cc")
	root, tree = t.TempDir(), t.TempDir()
	write := func(base, name, body string, mode os.FileMode) {
		p := filepath.Join(base, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	write(root, "scripts/app/postinst", "#!/bin/sh\necho postinst \"$@\"\n", 0o755)
	write(root, "scripts/app/postinst.rpm", "#!/bin/sh\necho rpm postinst \"$@\"\n", 0o755)
	write(root, "scripts/app/pretrans.rpm", "#!/bin/sh\necho pretrans\n", 0o755)
	write(root, "scripts/app/prerm", "#!/bin/sh\necho prerm \"$@\"\n", 0o755)
	src := filepath.Join(t.TempDir(), "x.c")
	os.WriteFile(src, []byte("#include <unistd.h>\nint x(void){return getpid() > 0;}\nint main(void){return x()-1;}\n"), 0o644)
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	os.MkdirAll(filepath.Join(tree, "embedded/lib"), 0o755)
	run(t, "cc", "-g", "-o", filepath.Join(tree, "bin/app"), src)
	run(t, "cc", "-g", "-shared", "-fPIC", "-Wl,-soname,libx.so.1", "-o", filepath.Join(tree, "embedded/lib/libx.so.1"), src)
	os.Symlink("libx.so.1", filepath.Join(tree, "embedded/lib/libx.so"))
	os.Link(filepath.Join(tree, "bin/app"), filepath.Join(tree, "bin/app-hardlink"))
	write(tree, "etc/app.conf", "greeting=hi\n", 0o644)
	write(tree, "LICENSES/app/LICENSE", "MIT\n", 0o644)
	write(tree, "share/tool.sh", "#!/bin/sh\n", 0o750)
	os.MkdirAll(filepath.Join(tree, "share/empty"), 0o755)
	p = &spec.Project{
		Name: "app", Description: "Example application\nIt does things.", Maintainer: "M <m@example.com>", Homepage: "https://example.com",
		License: "MIT", Version: "1.2.0", Iteration: 1, InstallDir: "/opt/app", Vendor: "Example Inc",
		Package: spec.Package{
			Links:               map[string]string{"/usr/bin/app": "/opt/app/bin/app"},
			ConfigFiles:         []string{"/opt/app/etc/app.conf"},
			RuntimeDependencies: spec.PerFormat{Deb: []string{"ca-certificates"}, RPM: []string{"ca-certificates"}},
			Conflicts:           []string{"app-legacy"}, Replaces: []string{"app-legacy"}, Provides: []string{"application"},
			Section: "misc",
		},
		Hooks: map[string]string{"postinst": "scripts/app/postinst", "postinst.rpm": "scripts/app/postinst.rpm", "pretrans.rpm": "scripts/app/pretrans.rpm", "prerm": "scripts/app/prerm"},
	}
	return root, tree, p
}

var epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func comps() *resolve.Resolution {
	return &resolve.Resolution{Project: "app", Components: []resolve.Component{
		{Name: "app", Version: "1.2.0", License: "MIT", Source: resolve.Source{Path: "app", Tree: "sha256:aaaa"}, Definition: "sha256:d1", Dependencies: []string{"zlib"}},
		{Name: "zlib", Version: "1.3.1", License: "Zlib", Source: resolve.Source{URL: "https://zlib.net/zlib-1.3.1.tar.gz", SHA256: strings.Repeat("9", 64)}, Definition: "sha256:d2"},
	}}
}

func release(t *testing.T, root, tree string, p *spec.Project, out string, targets ...string) *Release {
	t.Helper()
	var trees []TargetTree
	for _, name := range targets {
		tg, _ := target.Builtin(name)
		deps := []string{"libc6 (>= 2.34)"}
		if tg.Format == target.FormatRPM {
			deps = []string{"libc.so.6()(64bit)", "libc.so.6(GLIBC_2.34)(64bit)"}
		}
		trees = append(trees, TargetTree{Target: tg, Tree: tree, Depends: deps})
	}
	rel, err := WriteRelease(ReleaseOptions{Project: p, Root: root, Resolution: comps(), Trees: trees, Arch: "amd64", OutDir: out, MTime: epoch})
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./pipeline/pkg -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestDebAndRPM(t *testing.T) {
	need(t, "dpkg-deb", "rpm", "ar", "strip")
	root, tree, p := fixture(t)
	rel := release(t, root, tree, p, t.TempDir(), "debian-12", "el9")
	out := rel.OutDir
	deb, rpm := rel.Artifacts[0], rel.Artifacts[1]
	if deb.File != "app_1.2.0-1+deb12_amd64.deb" || rpm.File != "app-1.2.0-1.el9.x86_64.rpm" {
		t.Fatalf("names: %s %s", deb.File, rpm.File)
	}

	// Control and header fields, golden.
	golden(t, "app.deb.control", run(t, "dpkg-deb", "-f", deb.Path))
	golden(t, "app.rpm.header", run(t, "rpm", "-qp", "--qf",
		"Name: %{NAME}\nVersion: %{VERSION}\nRelease: %{RELEASE}\nArch: %{ARCH}\nLicense: %{LICENSE}\nGroup: %{GROUP}\nVendor: %{VENDOR}\nURL: %{URL}\nPackager: %{PACKAGER}\nSummary: %{SUMMARY}\nBuildHost: %{BUILDHOST}\nBuildTime: %{BUILDTIME}\nPayloadCompressor: %{PAYLOADCOMPRESSOR}\n", rpm.Path)+
		"Requires:\n"+run(t, "rpm", "-qp", "--requires", rpm.Path)+
		"Provides:\n"+run(t, "rpm", "-qp", "--provides", rpm.Path)+
		"Conflicts:\n"+run(t, "rpm", "-qp", "--conflicts", rpm.Path)+
		"Obsoletes:\n"+run(t, "rpm", "-qp", "--obsoletes", rpm.Path)+
		"Config:\n"+run(t, "rpm", "-qp", "--configfiles", rpm.Path)+
		"Doc:\n"+run(t, "rpm", "-qp", "--docfiles", rpm.Path))

	// Exactly the staged files, all root-owned, modes kept.
	want := []string{
		"/opt/", "/opt/app/", "/opt/app/LICENSES/", "/opt/app/LICENSES/SUMMARY", "/opt/app/LICENSES/app/", "/opt/app/LICENSES/app/LICENSE",
		"/opt/app/bin/", "/opt/app/bin/app", "/opt/app/bin/app-hardlink", "/opt/app/embedded/", "/opt/app/embedded/lib/",
		"/opt/app/embedded/lib/libx.so", "/opt/app/embedded/lib/libx.so.1", "/opt/app/etc/", "/opt/app/etc/app.conf",
		"/opt/app/share/", "/opt/app/share/empty/", "/opt/app/share/tool.sh",
		"/usr/", "/usr/bin/", "/usr/bin/app", "/usr/share/", "/usr/share/doc/", "/usr/share/doc/app/",
		"/usr/share/doc/app/changelog.Debian.gz", "/usr/share/doc/app/copyright",
	}
	var names []string
	modes := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb.Path)), "\n") {
		f := strings.Fields(line)
		name := strings.TrimPrefix(f[5], ".")
		names = append(names, name)
		modes[name] = f[0]
		if f[1] != "root/root" {
			t.Errorf("%s is owned by %s", name, f[1])
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("deb holds\n%v\nwant\n%v", names, want)
	}
	for name, mode := range map[string]string{"/opt/app/bin/app": "-rwxr-xr-x", "/opt/app/embedded/lib/libx.so.1": "-rw-r--r--", "/opt/app/share/tool.sh": "-rwxr-x---", "/opt/app/share/empty/": "drwxr-xr-x", "/usr/bin/app": "lrwxrwxrwx"} {
		if modes[name] != mode {
			t.Errorf("%s: mode %s, want %s", name, modes[name], mode)
		}
	}
	var rpmNames []string
	for _, line := range strings.Split(strings.TrimSpace(run(t, "rpm", "-qlpv", rpm.Path)), "\n") {
		f := strings.Fields(line)
		if f[2] != "root" || f[3] != "root" {
			t.Errorf("rpm: %s owned by %s:%s", f[8], f[2], f[3])
		}
		rpmNames = append(rpmNames, f[8])
	}
	var wantRPM []string
	for _, w := range want {
		// The rpm owns the directories it makes (under the install dir,
		// and its documentation directory), not the system's.
		if !strings.HasSuffix(w, "/") || strings.HasPrefix(w, "/opt/app") || w == "/usr/share/doc/app/" {
			if w != "/usr/share/doc/app/changelog.Debian.gz" {
				wantRPM = append(wantRPM, strings.TrimSuffix(w, "/"))
			}
		}
	}
	if !slices.Equal(rpmNames, wantRPM) {
		t.Errorf("rpm holds\n%v\nwant\n%v", rpmNames, wantRPM)
	}
	if got := run(t, "rpm", "-K", rpm.Path); !strings.Contains(got, "digests OK") {
		t.Errorf("rpm -K: %s", got)
	}

	// Conffiles and hooks, with the .rpm override.
	ctrl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb.Path, ctrl)
	if b, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); string(b) != "/opt/app/etc/app.conf\n" {
		t.Errorf("conffiles = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(ctrl, "postinst")); string(b) != "#!/bin/sh\necho postinst \"$@\"\n" {
		t.Errorf("deb postinst = %q", b)
	}
	scripts := run(t, "rpm", "-qp", "--scripts", rpm.Path)
	for _, w := range []string{"echo rpm postinst", "echo pretrans", "echo prerm"} {
		if !strings.Contains(scripts, w) {
			t.Errorf("rpm scripts lack %q:\n%s", w, scripts)
		}
	}

	// Binaries are stripped; hard links stay hard links.
	x := t.TempDir()
	run(t, "dpkg-deb", "-x", deb.Path, x)
	for _, f := range []string{"opt/app/bin/app", "opt/app/embedded/lib/libx.so.1"} {
		ef, err := elf.Open(filepath.Join(x, f))
		if err != nil {
			t.Fatal(err)
		}
		if ef.Section(".symtab") != nil || ef.Section(".debug_info") != nil {
			t.Errorf("%s is not stripped", f)
		}
		ef.Close()
	}
	a, _ := os.Stat(filepath.Join(x, "opt/app/bin/app"))
	b, _ := os.Stat(filepath.Join(x, "opt/app/bin/app-hardlink"))
	if !os.SameFile(a, b) {
		t.Error("the hard link was packaged as a copy")
	}

	// Beside the packages: manifest, SBOM, sums.
	sums, _ := os.ReadFile(filepath.Join(out, SumsFile))
	for _, f := range []string{deb.File, rpm.File, ManifestFile, SBOMFile(p)} {
		data, _ := os.ReadFile(filepath.Join(out, f))
		sum := sha256.Sum256(data)
		if !strings.Contains(string(sums), hex.EncodeToString(sum[:])+"  "+f+"\n") {
			t.Errorf("SHA256SUMS lacks %s", f)
		}
	}
	sb, err := os.Open(filepath.Join(out, SBOMFile(p)))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(sb)
	sb.Close()
	if err != nil || doc.SPDXVersion != "SPDX-2.3" || len(doc.Packages) != 3 {
		t.Errorf("SBOM: %v %+v", err, doc)
	}
	golden(t, "version-manifest.json", string(must(os.ReadFile(filepath.Join(out, ManifestFile)))))
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestPackageAlone packages without a release or a work dir of the
// caller's: the generated files must live until nfpm has read them.
func TestPackageAlone(t *testing.T) {
	need(t, "dpkg-deb", "strip")
	_, tree, p := fixture(t)
	p.Hooks = nil
	tg, _ := target.Builtin("debian-12")
	a, err := Package(Options{Project: p, Target: tg, Arch: "amd64", Tree: tree, MTime: epoch, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, "dpkg-deb", "-c", a.Path); !strings.Contains(got, "./usr/share/doc/app/copyright") {
		t.Errorf("contents:\n%s", got)
	}
}

func TestReproducible(t *testing.T) {
	need(t, "strip")
	root, tree, p := fixture(t)
	a := release(t, root, tree, p, t.TempDir(), "debian-12", "el9")
	// Touch everything: the tree's times must not matter.
	filepath.Walk(tree, func(path string, info os.FileInfo, err error) error {
		os.Chtimes(path, time.Now(), time.Now())
		return nil
	})
	b := release(t, root, tree, p, t.TempDir(), "debian-12", "el9")
	for _, f := range []string{a.Artifacts[0].File, a.Artifacts[1].File, ManifestFile, SBOMFile(p), SumsFile} {
		x := must(os.ReadFile(filepath.Join(a.OutDir, f)))
		y := must(os.ReadFile(filepath.Join(b.OutDir, f)))
		hx, hy := sha256.Sum256(x), sha256.Sum256(y)
		if hx != hy {
			t.Errorf("%s differs between two builds", f)
		} else {
			t.Logf("%s sha256 %x (both builds)", f, hx)
		}
	}
}

func TestVersionsNamesCompression(t *testing.T) {
	need(t, "dpkg-deb", "rpm", "ar", "dpkg", "strip")
	root, tree, p := fixture(t)
	p.Version = "1.3.0-rc.1"
	p.Package.Compression.Deb = "gzip"
	rel := release(t, root, tree, p, t.TempDir(), "debian-11", "debian-12", "el8")
	if got := []string{rel.Artifacts[0].File, rel.Artifacts[1].File, rel.Artifacts[2].File}; !slices.Equal(got, []string{
		"app_1.3.0~rc.1-1+deb11_amd64.deb", "app_1.3.0~rc.1-1+deb12_amd64.deb", "app-1.3.0~rc.1-1.el8.x86_64.rpm"}) {
		t.Errorf("names = %v", got)
	}
	if got := run(t, "rpm", "-qp", "--qf", "%{VERSION}-%{RELEASE}", rel.Artifacts[2].Path); got != "1.3.0~rc.1-1.el8" {
		t.Errorf("rpm version %s", got)
	}
	if got := run(t, "dpkg-deb", "-f", rel.Artifacts[1].Path, "Version"); got != "1.3.0~rc.1-1+deb12\n" {
		t.Errorf("deb version %q", got)
	}
	if err := exec.Command("dpkg", "--compare-versions", "1.3.0~rc.1-1+deb12", "lt", "1.3.0-1+deb12").Run(); err != nil {
		t.Error("the pre-release does not sort before the release")
	}
	if got := run(t, "ar", "t", rel.Artifacts[1].Path); !strings.Contains(got, "data.tar.gz") {
		t.Errorf("project override gzip: %s", got)
	}
	if got := run(t, "rpm", "-qp", "--qf", "%{PAYLOADCOMPRESSOR}", rel.Artifacts[2].Path); got != "xz" {
		t.Errorf("el8 payload: %s", got)
	}
	p.Package.Compression.Deb = ""
	rel = release(t, root, tree, p, t.TempDir(), "debian-11", "debian-12")
	if got := run(t, "ar", "t", rel.Artifacts[0].Path); !strings.Contains(got, "data.tar.xz") {
		t.Errorf("debian-11 default: %s", got)
	}
	if got := run(t, "ar", "t", rel.Artifacts[1].Path); !strings.Contains(got, "data.tar.zst") {
		t.Errorf("debian-12 default: %s", got)
	}
}

// TestFailedReleaseKeepsPreviousArtifacts: a release that fails half way
// leaves what the last good one wrote exactly as it was.
func TestFailedReleaseKeepsPreviousArtifacts(t *testing.T) {
	need(t, "strip")
	root, tree, p := fixture(t)
	base := t.TempDir()
	out := release(t, root, tree, p, base, "debian-12").OutDir
	before := map[string][]byte{}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		before[e.Name()] = must(os.ReadFile(filepath.Join(out, e.Name())))
	}
	p.Package.ConfigFiles = []string{"/opt/app/etc/missing.conf"}
	tg, _ := target.Builtin("debian-12")
	tg2, _ := target.Builtin("el9")
	_, err := WriteRelease(ReleaseOptions{Project: p, Root: root, Resolution: comps(), Arch: "amd64", OutDir: base, MTime: epoch,
		Trees: []TargetTree{{Target: tg2, Tree: tree}, {Target: tg, Tree: tree}}})
	if err == nil || !strings.Contains(err.Error(), "config files /opt/app/etc/missing.conf are not in the built tree") {
		t.Fatalf("err = %v", err)
	}
	if left, _ := os.ReadDir(base); len(left) != 1 {
		t.Errorf("the failed release left %d entries in the output dir, want only the good release", len(left))
	}
	entries, _ = os.ReadDir(out)
	if len(entries) != len(before) {
		t.Errorf("files in the output dir changed: %d, were %d", len(entries), len(before))
	}
	for name, data := range before {
		if got, _ := os.ReadFile(filepath.Join(out, name)); string(got) != string(data) {
			t.Errorf("%s changed", name)
		}
	}
}

// TestReleaseDirHoldsExactlyItsFiles: each release (project, version,
// iteration) has a directory of its own, and writing it again replaces it:
// a package of another target stays only when it was made from exactly the
// same components, and is then listed; so SHA256SUMS lists exactly the files
// beside it and no package of other components is picked up by pkg/*/*.rpm.
func TestReleaseDirHoldsExactlyItsFiles(t *testing.T) {
	need(t, "strip")
	root, tree, p := fixture(t)
	base := t.TempDir()
	first := release(t, root, tree, p, base, "debian-12", "el9")
	const rpmFile = "app-1.2.0-1.el9.x86_64.rpm"
	again := release(t, root, tree, p, base, "debian-12")
	if first.OutDir != again.OutDir || filepath.Base(again.OutDir) != "app-1.2.0-1" {
		t.Fatalf("release dirs %s, %s", first.OutDir, again.OutDir)
	}
	if len(again.Artifacts) != 2 || again.Artifacts[1].File != rpmFile || !again.Artifacts[1].Kept {
		t.Errorf("the el9 package of the same components was not kept: %+v", again.Artifacts)
	}
	checkSums := func(rel *Release) {
		t.Helper()
		sums := string(must(os.ReadFile(filepath.Join(rel.OutDir, SumsFile))))
		listed := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(sums), "\n") {
			_, f, _ := strings.Cut(line, "  ")
			listed[f] = true
		}
		entries, _ := os.ReadDir(rel.OutDir)
		var present []string
		for _, e := range entries {
			if n := e.Name(); n != SumsFile && n != ReportFile {
				present = append(present, n)
				if !listed[n] {
					t.Errorf("%s: %s sits beside SHA256SUMS but is not listed", rel.OutDir, n)
				}
			}
		}
		if len(present) != len(listed) {
			t.Errorf("%s: SHA256SUMS lists %v, the directory holds %v", rel.OutDir, listed, present)
		}
	}
	checkSums(again)

	// Other components: the rpm of the earlier components goes.
	res := comps()
	res.Components[1].Version = "1.3.2"
	tg, _ := target.Builtin("debian-12")
	changed, err := WriteRelease(ReleaseOptions{Project: p, Root: root, Resolution: res, Arch: "amd64", OutDir: base, MTime: epoch,
		Trees: []TargetTree{{Target: tg, Tree: tree, Depends: []string{"libc6 (>= 2.34)"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(changed.OutDir, rpmFile)); err == nil || len(changed.Artifacts) != 1 {
		t.Errorf("the el9 package of other components is still in the release: %+v", changed.Artifacts)
	}
	checkSums(changed)

	p.Version = "1.3.0"
	next := release(t, root, tree, p, base, "el9")
	if filepath.Base(next.OutDir) != "app-1.3.0-1" {
		t.Errorf("the next version went to %s", next.OutDir)
	}
	checkSums(next)
	if left, _ := filepath.Glob(filepath.Join(base, ".staging-*")); len(left) != 0 {
		t.Errorf("staging left behind: %v", left)
	}
}

// TestReleaseReusesUnchangedPackages: a release made again from the same
// inputs takes its packages from the previous release, byte for byte,
// without making them; any input that changes makes that package again.
func TestReleaseReusesUnchangedPackages(t *testing.T) {
	need(t, "strip")
	root, tree, p := fixture(t)
	out := t.TempDir()
	d12, _ := target.Builtin("debian-12")
	el9, _ := target.Builtin("el9")
	mk := func(digest string, deps []string) *Release {
		t.Helper()
		rel, err := WriteRelease(ReleaseOptions{Project: p, Root: root, Resolution: comps(), Arch: "amd64", OutDir: out, MTime: epoch, Trees: []TargetTree{
			{Target: d12, Tree: tree, Depends: deps, TreeDigest: digest},
			{Target: el9, Tree: tree, Depends: []string{"libc.so.6()(64bit)"}, TreeDigest: digest},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	reused := func(rel *Release) (out []string) {
		for _, a := range rel.Artifacts {
			if a.Reused {
				out = append(out, a.Target)
			}
		}
		return out
	}
	first := mk("sha256:tree1", []string{"libc6 (>= 2.34)"})
	if got := reused(first); len(got) != 0 {
		t.Fatalf("the first release reused %v", got)
	}
	second := mk("sha256:tree1", []string{"libc6 (>= 2.34)"})
	if got := reused(second); !slices.Equal(got, []string{"debian-12", "el9"}) {
		t.Errorf("the same inputs again reused %v, want both", got)
	}
	for i := range first.Artifacts {
		if first.Artifacts[i].SHA256 != second.Artifacts[i].SHA256 {
			t.Errorf("%s changed when reused", first.Artifacts[i].File)
		}
	}
	if got := reused(mk("sha256:tree1", []string{"libc6 (>= 2.36)"})); !slices.Equal(got, []string{"el9"}) {
		t.Errorf("new deb dependencies reused %v, want el9 only", got)
	}
	if got := reused(mk("sha256:tree2", []string{"libc6 (>= 2.36)"})); len(got) != 0 {
		t.Errorf("a new tree reused %v", got)
	}
	os.WriteFile(filepath.Join(root, "scripts/app/prerm"), []byte("#!/bin/sh\necho changed\n"), 0o755)
	if got := reused(mk("sha256:tree2", []string{"libc6 (>= 2.36)"})); len(got) != 0 {
		t.Errorf("a changed hook reused %v", got)
	}
	if got := reused(mk("", []string{"libc6 (>= 2.36)"})); len(got) != 0 {
		t.Errorf("a tree without a digest reused %v", got)
	}
}

// TestCopyrightNamesTheAuthorsAndRealSources: the copyright file does not
// make the maintainer the copyright holder, and the summary names a
// package archive's file by the archive and its path, with its sha256,
// not by coach's mirror:// form.
func TestCopyrightNamesTheAuthorsAndRealSources(t *testing.T) {
	p := &spec.Project{Name: "app", Maintainer: "Packager <p@example.com>", License: "MIT", Version: "1.0.0", Iteration: 1, InstallDir: "/opt/app"}
	comps := []resolve.Component{
		{Name: "zlib", Version: "1.2.13", License: "Zlib", Source: resolve.Source{URL: "mirror://debian/pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2", SHA256: "71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1"}},
		{Name: "xz", Version: "5.4.1", License: "0BSD", Source: resolve.Source{URL: "https://tukaani.org/xz/xz-5.4.1.tar.xz"}},
	}
	summary := string(LicenseSummary(p, comps))
	for _, want := range []string{
		"source: pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2 in the Debian archive (sha256 71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1)",
		"source: https://tukaani.org/xz/xz-5.4.1.tar.xz",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("the summary lacks %q:\n%s", want, summary)
		}
	}
	if strings.Contains(summary, "mirror://") {
		t.Errorf("the summary has a mirror:// pseudo-URL:\n%s", summary)
	}
	tg, _ := target.Builtin("debian-12")
	dir := t.TempDir()
	if _, err := docFiles(p, tg, dir, []byte(summary), []string{"Copyright (C) 1995-2022 Jean-loup Gailly and Mark Adler"}, time.Unix(1.7e9, 0), dir); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(filepath.Join(dir, "copyright"))
	if strings.Contains(string(text), "Copyright: Packager") || !strings.Contains(string(text), "Copyright: the authors of app and of each component") || !strings.Contains(string(text), "Upstream-Contact: Packager <p@example.com>") ||
		!strings.Contains(string(text), "\n Copyright (C) 1995-2022 Jean-loup Gailly and Mark Adler\n") {
		t.Errorf("copyright:\n%s", text)
	}
}

// TestCopyrightNotices: the notices of the tree's license files, each
// once; a link out of the tree is not followed.
func TestCopyrightNotices(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "LICENSES/zlib"), 0o755)
	os.MkdirAll(filepath.Join(tree, "LICENSES/xz"), 0o755)
	os.WriteFile(filepath.Join(tree, "LICENSES/zlib/LICENSE"), []byte("  (C) 1995-2022 Jean-loup Gailly and Mark Adler\n\n  Copyright (C) 1995-2022 Jean-loup Gailly and Mark Adler\n  This software is provided 'as-is'\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "LICENSES/xz/COPYING"), []byte(" * Copyright 2019 Some   One\nCopyright (C) 1995-2022 Jean-loup Gailly and Mark Adler\ncopyright holders may not be used\n"), 0o644)
	secret := t.TempDir()
	os.WriteFile(filepath.Join(secret, "notice"), []byte("Copyright (C) 2020 outside the tree\n"), 0o644)
	os.Symlink(secret, filepath.Join(tree, "LICENSES/escape"))
	os.Symlink(filepath.Join(secret, "notice"), filepath.Join(tree, "LICENSES/xz/LINKED"))
	root, err := os.OpenRoot(tree)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	got := copyrightNotices(root)
	want := []string{"Copyright 2019 Some One", "Copyright (C) 1995-2022 Jean-loup Gailly and Mark Adler", "(C) 1995-2022 Jean-loup Gailly and Mark Adler"}
	if !slices.Equal(got, want) {
		t.Errorf("notices %q, want %q", got, want)
	}
}
