package health

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/target"
)

// The fixtures are tiny C programs and libraries compiled by the tests with
// the host's cc, installed into a tree that stands for /opt/app, and checked
// against this host as the debian-12 target's root (the host is Debian 12).

const installDir = "/opt/app"

func needCC(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler (apt-get install gcc)")
	}
}

// cc compiles src (written to a temp file) into tree/out with args.
func cc(t *testing.T, tree, out, src string, args ...string) {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, "x.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(tree, out)
	os.MkdirAll(filepath.Dir(dst), 0o755)
	cmd := exec.Command("cc", append([]string{"-o", dst, c}, args...)...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cc %v: %v\n%s", args, err, b)
	}
}

const libSrc = "int foo(void) { return 42; }\n"
const mainSrc = "int foo(void);\nint main(void) { return foo() - 42; }\n"

// libfoo builds tree/embedded/lib/libfoo.so.1 and returns the link flags
// that find it at build time.
func libfoo(t *testing.T, tree string) []string {
	cc(t, tree, "embedded/lib/libfoo.so.1", libSrc, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1")
	os.Symlink("libfoo.so.1", filepath.Join(tree, "embedded/lib/libfoo.so"))
	return []string{"-L" + filepath.Join(tree, "embedded/lib"), "-lfoo"}
}

func check(t *testing.T, tree string, tgt string, mod func(*Options)) *Report {
	t.Helper()
	tg, _ := target.Builtin(tgt)
	opts := Options{Tree: tree, InstallDir: installDir, Sysroot: "/", Target: tg, Arch: "amd64"}
	if mod != nil {
		mod(&opts)
	}
	rep, err := Check(opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func kinds(r *Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Severity+" "+p.Kind+" "+p.File+" "+p.Library+" "+p.Version)
	}
	return out
}

func TestSystemLibraryOutsideAllowlistFails(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	cc(t, tree, "bin/zapp", "const char *zlibVersion(void);\nint main(void) { return zlibVersion()[0] == 0; }\n", "-l:libz.so.1")
	rep := check(t, tree, "debian-12", func(o *Options) {
		o.Owner = func(string) string { return "app" }
		o.Providers = map[string]string{"libz.so.1": "zlib"}
	})
	if got := kinds(rep); !slices.Equal(got, []string{"error not-allowed bin/zapp libz.so.1 "}) {
		t.Fatalf("problems = %v", got)
	}
	p := rep.Problems[0]
	if !strings.Contains(p.Resolved, "libz.so.1") || p.Component != "app" || !strings.Contains(p.Fix, "add zlib as a dependency of app") {
		t.Errorf("problem = %+v", p)
	}
	// Allowing it in health.allow makes it a runtime dependency instead.
	rep = check(t, tree, "debian-12", func(o *Options) { o.Allow = []string{"libz.so.*"} })
	if !rep.OK() || !slices.Contains(rep.Dependencies, "zlib1g") {
		t.Errorf("allowed: %v, dependencies %v", kinds(rep), rep.Dependencies)
	}
}

func TestRpathInsideInstallDirPasses(t *testing.T) {
	needCC(t)
	for _, tags := range []string{"--enable-new-dtags", "--disable-new-dtags"} { // RUNPATH, RPATH
		tree := t.TempDir()
		link := libfoo(t, tree)
		cc(t, tree, "bin/app", mainSrc, append(link, "-Wl,"+tags, "-Wl,-rpath,"+installDir+"/embedded/lib")...)
		rep := check(t, tree, "debian-12", nil)
		if !rep.OK() {
			t.Fatalf("%s: %v", tags, kinds(rep))
		}
		var app Object
		for _, o := range rep.Objects {
			if o.File == "bin/app" {
				app = o
			}
		}
		want := Resolution{Soname: "libfoo.so.1", Resolved: installDir + "/embedded/lib/libfoo.so.1", How: map[string]string{"--enable-new-dtags": "runpath", "--disable-new-dtags": "rpath"}[tags]}
		if !slices.Contains(app.Needed, want) {
			t.Errorf("%s: app needs %+v, want %+v", tags, app.Needed, want)
		}
		if !slices.Contains(rep.Dependencies, "libc6 (>= "+strings.TrimPrefix(rep.GlibcFloor, "GLIBC_")+")") || rep.GlibcFloor == "" {
			t.Errorf("dependencies %v, glibc floor %s", rep.Dependencies, rep.GlibcFloor)
		}
	}
}

// TestTreeResolvesWithoutOrWithAnyRoot: libraries in the tree resolve
// whether there is no target root at all or one without /opt.
func TestTreeResolvesWithoutOrWithAnyRoot(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	link := libfoo(t, tree)
	cc(t, tree, "bin/app", mainSrc, append(link, "-Wl,-rpath,"+installDir+"/embedded/lib")...)
	emptyRoot := t.TempDir()
	for _, sysroot := range []string{"", emptyRoot} {
		rep := check(t, tree, "debian-12", func(o *Options) { o.Sysroot = sysroot })
		for _, p := range rep.Problems {
			if p.Library == "libfoo.so.1" {
				t.Errorf("sysroot %q: %+v", sysroot, p)
			}
		}
	}
}

func TestOriginPasses(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	link := libfoo(t, tree)
	cc(t, tree, "bin/app", mainSrc, append(link, "-Wl,-rpath,$ORIGIN/../embedded/lib")...)
	if rep := check(t, tree, "debian-12", nil); !rep.OK() {
		t.Fatal(kinds(rep))
	}
}

func TestMissingLibraryIsUnresolved(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	link := libfoo(t, tree)
	cc(t, tree, "bin/app", mainSrc, append(link, "-Wl,-rpath,"+installDir+"/embedded/lib")...)
	os.Remove(filepath.Join(tree, "embedded/lib/libfoo.so.1"))
	rep := check(t, tree, "debian-12", nil)
	if got := kinds(rep); !slices.Equal(got, []string{"error unresolved bin/app libfoo.so.1 "}) {
		t.Fatalf("problems = %v", got)
	}
}

// TestMissingSymbolVersion links a program against a library with a
// version script, then ships an unversioned library of the same soname.
func TestMissingSymbolVersion(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	script := filepath.Join(t.TempDir(), "ver.map")
	os.WriteFile(script, []byte("VER_2 { global: foo; local: *; };\n"), 0o644)
	cc(t, tree, "embedded/lib/libfoo.so.1", libSrc, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-Wl,--version-script="+script)
	os.Symlink("libfoo.so.1", filepath.Join(tree, "embedded/lib/libfoo.so"))
	cc(t, tree, "bin/app", mainSrc, "-L"+filepath.Join(tree, "embedded/lib"), "-lfoo", "-Wl,-rpath,"+installDir+"/embedded/lib")
	if rep := check(t, tree, "debian-12", nil); !rep.OK() {
		t.Fatalf("versioned library: %v", kinds(rep))
	}
	cc(t, tree, "embedded/lib/libfoo.so.1", libSrc, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1")
	rep := check(t, tree, "debian-12", func(o *Options) {
		o.Owner = func(rel string) string {
			return map[string]string{"bin/app": "app", "embedded/lib/libfoo.so.1": "foo"}[rel]
		}
	})
	if got := kinds(rep); !slices.Equal(got, []string{"error missing-version bin/app libfoo.so.1 VER_2"}) {
		t.Fatalf("problems = %v", got)
	}
	if p := rep.Problems[0]; !strings.Contains(p.Why, "needs symbol version VER_2 of libfoo.so.1") || !strings.Contains(p.Fix, "foo") {
		t.Errorf("problem = %+v", p)
	}
}

// TestRpathInheritance: a library loaded by an executable with DT_RPATH
// (and no DT_RUNPATH) finds its own needs through the executable's RPATH;
// with DT_RUNPATH on the executable it does not, as with ld.so.
func TestRpathInheritance(t *testing.T) {
	needCC(t)
	for _, tc := range []struct {
		tags string
		ok   bool
	}{{"--disable-new-dtags", true}, {"--enable-new-dtags", false}} {
		tree := t.TempDir()
		cc(t, tree, "private/libb.so.1", "int b(void){return 1;}\n", "-shared", "-fPIC", "-Wl,-soname,libb.so.1")
		cc(t, tree, "embedded/lib/liba.so.1", "int b(void);\nint a(void){return b();}\n", "-shared", "-fPIC", "-Wl,-soname,liba.so.1", "-L"+filepath.Join(tree, "private"), "-l:libb.so.1")
		cc(t, tree, "bin/app", "int a(void);\nint main(void){return a()-1;}\n", "-L"+filepath.Join(tree, "embedded/lib"), "-l:liba.so.1",
			"-Wl,-rpath-link,"+filepath.Join(tree, "private"), "-Wl,"+tc.tags, "-Wl,-rpath,"+installDir+"/embedded/lib:"+installDir+"/private")
		rep := check(t, tree, "debian-12", func(o *Options) { o.Ignore = []string{"private/**"} })
		var libbFromLiba bool
		for _, p := range rep.Problems {
			if p.File == "embedded/lib/liba.so.1" && p.Library == "libb.so.1" && p.Kind == KindUnresolved {
				libbFromLiba = true
			}
		}
		if tc.ok != rep.OK() || tc.ok == libbFromLiba {
			t.Errorf("%s: ok=%v problems %v", tc.tags, rep.OK(), kinds(rep))
		}
	}
}

// elfHeader writes a minimal 64-bit little-endian ELF header.
func elfHeader(machine uint16) []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1                     // ELFCLASS64, little endian, version
	binary.LittleEndian.PutUint16(b[16:], 3)       // ET_DYN
	binary.LittleEndian.PutUint16(b[18:], machine) // e_machine
	binary.LittleEndian.PutUint32(b[20:], 1)
	binary.LittleEndian.PutUint16(b[52:], 64) // e_ehsize
	return b
}

func TestForeignBrokenStaticAndScripts(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "lib"), 0o755)
	os.WriteFile(filepath.Join(tree, "lib/libarm.so"), elfHeader(183), 0o644) // EM_AARCH64
	os.WriteFile(filepath.Join(tree, "lib/broken.so"), append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 9)...), 0o644)
	os.WriteFile(filepath.Join(tree, "lib/tiny"), []byte("\x7fELF"), 0o644)
	os.WriteFile(filepath.Join(tree, "lib/script.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	cc(t, tree, "bin/static", "int main(void){return 0;}\n", "-static")
	rep := check(t, tree, "debian-12", nil)
	// A foreign-architecture file fails the check (a package of amd64
	// that ships aarch64 code does not run); malformed ones are warnings.
	if rep.OK() || rep.Errors != 1 {
		t.Errorf("one error expected: %v", kinds(rep))
	}
	got := kinds(rep)
	for _, want := range []string{"error foreign-arch lib/libarm.so  ", "warning malformed lib/broken.so  ", "warning malformed lib/tiny  "} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in %v", want, got)
		}
	}
	for _, o := range rep.Objects {
		if o.File == "bin/static" && o.Kind != "static" {
			t.Errorf("static binary reported as %s", o.Kind)
		}
		if o.File == "lib/script.sh" {
			t.Error("a script was taken for ELF")
		}
	}
	if rep.ELF != 4 || rep.Files != 5 {
		t.Errorf("ELF %d of %d files", rep.ELF, rep.Files)
	}
	// Ignored, it passes (a cross toolchain's target files).
	if rep := check(t, tree, "debian-12", func(o *Options) { o.Ignore = []string{"lib/libarm.so"} }); !rep.OK() {
		t.Errorf("ignored: %v", kinds(rep))
	}
}

