package verify_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/runner/sandbox"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
	"github.com/coach-build/coach/pipeline/verify"
)

func rootfsDir() string { return testroots.Dir() }

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(p, []byte(got), 0o644)
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test ./pipeline/verify -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", p, got, want)
	}
}

// command runs a host tool, skipping the test when the tool is not
// installed (the quickstart's coach doctor --fix and .ci/run install them).
func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	need(t, name)
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
}

// helloTree builds the repository's hello project for debian-12 in the
// sandbox and returns the prepared project and its install tree.
func helloTree(t *testing.T) (*project.Prepared, string) {
	t.Helper()
	need(t, "bwrap", "mmdebstrap", "strip")
	root, _ := filepath.Abs("../..")
	prep, err := project.Prepare(root, "hello", project.Options{Targets: []string{"debian-12"}})
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	r := &sandbox.Runner{Rootfs: &sandbox.Rootfs{Dir: rootfsDir()}}
	if _, err := r.Check(); err != nil {
		t.Fatal(err)
	}
	b := &build.Builder{Runner: r, Fetcher: &fetch.Fetcher{Cache: &fetch.Cache{Dir: filepath.Join(cache, "src")}, Root: root},
		Layers: &build.LayerCache{Dir: filepath.Join(cache, "layers")}, WorkDir: filepath.Join(cache, "work"), Jobs: 2, MakeJobs: 2}
	tg, _ := target.Builtin("debian-12")
	res, err := b.Build(context.Background(), prep.Plan, prep.Project, root, tg)
	if err != nil {
		t.Fatal(err)
	}
	return prep, res.InstallTree()
}

