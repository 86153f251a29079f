package fetch_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/internal/testroots"
	"github.com/coach-build/coach/pipeline/project"
)

// origTarball is one upstream tarball as Debian's Sources index lists it.
type origTarball struct {
	pkg, file, sha256, directory string
	size                         int64
}

// readSources finds the orig tarball of a package in its Sources stanzas
// (as saved by .ci/fetch-debian-sources): the one apt-get source put beside
// them, else the first listed.
func readSources(t *testing.T, path, pkg string) origTarball {
	t.Helper()
	all := readAllSources(t, path, pkg)
	for _, o := range all {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), o.file)); err == nil {
			return o
		}
	}
	return all[0]
}

// readAllSources lists the orig tarball of every stanza (suite) of a
// package's Sources index.
func readAllSources(t *testing.T, path, pkg string) []origTarball {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []origTarball
	for _, stanza := range strings.Split(string(data), "\n\n") {
		var dir string
		var orig *origTarball
		inSums := false
		for _, line := range strings.Split(stanza, "\n") {
			switch {
			case strings.HasPrefix(line, "Directory: "):
				dir = strings.TrimPrefix(line, "Directory: ")
			case strings.HasPrefix(line, "Checksums-Sha256:"):
				inSums = true
			case inSums && strings.HasPrefix(line, " "):
				var o origTarball
				if _, err := fmt.Sscanf(line, " %s %d %s", &o.sha256, &o.size, &o.file); err == nil && strings.Contains(o.file, ".orig.tar.") && !strings.HasSuffix(o.file, ".asc") {
					o.pkg = pkg
					orig = &o
				}
			default:
				inSums = false
			}
		}
		if orig != nil {
			orig.directory = dir
			out = append(out, *orig)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no orig tarball listed", path)
	}
	return out
}

var versionInFile = regexp.MustCompile(`_([0-9][^_]*)\.orig\.tar\.`)

// TestDebianOrigTarballs serves Debian's orig tarballs through a file://
// mirror to definitions pinned by the checksums in Debian's own Sources
// index, and fetches and extracts them offline.
func TestDebianOrigTarballs(t *testing.T) {
	srcDir := testroots.DebianSources(t)
	pkgs := map[string]string{"zlib": "zlib", "pcre2": "pcre2", "xz-utils": "xz", "libyaml": "libyaml", "ncurses": "ncurses", "libffi": "libffi"}
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, "software"), 0o755)
	os.MkdirAll(filepath.Join(repo, "projects"), 0o755)
	var names []string
	index := map[string]origTarball{}
	for pkg, name := range pkgs {
		o := readSources(t, filepath.Join(srcDir, pkg+".Sources"), pkg)
		if st, err := os.Stat(filepath.Join(srcDir, o.file)); err != nil || st.Size() != o.size {
			t.Fatalf("%s: %v (size %d in the index)", o.file, err, o.size)
		}
		version := versionInFile.FindStringSubmatch(o.file)[1]
		def := fmt.Sprintf("name: %[1]s\nlicense: LicenseRef-Debian-%[2]s\ndefault_version: %[3]q\nversions:\n  - version: %[3]q\n    exact: true\n    url: '{{mirror \"debian\"}}/%[4]s/%[5]s'\n    sha256: %[6]s\nbuild: [make install]\n",
			name, pkg, version, o.directory, o.file, o.sha256)
		if err := os.WriteFile(filepath.Join(repo, "software", name+".yaml"), []byte(def), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		index[name] = o
	}
	proj := "name: real\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [" + strings.Join(names, ", ") + "]\n"
	os.WriteFile(filepath.Join(repo, "projects", "real.yaml"), []byte(proj), 0o644)

	prep, err := project.Prepare(repo, "real", project.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Cache: &fetch.Cache{Dir: t.TempDir()}, Root: repo, Offline: true, Mirrors: []string{"file://" + srcDir}}
	results, err := f.FetchAll(context.Background(), fetch.Requests(prep.Resolution), 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		o := index[r.Name]
		if r.Hit || r.From != "file://"+filepath.Join(srcDir, o.file) || r.Bytes != o.size {
			t.Errorf("%s: %+v", r.Name, r)
		}
		dst := filepath.Join(t.TempDir(), "src")
		res, err := archive.Extract(r.Path, dst, o.file, archive.DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		if res.TopDir == "" {
			t.Errorf("%s: no single top directory", r.Name)
		}
		// Release tarballs carry configure; libyaml's orig is a git-tag
		// archive with only configure.ac.
		_, err1 := os.Stat(filepath.Join(dst, res.TopDir, "configure"))
		_, err2 := os.Stat(filepath.Join(dst, res.TopDir, "configure.ac"))
		if err1 != nil && err2 != nil {
			t.Errorf("%s: neither configure nor configure.ac in %s", r.Name, res.TopDir)
		}
		t.Logf("%-8s %s sha256 %s… (Debian index) → %s, %d entries, %.1f MiB", r.Name, o.file, o.sha256[:12], res.Format, res.Entries, float64(res.Bytes)/(1<<20))
	}
}

// fakeArchive lays out a Debian-style archive at dir/name with one suite, a
// source package per entry of files (orig file name -> listed sha256), and
// the pool files in pool (path under the archive -> bytes).
func fakeArchive(t *testing.T, dir, name, suite string, stanzas []string, pool map[string]string) {
	t.Helper()
	root := filepath.Join(dir, name)
	write := func(rel, data string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	index := map[string]string{
		"main/source/Sources":        strings.Join(stanzas, "\n"),
		"main/binary-amd64/Packages": "",
	}
	release := fmt.Sprintf("Origin: Fake\nSuite: %[1]s\nCodename: %[1]s\nComponents: main\nArchitectures: amd64 source\nSHA256:\n", suite)
	for _, rel := range []string{"main/binary-amd64/Packages", "main/source/Sources"} {
		write("dists/"+suite+"/"+rel, index[rel])
		release += fmt.Sprintf(" %x %d %s\n", sha256.Sum256([]byte(index[rel])), len(index[rel]), rel)
	}
	write("dists/"+suite+"/Release", release)
	for rel, data := range pool {
		write(rel, data)
	}
}

func sourceStanza(pkg, version, directory, file, data string) string {
	return fmt.Sprintf("Package: %s\nBinary: %[1]s\nVersion: %s\nMaintainer: M <m@example.com>\nArchitecture: any\nFormat: 3.0 (quilt)\nDirectory: %s\nChecksums-Sha256:\n %x %d %s\n",
		pkg, version, directory, sha256.Sum256([]byte(data)), len(data), file)
}

// TestFetchDebianSourcesFallback runs .ci/fetch-debian-sources against a fake
// apt configuration (APT_CONFIG) with two archives, as Debian has: the
// security archive lists a newer revision of each package with the same orig
// tarball but serves no file for it (as it does for zlib on bookworm), and the
// release's own suite has the file. The script must take it from there, check
// it against the index, and refuse bytes that the index does not list.
func TestFetchDebianSourcesFallback(t *testing.T) {
	for _, tool := range []string{"apt-get", "apt-config", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the script drives apt", tool)
		}
	}
	if _, err := os.Stat("/usr/lib/apt/apt-helper"); err != nil {
		t.Skip("apt-helper is not installed: the script downloads through it")
	}
	script, err := filepath.Abs("../../.ci/fetch-debian-sources")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	const good, bad = "upstream release bytes\n", "tampered bytes\n"
	fakeArchive(t, tmp, "archive", "bookworm", []string{
		sourceStanza("zz", "1.0-1", "pool/main/z/zz", "zz_1.0.orig.tar.gz", good),
		sourceStanza("yy", "2.0-1", "pool/main/y/yy", "yy_2.0.orig.tar.xz", good),
	}, map[string]string{
		"pool/main/z/zz/zz_1.0.orig.tar.gz": good,
		"pool/main/y/yy/yy_2.0.orig.tar.xz": bad, // not what the index lists
	})
	fakeArchive(t, tmp, "security", "bookworm-security", []string{
		sourceStanza("zz", "1.0-1+deb12u1", "pool/updates/main/z/zz", "zz_1.0.orig.tar.gz", good),
		sourceStanza("yy", "2.0-1+deb12u1", "pool/updates/main/y/yy", "yy_2.0.orig.tar.xz", good),
	}, nil) // lists both, serves neither
	etc := filepath.Join(tmp, "etc")
	for _, d := range []string{"sources.list.d", "apt.conf.d", "preferences.d", "trusted.gpg.d"} {
		os.MkdirAll(filepath.Join(etc, d), 0o755)
	}
	sources := fmt.Sprintf("Types: deb\nURIs: file://%s/archive\nSuites: bookworm\nComponents: main\nTrusted: yes\n\nTypes: deb\nURIs: file://%s/security\nSuites: bookworm-security\nComponents: main\nTrusted: yes\n", tmp, tmp)
	os.WriteFile(filepath.Join(etc, "sources.list.d", "fake.sources"), []byte(sources), 0o644)
	os.WriteFile(filepath.Join(tmp, "status"), nil, 0o644)
	conf := fmt.Sprintf("Dir::Etc %q;\nDir::State %q;\nDir::State::status %q;\nDir::Cache %q;\nAPT::Architecture \"amd64\";\nAPT::Sandbox::User \"root\";\n",
		etc, filepath.Join(tmp, "state"), filepath.Join(tmp, "status"), filepath.Join(tmp, "cache"))
	aptConf := filepath.Join(tmp, "apt.conf")
	os.WriteFile(aptConf, []byte(conf), 0o644)
	for _, d := range []string{"state/lists/partial", "cache/archives/partial"} {
		os.MkdirAll(filepath.Join(tmp, d), 0o755)
	}

	run := func(out string, pkgs ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{script, out}, pkgs...)...)
		cmd.Env = append(os.Environ(), "APT_CONFIG="+aptConf)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	out := filepath.Join(tmp, "out")
	log, err := run(out, "zz")
	if err != nil {
		t.Fatalf("fetch-debian-sources zz: %v\n%s", err, log)
	}
	if got, err := os.ReadFile(filepath.Join(out, "zz_1.0.orig.tar.gz")); err != nil || string(got) != good {
		t.Fatalf("zz orig: %q, %v", got, err)
	}
	if !strings.Contains(log, "was missing at file:"+tmp+"/security/") || !strings.Contains(log, "took it from file:"+tmp+"/archive/") {
		t.Errorf("the fallback is not reported:\n%s", log)
	}
	if o := readSources(t, filepath.Join(out, "zz.Sources"), "zz"); o.file != "zz_1.0.orig.tar.gz" {
		t.Errorf("zz.Sources: %+v", o)
	}
	if _, err := os.Stat(filepath.Join(etc, "sources.list.d", "coach-deb-src.sources")); err != nil {
		t.Errorf("no deb-src twin of the configured sources: %v", err)
	}

	// A pool file whose bytes the index does not list is refused.
	log, err = run(filepath.Join(tmp, "out2"), "yy")
	if err == nil {
		t.Fatalf("tampered orig tarball accepted:\n%s", log)
	}
	if !strings.Contains(log, "no orig tarball for yy") {
		t.Errorf("refusal does not name the package:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(tmp, "out2", "yy_2.0.orig.tar.xz")); err == nil {
		t.Error("tampered bytes were left in place")
	}

	// A copy already in place with the listed bytes is kept: nothing is
	// fetched, so it works with the pool gone.
	os.Remove(filepath.Join(tmp, "archive", "pool/main/z/zz/zz_1.0.orig.tar.gz"))
	if log, err := run(out, "zz"); err != nil {
		t.Fatalf("rerun with the tarball in place: %v\n%s", err, log)
	}
}