func TestDSTInNeededWithSlash(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	libfoo(t, tree)
	v := &view{installDir: installDir, tree: tree, sysroot: "/"}
	l := newLoader(v, nil, "lib/x86_64-linux-gnu")
	app := &object{class: 2, machine: 62, needed: []string{"$ORIGIN/../embedded/lib/libfoo.so.1"}}
	n := &node{path: installDir + "/bin/app", real: installDir + "/bin/app", obj: app}
	f := l.resolve(n, app.needed[0])
	if f.obj == nil || f.path != installDir+"/embedded/lib/libfoo.so.1" || f.how != "path" {
		t.Errorf("resolve = %+v", f)
	}
	if got := l.expand("$LIB/${PLATFORM}", n); got != "lib/x86_64-linux-gnu/x86_64" {
		t.Errorf("expand = %q", got)
	}
}

func TestRPMDependencies(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	cc(t, tree, "bin/app", "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n")
	rep := check(t, tree, "el9", func(o *Options) { o.Sysroot = "" })
	if !rep.OK() {
		t.Fatal(kinds(rep))
	}
	if !slices.Contains(rep.Dependencies, "libc.so.6()(64bit)") || !slices.ContainsFunc(rep.Dependencies, func(d string) bool { return strings.HasPrefix(d, "libc.so.6(GLIBC_2.") }) {
		t.Errorf("rpm dependencies = %v", rep.Dependencies)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		glob, path string
		want       bool
	}{
		{"embedded/share/**", "embedded/share/a/b/c", true},
		{"embedded/share/**", "embedded/share", true},
		{"embedded/share/**", "embedded/lib/x", false},
		{"**/*.a", "embedded/lib/libz.a", true},
		{"embedded/*/x", "embedded/lib/x", true},
		{"embedded/*/x", "embedded/lib/y/x", false},
		{"embedded/include", "embedded/include/greet.h", true}, // a directory covers its contents
		{"embedded/lib/*.{a,la}", "embedded/lib/libz.la", true},
		{"embedded/lib/*.so", "embedded/lib/libz.so.1", false},
		{"embedded/lib/*.so", "embedded/lib/libz.so", true},
	} {
		if got := Matches(c.path, []string{c.glob}); got != c.want {
			t.Errorf("Matches(%q, %q) = %v", c.path, c.glob, got)
		}
	}
}

