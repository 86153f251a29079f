package spec

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files")

// extract writes a txtar archive into a fresh directory. Files under
// scripts/ are executable unless the archive comment says
// "mode 0644 <path>"; "symlink <path> <target>" makes a symlink.
func extract(t *testing.T, ar *txtar.Archive) string {
	t.Helper()
	dir := t.TempDir()
	modes := map[string]os.FileMode{}
	var links [][2]string
	sc := bufio.NewScanner(strings.NewReader(string(ar.Comment)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "symlink" {
			links = append(links, [2]string{f[1], f[2]})
		}
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "mode" {
			m, err := strconv.ParseUint(f[1], 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			modes[f[2]] = os.FileMode(m)
		}
	}
	for _, f := range ar.Files {
		p := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(f.Name, "scripts/") {
			mode = 0o755
		}
		if m, ok := modes[f.Name]; ok {
			mode = m
		}
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range links {
		p := filepath.Join(dir, l[0])
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(l[1], p); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestInvalidDefinitions loads each testdata/invalid/*.txtar repository and
// compares every reported problem with its golden file.
func TestInvalidDefinitions(t *testing.T) {
	cases, err := filepath.Glob("testdata/invalid/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 25 {
		t.Fatalf("only %d invalid cases; the corpus should hold at least 25", len(cases))
	}
	for _, c := range cases {
		name := strings.TrimSuffix(filepath.Base(c), ".txtar")
		t.Run(name, func(t *testing.T) {
			ar, err := txtar.ParseFile(c)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Load(extract(t, ar))
			if err == nil {
				t.Fatal("Load succeeded; the definitions should be invalid")
			}
			var b strings.Builder
			for _, p := range Problems(err) {
				if p.File == "" || (p.Line == 0 && !strings.HasPrefix(p.File, "scripts/") && !strings.HasSuffix(p.File, ".yml") && !strings.HasPrefix(p.Msg, "project name") && !strings.HasPrefix(p.Msg, "software name")) {
					t.Errorf("problem without a position: %v", p)
				}
				if p.Hint == "" {
					t.Errorf("problem without a hint: %v", p)
				}
				b.WriteString(p.Error())
				b.WriteString("\n")
			}
			golden := strings.TrimSuffix(c, ".txtar") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./pipeline/spec -update)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("problems differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestRepositoryDefinitionsAreValid(t *testing.T) {
	r, err := Load("../..")
	if err != nil {
		t.Fatalf("the repository's own definitions are invalid:\n%v", err)
	}
	hello, err := r.Project("hello")
	if err != nil {
		t.Fatal(err)
	}
	if hello.InstallDir != "/opt/hello" || hello.Iteration != 1 || hello.Embedded() != "/opt/hello/embedded" {
		t.Errorf("hello defaults: install_dir %q iteration %d", hello.InstallDir, hello.Iteration)
	}
	if hello.Hooks["postinst"] != "scripts/hello/postinst" {
		t.Errorf("hello hooks = %v", hello.Hooks)
	}
}

// TestHugeDefinitionsAreBounded: a definition that is one enormous scalar
// gives a short message, and a file over the size limit is not parsed.
func TestHugeDefinitionsAreBounded(t *testing.T) {
	for _, size := range []int{512 << 10, 20 << 20} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "software"), 0o755)
		big := strings.Repeat("A", size)
		os.WriteFile(filepath.Join(dir, "software", "x.yaml"), []byte("name: "+big+"\nlicense: MIT\nversions: [{version: 1.0.0, path: x}]\nbuild: [make]\n"), 0o644)
		_, err := Load(dir)
		if err == nil {
			t.Fatalf("%d bytes: loaded", size)
		}
		if n := len(err.Error()); n > 2000 {
			t.Errorf("%d-byte scalar: a %d-byte message", size, n)
		}
		t.Logf("%d bytes: %s", size, err)
	}
}

// TestLibraryDefinitionsAndOverrides: a library's definitions fill in
// what the repository lacks, its patches and path sources are found in
// the library, the repository's own definition of the same name wins
// (and is reported), and a library's definition that links out of the
// library is not read.
func TestLibraryDefinitionsAndOverrides(t *testing.T) {
	root, lib, outside := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(dir, p, body string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sw := func(name, extra string) string {
		return "name: " + name + "\nlicense: MIT\nversions:\n  - version: 1.0.0\n    path: " + name + "\n" + extra + "build:\n  - run: make install\n"
	}
	write(root, "projects/app.yaml", "name: app\ndescription: d\nmaintainer: T <t@example.com>\nlicense: MIT\nversion: 1.0.0\nsoftware: [greet, zlib]\ntargets: [debian-12]\n")
	write(root, "software/zlib.yaml", sw("zlib", ""))
	write(root, "software/zlib/Makefile", "")
	write(lib, "software/zlib.yaml", sw("zlib", ""))
	write(lib, "software/greet.yaml", sw("greet", "patches: [fix.patch]\n"))
	write(lib, "software/greet/Makefile", "")
	write(lib, "software/greet/fix.patch", "")
	write(outside, "evil.yaml", sw("evil", ""))
	if err := os.Symlink(filepath.Join(outside, "evil.yaml"), filepath.Join(lib, "software", "evil.yaml")); err != nil {
		t.Fatal(err)
	}
	_, err := LoadWith(root, []LibraryRoot{{Name: "shared", Dir: lib, Label: "shared@test"}})
	if err == nil || !strings.Contains(err.Error(), "evil.yaml") {
		t.Fatalf("a definition linked out of the library was read: %v", err)
	}
	os.Remove(filepath.Join(lib, "software", "evil.yaml"))
	r, err := LoadWith(root, []LibraryRoot{{Name: "shared", Dir: lib, Label: "shared@test"}})
	if err != nil {
		t.Fatal(err)
	}
	if g := r.Software["greet"]; g == nil || g.Library != "shared" || g.Files(root) != filepath.Join(lib, "software") {
		t.Errorf("greet: %+v", g)
	}
	if z := r.Software["zlib"]; z == nil || z.Library != "" || z.Path != filepath.Join("software", "zlib.yaml") {
		t.Errorf("zlib should be the repository's: %+v", z)
	}
	if len(r.Overrides) != 1 || r.Overrides[0].String() != "zlib: the repository's software/zlib.yaml overrides library shared's definition" {
		t.Errorf("overrides: %v", r.Overrides)
	}
	// The library's patch is looked for in the library, not in the
	// repository.
	os.Remove(filepath.Join(lib, "software", "greet", "fix.patch"))
	_, err = LoadWith(root, []LibraryRoot{{Name: "shared", Dir: lib, Label: "shared@test"}})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(lib, "software", "greet.yaml")+":") || !strings.Contains(err.Error(), "patch software/greet/fix.patch does not exist") {
		t.Errorf("a missing patch of the library's: %v", err)
	}
}
