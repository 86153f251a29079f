package fetch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/fetch"
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
	srcDir := os.Getenv("COACH_DEBIAN_SOURCES")
	if srcDir == "" {
		t.Skip("COACH_DEBIAN_SOURCES is not set: fill a directory with .ci/fetch-debian-sources (as .ci/run does) and point it there")
	}
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
		def := fmt.Sprintf("name: %[1]s\nlicense: LicenseRef-Debian-%[2]s\ndefault_version: %[3]q\nversions:\n  - version: %[3]q\n    exact: true\n    url: http://deb.debian.org/debian/%[4]s/%[5]s\n    sha256: %[6]s\nbuild: [make install]\n",
			name, pkg, version, o.directory, o.file, o.sha256)
		if err := os.WriteFile(filepath.Join(repo, "software", name+".yaml"), []byte(def), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		index[name] = o
	}
	proj := "name: real\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [" + strings.Join(names, ", ") + "]\n"
	os.WriteFile(filepath.Join(repo, "projects", "real.yaml"), []byte(proj), 0o644)

	prep, err := pipeline.Prepare(repo, "real", pipeline.Options{})
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