// patchELF rewrites a copy of an ELF64 file in place with edit.
func patchELF(t *testing.T, file string, edit func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if b[4] != 2 || b[5] != 1 {
		t.Skip("the patches are for little-endian ELF64")
	}
	edit(b)
	if err := os.WriteFile(file, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// sectionHeader returns the offset of the section header of name.
func sectionHeader(t *testing.T, b []byte, name string) int {
	t.Helper()
	le := binary.LittleEndian
	shoff, shentsize, shnum, shstrndx := int(le.Uint64(b[0x28:])), int(le.Uint16(b[0x3a:])), int(le.Uint16(b[0x3c:])), int(le.Uint16(b[0x3e:]))
	strOff := int(le.Uint64(b[shoff+shstrndx*shentsize+0x18:]))
	for i := 0; i < shnum; i++ {
		h := shoff + i*shentsize
		n := strOff + int(le.Uint32(b[h:]))
		end := n
		for b[end] != 0 {
			end++
		}
		if string(b[n:end]) == name {
			return h
		}
	}
	t.Fatalf("no section %s", name)
	return 0
}

// TestHealthEvasions: ways to load a system library at run time that a
// check reading the wrong thing would pass. Each must be the error a plain
// DT_NEEDED on the system library is.
func TestHealthEvasions(t *testing.T) {
	needCC(t)
	sysZ := "/usr/lib/x86_64-linux-gnu/libz.so.1"
	if _, err := os.Stat(sysZ); err != nil {
		t.Skipf("%s is not on this host: %v", sysZ, err)
	}
	zapp := "const char *zlibVersion(void);\nint main(void) { return zlibVersion()[0] == 0; }\n"
	rpath := "-Wl,-rpath," + installDir + "/embedded/lib"
	want := []string{"error not-allowed bin/zapp libz.so.1 "}
	cases := map[string]func(tree string) []string{
		// The link's path is inside the prefix; where it leads is not.
		"absolute link in the tree to a system library": func(tree string) []string {
			cc(t, tree, "bin/zapp", zapp, "-l:libz.so.1", rpath)
			os.MkdirAll(filepath.Join(tree, "embedded/lib"), 0o755)
			os.Symlink(sysZ, filepath.Join(tree, "embedded/lib/libz.so.1"))
			return want
		},
		"relative link out of the prefix to a system library": func(tree string) []string {
			cc(t, tree, "bin/zapp", zapp, "-l:libz.so.1", rpath)
			os.MkdirAll(filepath.Join(tree, "embedded/lib"), 0o755)
			os.Symlink("../../../.."+sysZ, filepath.Join(tree, "embedded/lib/libz.so.1"))
			return want
		},
		"link chain inside the tree that ends in the system": func(tree string) []string {
			cc(t, tree, "bin/zapp", zapp, "-l:libz.so.1", rpath)
			os.MkdirAll(filepath.Join(tree, "embedded/lib/real"), 0o755)
			os.Symlink("real/libz.so.1", filepath.Join(tree, "embedded/lib/libz.so.1"))
			os.Symlink(sysZ, filepath.Join(tree, "embedded/lib/real/libz.so.1"))
			return want
		},
		// Filtees are loaded by ld.so like needed libraries.
		"DT_FILTER": func(tree string) []string {
			cc(t, tree, "embedded/lib/libf.so.1", libSrc, "-shared", "-fPIC", "-Wl,-soname,libf.so.1", "-Wl,-F,libz.so.1")
			cc(t, tree, "bin/app", mainSrc, "-L"+filepath.Join(tree, "embedded/lib"), "-l:libf.so.1", rpath)
			return []string{"error not-allowed embedded/lib/libf.so.1 libz.so.1 "}
		},
		"DT_AUXILIARY": func(tree string) []string {
			cc(t, tree, "embedded/lib/libf.so.1", libSrc, "-shared", "-fPIC", "-Wl,-soname,libf.so.1", "-Wl,-f,libz.so.1")
			cc(t, tree, "bin/app", mainSrc, "-L"+filepath.Join(tree, "embedded/lib"), "-l:libf.so.1", rpath)
			return []string{"error not-allowed embedded/lib/libf.so.1 libz.so.1 "}
		},
		// ld.so reads PT_DYNAMIC; the section headers can lie or be gone.
		"no section headers": func(tree string) []string {
			cc(t, tree, "bin/zapp", zapp, "-l:libz.so.1")
			patchELF(t, filepath.Join(tree, "bin/zapp"), func(b []byte) {
				binary.LittleEndian.PutUint64(b[0x28:], 0) // e_shoff
				binary.LittleEndian.PutUint16(b[0x3c:], 0) // e_shnum
				binary.LittleEndian.PutUint16(b[0x3e:], 0) // e_shstrndx
			})
			return want
		},
		".dynamic section of size 0": func(tree string) []string {
			cc(t, tree, "bin/zapp", zapp, "-l:libz.so.1")
			patchELF(t, filepath.Join(tree, "bin/zapp"), func(b []byte) {
				binary.LittleEndian.PutUint64(b[sectionHeader(t, b, ".dynamic")+0x20:], 0) // sh_size
			})
			return want
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			tree := t.TempDir()
			want := setup(tree)
			rep := check(t, tree, "debian-12", nil)
			if got := kinds(rep); !slices.Equal(got, want) {
				t.Errorf("problems = %v, want %v", got, want)
			}
			if rep.OK() {
				t.Errorf("the check passed, with runtime dependencies %v", rep.Dependencies)
			}
		})
	}
}

// TestExcludedLibraryANeededOneFails: package.exclude leaves files out of
// the package, so the check does not see them and does not let the loader
// find them: a header and a dev link go quietly, a library a program
// needs is an error that names the exclusion.
func TestExcludedLibraryANeededOneFails(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	link := libfoo(t, tree)
	cc(t, tree, "bin/app", mainSrc, append(link, "-Wl,-rpath,"+installDir+"/embedded/lib")...)
	os.MkdirAll(filepath.Join(tree, "embedded/include"), 0o755)
	os.WriteFile(filepath.Join(tree, "embedded/include/foo.h"), []byte("int foo(void);\n"), 0o644)
	os.Symlink("libfoo.so.1", filepath.Join(tree, "embedded/lib/libfoo.so"))
	rep := check(t, tree, "debian-12", func(o *Options) { o.Exclude = []string{"embedded/include/**", "embedded/lib/*.so"} })
	if !rep.OK() || rep.Excluded != 2 {
		t.Errorf("excluding a header and a dev link: ok %v, excluded %d, problems %v", rep.OK(), rep.Excluded, kinds(rep))
	}
	rep = check(t, tree, "debian-12", func(o *Options) { o.Exclude = []string{"embedded/lib/libfoo.so*"} })
	if got := kinds(rep); !slices.Equal(got, []string{"error unresolved bin/app libfoo.so.1 "}) {
		t.Fatalf("excluding libfoo: problems = %v", got)
	}
	if why := rep.Problems[0].Why; !strings.Contains(why, "left out of the package by package.exclude") {
		t.Errorf("the error does not name the exclusion: %s", why)
	}
}

// TestRunpathOutsideTheTree: an RPATH or RUNPATH entry that leads outside
// the install dir is a warning (an error with Runpath: Error), naming the
// file and the entry: a libtool build directory that leaked (the binary
// still finds its library through the install dir's entry, so nothing
// else is wrong), a relative entry, $ORIGIN climbing out, a system
// directory; entries inside the tree, absolute or $ORIGIN-relative, are
// fine.
func TestRunpathOutsideTheTree(t *testing.T) {
	needCC(t)
	for _, tc := range []struct {
		name, tags, rpath string
		entry, why        string // "" entry: no problem
	}{
		{"inside", "--enable-new-dtags", installDir + "/embedded/lib", "", ""},
		{"origin inside", "--enable-new-dtags", "$ORIGIN/../embedded/lib", "", ""},
		{"libtool leak", "--enable-new-dtags", installDir + "/embedded/lib:/coach/src/libfoo/.libs", "/coach/src/libfoo/.libs", `RUNPATH entry "/coach/src/libfoo/.libs" is a directory of the build (/coach/src)`},
		{"libtool leak as RPATH", "--disable-new-dtags", installDir + "/embedded/lib:/tmp/build/.libs", "/tmp/build/.libs", `RPATH entry "/tmp/build/.libs" is a directory of the build (/tmp)`},
		{".libs elsewhere", "--enable-new-dtags", installDir + "/embedded/lib:/usr/src/foo/.libs", "/usr/src/foo/.libs", "is a libtool build directory"},
		{"relative", "--enable-new-dtags", installDir + "/embedded/lib:lib", "lib", "is relative"},
		{"origin climbs out", "--enable-new-dtags", installDir + "/embedded/lib:$ORIGIN/../../../usr/lib", "$ORIGIN/../../../usr/lib", "outside /opt/app: it climbs out of the tree"},
		{"system dir", "--enable-new-dtags", installDir + "/embedded/lib:/usr/local/lib", "/usr/local/lib", "is outside /opt/app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := t.TempDir()
			link := libfoo(t, tree)
			cc(t, tree, "bin/app", mainSrc, append(link, "-Wl,"+tc.tags, "-Wl,-rpath,"+tc.rpath)...)
			if tc.entry == "" {
				if rep := check(t, tree, "debian-12", nil); len(rep.Problems) != 0 {
					t.Fatalf("problems: %v", kinds(rep))
				}
				return
			}
			// A library of the tree with the same search path is judged too.
			cc(t, tree, "embedded/lib/libbar.so.1", "int foo(void);\nint bar(void) { return foo(); }\n", append(link, "-shared", "-fPIC", "-Wl,-soname,libbar.so.1", "-Wl,"+tc.tags, "-Wl,-rpath,"+tc.rpath)...)
			rep := check(t, tree, "debian-12", nil)
			if !rep.OK() || rep.Warnings != 2 || len(rep.Problems) != 2 {
				t.Fatalf("ok %v, %d warnings: %+v", rep.OK(), rep.Warnings, rep.Problems)
			}
			var files []string
			for _, p := range rep.Problems {
				files = append(files, p.File)
				if p.Kind != KindRunpath || p.Severity != Warning || p.Entry != tc.entry || !strings.Contains(p.Why, tc.why) || !strings.Contains(p.Fix, "-Wl,-rpath,/opt/app/embedded/lib") {
					t.Errorf("problem %+v, want entry %q and why %q", p, tc.entry, tc.why)
				}
			}
			if slices.Sort(files); !slices.Equal(files, []string{"bin/app", "embedded/lib/libbar.so.1"}) {
				t.Errorf("files %v", files)
			}
			// With health.runpath: error, the check fails.
			rep = check(t, tree, "debian-12", func(o *Options) { o.Runpath = Error })
			if rep.OK() || rep.Errors != 2 {
				t.Errorf("as errors: ok %v, %d errors", rep.OK(), rep.Errors)
			}
		})
	}
}