// packages writes hello at version for the targets into a directory.
func packages(t *testing.T, prep *project.Prepared, tree, version string, targets ...string) map[string]string {
	t.Helper()
	p := *prep.Project
	p.Version = version
	var trees []pkg.TargetTree
	for _, n := range targets {
		tg, _ := target.Builtin(n)
		deps := []string{"libc6 (>= 2.34)"}
		if tg.Format == target.FormatRPM {
			deps = []string{"libc.so.6()(64bit)"}
		}
		trees = append(trees, pkg.TargetTree{Target: tg, Tree: tree, Depends: deps})
	}
	rel, err := pkg.WriteRelease(pkg.ReleaseOptions{Project: &p, Root: prep.Repo.Root, Resolution: prep.Resolution, Trees: trees, Arch: "amd64", OutDir: t.TempDir(), MTime: time.Unix(1.7e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range rel.Artifacts {
		out[a.Target] = a.Path
	}
	return out
}

func run(t *testing.T, o verify.Options) *verify.Report {
	t.Helper()
	o.Roots = &sandbox.Rootfs{Dir: rootfsDir()}
	o.WorkDir = t.TempDir()
	o.Arch = "amd64"
	rep, err := verify.Verify(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func hooks(r *verify.Report) []string {
	var out []string
	for _, h := range r.Hooks {
		out = append(out, h.Script+" "+h.Args)
	}
	return out
}

func steps(r *verify.Report) string {
	var b strings.Builder
	for _, s := range r.Steps {
		b.WriteString(s.Name + " ok=" + map[bool]string{true: "y", false: "n"}[s.OK] + " " + s.Detail + "\n" + s.Output + "\n")
	}
	return b.String()
}

func TestHelloDebian(t *testing.T) {
	need(t, "dpkg-deb", "rpm")
	prep, tree := helloTree(t)
	v120 := packages(t, prep, tree, "1.2.0", "debian-12", "debian-13", "el9")
	v121 := packages(t, prep, tree, "1.2.1", "debian-12", "debian-13", "el9")
	// hello's rendered control and header fields, golden.
	golden(t, "hello.deb.control", command(t, "dpkg-deb", "-f", v120["debian-12"]))
	golden(t, "hello.rpm.header", command(t, "rpm", "-qp", "--qf", "Name: %{NAME}\nVersion: %{VERSION}\nRelease: %{RELEASE}\nArch: %{ARCH}\nLicense: %{LICENSE}\nGroup: %{GROUP}\nURL: %{URL}\nPackager: %{PACKAGER}\nSummary: %{SUMMARY}\nBuildTime: %{BUILDTIME}\n", v120["el9"])+
		"Requires:\n"+command(t, "rpm", "-qp", "--requires", v120["el9"])+"Config:\n"+command(t, "rpm", "-qp", "--configfiles", v120["el9"]))
	// package.exclude leaves libgreet's header and dev link out of both
	// formats; the runtime library stays.
	for _, listing := range []string{command(t, "dpkg-deb", "-c", v120["debian-12"]), command(t, "rpm", "-qpl", v120["el9"])} {
		if strings.Contains(listing, "/embedded/include") || regexp.MustCompile(`libgreet\.so( |$|\n)`).MatchString(listing) {
			t.Errorf("the package ships what package.exclude leaves out:\n%s", listing)
		}
		if !strings.Contains(listing, "libgreet.so.1") {
			t.Errorf("the package lacks libgreet.so.1:\n%s", listing)
		}
	}
	d12, _ := target.Builtin("debian-12")
	d13, _ := target.Builtin("debian-13")

	rep := run(t, verify.Options{Package: v121["debian-12"], Previous: v120["debian-12"], Name: "hello", Target: d12, Project: prep.Project})
	if !rep.OK {
		t.Fatalf("debian-12 upgrade failed:\n%s", steps(rep))
	}
	want := []string{
		"preinst install", "postinst configure", // 1.2.0
		"prerm upgrade 1.2.1-1+deb12", "preinst upgrade 1.2.0-1+deb12 1.2.1-1+deb12", "postrm upgrade 1.2.1-1+deb12", "postinst configure 1.2.0-1+deb12", // upgrade
		"prerm remove", "postrm remove", "postrm purge",
	}
	if got := hooks(rep); !slices.Equal(got, want) {
		t.Errorf("hooks:\n%v\nwant\n%v", got, want)
	}
	for _, s := range rep.Steps {
		if strings.Contains(s.Output, "hello: linked") || strings.Contains(s.Output, "fixed ownership") {
			t.Errorf("the postinst was not idempotent over package links and ownership: %s\n%s", s.Name, s.Output)
		}
		if s.Name == "verify: hello coach" && !strings.Contains(s.Output, "Hello, coach!") {
			t.Errorf("hello from /usr/bin: %q", s.Output)
		}
	}
	for _, name := range []string{"ownership", "links", "links removed", "nothing left"} {
		if !slices.ContainsFunc(rep.Steps, func(s verify.Step) bool { return s.Name == name && s.OK }) {
			t.Errorf("step %s did not pass", name)
		}
	}

	rep = run(t, verify.Options{Package: v121["debian-13"], Previous: v120["debian-13"], Name: "hello", Target: d13, Project: prep.Project})
	if !rep.OK {
		t.Fatalf("debian-13 upgrade failed:\n%s", steps(rep))
	}
	want13 := strings.ReplaceAll(strings.Join(want, "\n"), "deb12", "deb13")
	if got := strings.Join(hooks(rep), "\n"); got != want13 {
		t.Errorf("debian-13 hooks:\n%s\nwant\n%s", got, want13)
	}

	el9, _ := target.Builtin("el9")
	rep = run(t, verify.Options{Package: v121["el9"], Previous: v120["el9"], Name: "hello", Target: el9, Project: prep.Project})
	if !rep.OK {
		t.Fatalf("rpm cycle failed:\n%s", steps(rep))
	}
	got := strings.Join(hooks(rep), "\n")
	for _, w := range []string{"%pre hello-1.2.0-1.el9.x86_64", "%post hello-1.2.1-1.el9.x86_64", "%preun hello-1.2.0-1.el9.x86_64", "%postun hello-1.2.0-1.el9.x86_64", "%postun hello-1.2.1-1.el9.x86_64"} {
		if !strings.Contains(got, w) {
			t.Errorf("rpm scriptlets lack %s:\n%s", w, got)
		}
	}
	out := steps(rep)
	for _, w := range []string{"hello: postinst 1", "hello: postinst 2", "hello: postrm 1", "hello: postrm 0"} {
		if !strings.Contains(out, w) {
			t.Errorf("rpm scriptlet output lacks %q", w)
		}
	}
}

func TestFailingPostinstFails(t *testing.T) {
	prep, tree := helloTree(t)
	p := *prep.Project
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "postinst"), []byte("#!/bin/sh\necho 'postinst: cannot create /var/lib/hello: disk full' >&2\nexit 1\n"), 0o755)
	p.Hooks = map[string]string{"postinst": filepath.Join(dir, "postinst")}
	p.Package.Changelog = "" // Root is / here: hooks by absolute path
	tg, _ := target.Builtin("debian-12")
	a, err := pkg.Package(pkg.Options{Project: &p, Root: "/", Target: tg, Arch: "amd64", Tree: tree, MTime: time.Unix(1.7e9, 0), OutDir: t.TempDir(), Depends: []string{"libc6"}})
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, verify.Options{Package: a.Path, Name: "hello", Target: tg, Project: &p})
	f := rep.Failed()
	if rep.OK || f == nil || !strings.HasPrefix(f.Name, "install") || !strings.Contains(f.Output, "postinst: cannot create /var/lib/hello: disk full") {
		t.Fatalf("a failing postinst: %+v\n%s", f, steps(rep))
	}
}

func TestMissingRuntimeLibraryFails(t *testing.T) {
	need(t, "cc", "bwrap", "mmdebstrap", "strip")
	tg, _ := target.Builtin("debian-12")
	clean, err := (&sandbox.Rootfs{Dir: rootfsDir()}).Clean(context.Background(), tg, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	// A library this host has and a clean debian-12 root does not.
	lib := ""
	for _, l := range []string{"libyaml-0.so.2", "libffi.so.8", "libexpat.so.1", "libsqlite3.so.0", "libbz2.so.1.0", "libncursesw.so.6", "libcurl.so.4", "libssl.so.3"} {
		_, onHost := os.Stat("/usr/lib/x86_64-linux-gnu/" + l)
		_, inRoot := os.Stat(filepath.Join(clean, "usr/lib/x86_64-linux-gnu", l))
		if onHost == nil && inRoot != nil {
			lib = l
			break
		}
	}
	if lib == "" {
		t.Skip("no library found that this host has and a clean debian-12 root lacks")
	}
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	src := filepath.Join(t.TempDir(), "m.c")
	os.WriteFile(src, []byte("int main(void){return 0;}\n"), 0o644)
	if out, err := exec.Command("cc", "-o", filepath.Join(tree, "bin/needy"), src, "-Wl,--no-as-needed", "-l:"+lib).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v %s", err, out)
	}
	p := &spec.Project{Name: "needy", Description: "needs a library", Maintainer: "M <m@example.com>", License: "MIT", Version: "1.0.0", Iteration: 1,
		InstallDir: "/opt/needy", Verify: []string{"/opt/needy/bin/needy"}}
	a, err := pkg.Package(pkg.Options{Project: p, Target: tg, Arch: "amd64", Tree: tree, MTime: time.Unix(1.7e9, 0), OutDir: t.TempDir(), Depends: []string{"libc6"}})
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, verify.Options{Package: a.Path, Name: "needy", Target: tg, Project: p})
	f := rep.Failed()
	if rep.OK || f == nil || f.Name != "verify: /opt/needy/bin/needy" || !strings.Contains(f.Output, lib+": cannot open shared object file") {
		t.Fatalf("a missing runtime library: %+v\n%s", f, steps(rep))
	}
	t.Logf("the verify step says: %s: %s", f.Detail, f.Output)
}

// TestOwnedByASystemUser packages hello with its files owned by a system
// user the hooks create (the data directory 0750, one file root's), and
// installs it on debian-12 and in the rpm cycle: every path has the owner
// the package gives it (without the hooks' accounts, dpkg and rpm fall
// back to root and the ownership step fails).
func TestOwnedByASystemUser(t *testing.T) {
	need(t, "dpkg-deb", "rpm")
	prep, tree := helloTree(t)
	p := *prep.Project
	p.Package.Owner = "hello"
	p.Package.Files = []spec.FileAttrs{{Path: "etc", Mode: "0750"}, {Path: "bin/hello", Owner: "root", Group: "root"}}
	// hello's postinst puts root back on everything it finds otherwise.
	p.Hooks = map[string]string{"preinst": prep.Project.Hooks["preinst"], "prerm": prep.Project.Hooks["prerm"]}
	out := t.TempDir()
	for _, name := range []string{"debian-12", "el9"} {
		tg, _ := target.Builtin(name)
		deps := []string{"libc6 (>= 2.34)"}
		if tg.Format == target.FormatRPM {
			deps = []string{"libc.so.6()(64bit)"}
		}
		a, err := pkg.Package(pkg.Options{Project: &p, Root: prep.Repo.Root, Target: tg, Arch: "amd64", Tree: tree, MTime: time.Unix(1.7e9, 0), OutDir: out, Depends: deps})
		if err != nil {
			t.Fatal(err)
		}
		rep := run(t, verify.Options{Package: a.Path, Name: "hello", Target: tg, Project: &p})
		if !rep.OK {
			t.Fatalf("%s: %s", name, steps(rep))
		}
		for _, s := range rep.Steps {
			if s.Name == "ownership" {
				t.Logf("%s ownership: %s", name, strings.TrimSpace(s.Output))
				if !strings.Contains(s.Output, "paths owned as the package says") {
					t.Errorf("%s: ownership step: %s", name, s.Output)
				}
			}
		}
		var listing string
		if tg.Format == target.FormatDeb {
			listing = command(t, "dpkg-deb", "-c", a.Path)
			if f := command(t, "dpkg-deb", "-f", a.Path, "Pre-Depends"); strings.TrimSpace(f) != "adduser" {
				t.Errorf("Pre-Depends: %q", f)
			}
		} else {
			listing = command(t, "rpm", "-qp", "--qf", "[%{FILEUSERNAME}/%{FILEGROUPNAME} %{FILEMODES:perms} %{FILENAMES}\n]", a.Path)
		}
		for _, w := range []string{"hello/hello", "root/root"} {
			if !strings.Contains(listing, w) {
				t.Errorf("%s lists no %s files:\n%s", name, w, listing)
			}
		}
	}
}

// TestOwnershipOfManyFiles verifies a package of thousands of files with
// long paths (as ncurses' terminfo database is): its listing is far larger
// than one argument may be (128 KiB), and every path is still checked, on
// debian-12 and in the rpm cycle.
func TestOwnershipOfManyFiles(t *testing.T) {
	need(t, "dpkg-deb", "rpm")
	prep, built := helloTree(t)
	tree := t.TempDir()
	if out, err := exec.Command("cp", "-a", built+"/.", tree).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	const dirs, files = 40, 100
	for d := 0; d < dirs; d++ {
		dir := filepath.Join(tree, "embedded/share/terminfo", fmt.Sprintf("%02d-a-directory-with-a-rather-long-name-to-make-the-listing-long", d))
		os.MkdirAll(dir, 0o755)
		for f := 0; f < files; f++ {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("entry-%03d-with-a-long-name-as-terminal-descriptions-have", f)), []byte("x"), 0o644)
		}
	}
	p := *prep.Project
	out := t.TempDir()
	for _, name := range []string{"debian-12", "el9"} {
		tg, _ := target.Builtin(name)
		deps := []string{"libc6 (>= 2.34)"}
		if tg.Format == target.FormatRPM {
			deps = []string{"libc.so.6()(64bit)"}
		}
		a, err := pkg.Package(pkg.Options{Project: &p, Root: prep.Repo.Root, Target: tg, Arch: "amd64", Tree: tree, MTime: time.Unix(1.7e9, 0), OutDir: out, Depends: deps})
		if err != nil {
			t.Fatal(err)
		}
		rep := run(t, verify.Options{Package: a.Path, Name: "hello", Target: tg, Project: &p})
		if !rep.OK {
			t.Fatalf("%s: %s", name, steps(rep))
		}
		for _, s := range rep.Steps {
			if s.Name == "ownership" {
				t.Logf("%s ownership: %s", name, s.Output)
				var n int
				fmt.Sscanf(s.Output, "%d paths owned", &n)
				if n < dirs*files {
					t.Errorf("%s: %d paths checked, the package has more than %d", name, n, dirs*files)
				}
			}
		}
	}
}

func TestChunkLines(t *testing.T) {
	for _, c := range []struct {
		text string
		max  int
		want []string
	}{
		{"", 10, []string{""}},
		{"a\nb\nc\n", 10, []string{"a\nb\nc"}},
		{"aaaa\nbbbb\ncccc", 9, []string{"aaaa\nbbbb", "cccc"}},
		{"aaaa\nbbbb\ncccc", 4, []string{"aaaa", "bbbb", "cccc"}},
		{"a-very-long-line\nb", 4, []string{"a-very-long-line", "b"}},
	} {
		if got := verify.ChunkLines(c.text, c.max); !slices.Equal(got, c.want) {
			t.Errorf("chunkLines(%q, %d) = %q, want %q", c.text, c.max, got, c.want)
		}
	}
}

// TestServiceInOneEntry: a daemon is started, checked and stopped in one
// verify entry (one script, one sandbox), and a daemon an entry leaves
// running is gone when the entry ends: it no longer writes into the
// overlay the next entries share.
func TestServiceInOneEntry(t *testing.T) {
	need(t, "bwrap", "mmdebstrap", "dpkg-deb")
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	// A daemon: a pid file, a ready file, then a tick a tenth of a second
	// in its state directory until it is killed.
	os.WriteFile(filepath.Join(tree, "bin/svcd"), []byte("#!/bin/sh\nmkdir -p /var/lib/svcd\necho $$ >/var/lib/svcd/pid\n: >/var/lib/svcd/ready\nn=0\nwhile :; do n=$((n+1)); echo $n >/var/lib/svcd/ticks; sleep 0.1; done\n"), 0o755)
	p := &spec.Project{Name: "svc", Description: "a service", Maintainer: "M <m@example.com>", License: "MIT", Version: "1.0.0", Iteration: 1,
		InstallDir: "/opt/svc", Verify: []string{
			// Started, checked and stopped in one entry.
			"/opt/svc/bin/svcd &\nfor i in $(seq 50); do [ -e /var/lib/svcd/ready ] && break; sleep 0.1; done\nkill -0 \"$(cat /var/lib/svcd/pid)\"\nkill \"$(cat /var/lib/svcd/pid)\"",
			// Left running...
			"rm -f /var/lib/svcd/ready; /opt/svc/bin/svcd & for i in $(seq 50); do [ -e /var/lib/svcd/ready ] && break; sleep 0.1; done",
			// ...and gone at the next entry: its ticks have stopped.
			"a=$(cat /var/lib/svcd/ticks); sleep 0.5; b=$(cat /var/lib/svcd/ticks); [ \"$a\" = \"$b\" ] || { echo \"the daemon of the last entry still runs: $a then $b\"; exit 1; }",
		}}
	tg, _ := target.Builtin("debian-12")
	a, err := pkg.Package(pkg.Options{Project: p, Target: tg, Arch: "amd64", Tree: tree, MTime: time.Unix(1.7e9, 0), OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, verify.Options{Package: a.Path, Name: "svc", Target: tg, Project: p})
	if !rep.OK {
		t.Fatalf("%s", steps(rep))
	}
}

// TestSystemdUnitAsExtraFile: a package that ships systemd units as extra
// files, under /lib/systemd/system (bookworm's dpkg place, behind the
// merged-/usr link) and /usr/lib/systemd/system, and creates its service's
// account (package.users) without giving it any file, installs, checks
// (its daemon started, checked and stopped in one verify entry), and
// leaves nothing behind on debian-12, debian-13 and in the rpm cycle:
// the directories the system already had (/lib, /usr/lib/systemd, where
// apt's timers are) are not the package's leftovers.
func TestSystemdUnitAsExtraFile(t *testing.T) {
	need(t, "bwrap", "mmdebstrap", "dpkg-deb", "rpm")
	repo := t.TempDir()
	tree := filepath.Join(repo, "tree")
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	os.WriteFile(filepath.Join(tree, "bin/svcd"), []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755)
	os.MkdirAll(filepath.Join(repo, "files"), 0o755)
	os.WriteFile(filepath.Join(repo, "files/svc.service"), []byte("[Unit]\nDescription=svc\n\n[Service]\nExecStart=/opt/svc/bin/svcd\n\n[Install]\nWantedBy=multi-user.target\n"), 0o644)
	p := &spec.Project{Name: "svc", Description: "a service", Maintainer: "M <m@example.com>", License: "MIT", Version: "1.0.0", Iteration: 1,
		InstallDir: "/opt/svc", Verify: []string{
			"test -f /usr/lib/systemd/system/svc.service && test -f /usr/lib/systemd/system/svc-other.service",
			// The service's account exists and owns nothing of the package.
			`getent passwd svc >/dev/null && getent group svc >/dev/null && [ "$(stat -c %U:%G /opt/svc/bin/svcd)" = root:root ]`,
			// The daemon the unit names, started, checked and stopped in
			// one entry.
			"/opt/svc/bin/svcd & pid=$!\nsleep 0.2\nkill -0 $pid\nkill $pid\nwait $pid || true",
		},
		Package: spec.Package{Users: []spec.Account{{Name: "svc"}}, ExtraFiles: []spec.ExtraFile{
			// Where each format's policy puts a unit.
			{Source: "files/svc.service", Destination: "/lib/systemd/system/svc.service", Formats: []string{"deb"}},
			{Source: "files/svc.service", Destination: "/usr/lib/systemd/system/svc.service", Formats: []string{"rpm"}},
			{Source: "files/svc.service", Destination: "/usr/lib/systemd/system/svc-other.service"},
			// A link that differs per format: each system's CA bundle.
			{Destination: "/etc/ssl/svc-ca.pem", Link: "/etc/ssl/certs/ca-certificates.crt", Formats: []string{"deb"}},
			{Destination: "/etc/ssl/svc-ca.pem", Link: "/etc/pki/tls/certs/ca-bundle.crt", Formats: []string{"rpm"}},
		}}}
	link := map[string]string{"deb": "/etc/ssl/svc-ca.pem -> /etc/ssl/certs/ca-certificates.crt", "rpm": "/etc/ssl/svc-ca.pem -> /etc/pki/tls/certs/ca-bundle.crt"}
	want := map[string]string{"deb": "./lib/systemd/system/svc.service", "rpm": "/usr/lib/systemd/system/svc.service"}
	other := map[string]string{"deb": "./usr/lib/systemd/system/svc.service", "rpm": "/lib/systemd/system/svc.service"}
	for _, name := range []string{"debian-12", "debian-13", "el9"} {
		t.Run(name, func(t *testing.T) {
			tg, _ := target.Builtin(name)
			a, err := pkg.Package(pkg.Options{Project: p, Root: repo, Target: tg, Arch: "amd64", Tree: tree, MTime: time.Unix(1.7e9, 0), OutDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			var list string
			if tg.Format == target.FormatRPM {
				list = command(t, "rpm", "-qlp", a.Path)
			} else {
				list = command(t, "dpkg-deb", "-c", a.Path)
			}
			has := func(p string) bool {
				for _, line := range strings.Split(list, "\n") {
					if line == p || strings.HasSuffix(line, " "+p) {
						return true
					}
				}
				return false
			}
			if !has(want[tg.Format]) || has(other[tg.Format]) {
				t.Errorf("the %s package should hold %s and not %s:\n%s", tg.Format, want[tg.Format], other[tg.Format], list)
			}
			if tg.Format == target.FormatDeb && !has("."+link["deb"]) {
				t.Errorf("the deb should hold the link %s:\n%s", link["deb"], list)
			}
			rep := run(t, verify.Options{Package: a.Path, Name: "svc", Target: tg, Project: p})
			if !rep.OK {
				t.Fatalf("%s", steps(rep))
			}
			// Verify checked the format's link, installed, and gone
			// after removal.
			if got := steps(rep); !strings.Contains(got, link[tg.Format]) {
				t.Errorf("verify did not check the link %s:\n%s", link[tg.Format], got)
			}
		})
	}
}