// TestGlibcTooNew: a binary that needs a newer glibc than the target has
// fails, and the advice fits how the tree was made: its own build root
// (a build on a newer host), or another target's tree packaged with
// --from.
func TestGlibcTooNew(t *testing.T) {
	needCC(t)
	tree := t.TempDir()
	cc(t, tree, "bin/app", "int main(void) { return 0; }\n")
	for _, tc := range []struct{ builtFor, fix string }{
		{"", "build it in the target's own build root"},
		{"old", "build it in the target's own build root"},
		{"debian-12", "this tree was built for debian-12, whose glibc is newer: build the project for old itself (coach build -t old), or package old from the tree of a target whose glibc is not newer than its own (--from)"},
	} {
		rep := check(t, tree, "debian-12", func(o *Options) {
			o.Target.Name, o.Target.Glibc, o.BuiltFor = "old", "2.17", tc.builtFor
		})
		var found bool
		for _, p := range rep.Problems {
			if p.Kind == KindGlibcTooNew && p.File == "bin/app" {
				found = true
				if !strings.HasPrefix(p.Fix, tc.fix) || !strings.Contains(p.Why, "but old has glibc 2.17") {
					t.Errorf("built for %q: why %q, fix %q", tc.builtFor, p.Why, p.Fix)
				}
			}
		}
		if !found || rep.OK() {
			t.Errorf("built for %q: %v", tc.builtFor, kinds(rep))
		}
	}
}

// TestHostBinaryInAnArm64Tree: a build for arm64 that produced this
// host's x86-64 programs (an image without an arm64 variant) fails the
// check, naming the file.
func TestHostBinaryInAnArm64Tree(t *testing.T) {
	needCC(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the fixture is an x86-64 binary")
	}
	tree := t.TempDir()
	cc(t, tree, "bin/hello", "int main(void) { return 0; }\n")
	rep := check(t, tree, "debian-12", func(o *Options) { o.Arch = "arm64"; o.Sysroot = "" })
	if rep.OK() || !slices.Contains(kinds(rep), "error foreign-arch bin/hello  ") {
		t.Fatalf("an x86-64 binary in an arm64 tree: %v", kinds(rep))
	}
	if !strings.Contains(rep.Problems[0].Why, "not for arm64") {
		t.Errorf("why: %s", rep.Problems[0].Why)
	}
}
