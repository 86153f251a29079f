package build_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/project"
	"github.com/coach-build/coach/pipeline/resolve"
	"github.com/coach-build/coach/pipeline/target"
)

// hostile is one entry of a tarball made by a test.
type hostile struct {
	name, body, link string
	typ              byte
}

func tarball(t *testing.T, dir string, entries []hostile) (path, sum string) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typ, Linkname: e.link, Size: int64(len(e.body))}
		switch e.typ {
		case tar.TypeDir:
			h.Mode, h.Size = 0o755, 0
		case tar.TypeSymlink:
			h.Size = 0
		case 0:
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	path = filepath.Join(dir, fmt.Sprintf("src-%d.tar", len(entries)))
	os.WriteFile(path, b.Bytes(), 0o644)
	h := sha256.Sum256(b.Bytes())
	return path, hex.EncodeToString(h[:])
}

// canary is a piece of the host a hostile build aims at: a secret file and
// a directory (think /etc/shadow and /etc/cron.d) outside every directory
// coach writes.
type canary struct {
	dir, secret, cron, token string
}

func newCanary(t *testing.T) canary {
	b := make([]byte, 16)
	rand.Read(b)
	c := canary{dir: t.TempDir(), token: "host-secret-" + hex.EncodeToString(b)}
	c.secret, c.cron = filepath.Join(c.dir, "shadow"), filepath.Join(c.dir, "cron.d")
	os.WriteFile(c.secret, []byte(c.token+"\n"), 0o600)
	os.Mkdir(c.cron, 0o755)
	return c
}

// reset puts the canary back as it was made, failing the test if that
// cannot be done, so that each case is judged on its own.
func (c canary) reset(t *testing.T) canary {
	t.Helper()
	os.RemoveAll(c.cron)
	os.Mkdir(c.cron, 0o755)
	os.WriteFile(c.secret, []byte(c.token+"\n"), 0o600)
	entries, _ := os.ReadDir(c.dir)
	for _, e := range entries {
		if e.Name() != "cron.d" && e.Name() != "shadow" {
			os.RemoveAll(filepath.Join(c.dir, e.Name()))
		}
	}
	return c
}

// hostDirs are the host directories a hostile build would aim at, walked
// before and after each case. /tmp and /var/tmp are left out: other tests
// write there at the same time; the canary stands for them.
var hostDirs = []string{"/etc", "/opt", "/usr/local", "/srv", "/home", "/root"}

// skippedDir reports the subtrees that tools write while tests run (caches,
// Go's module cache and telemetry) and the Go toolchain.
func skippedDir(p string) bool {
	if p == "/usr/local/go" {
		return true
	}
	if strings.HasPrefix(p, "/root/") || strings.HasPrefix(p, "/home/") {
		switch filepath.Base(p) {
		case ".cache", ".config", ".local", "go", ".rpmdb": // rpm -qp in other packages' tests writes .rpmdb
			return true
		}
	}
	return false
}

// hostState is every path under hostDirs with its size and mtime.
func hostState(t *testing.T) map[string]string {
	t.Helper()
	state := map[string]string{}
	for _, d := range hostDirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if e.IsDir() && skippedDir(p) {
				return fs.SkipDir
			}
			if info, err := e.Info(); err == nil && !e.IsDir() {
				state[p] = fmt.Sprintf("%d %d", info.Size(), info.ModTime().UnixNano())
			}
			return nil
		})
	}
	return state
}

// unchanged reports what differs between two host states.
func unchanged(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, v := range after {
		if w, ok := before[p]; !ok {
			t.Errorf("the host gained %s", p)
		} else if w != v {
			t.Errorf("the host's %s changed", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("the host lost %s", p)
		}
	}
}

// check proves the host was not touched: the canary holds exactly what it
// held, and no file that coach wrote (under the given dirs) holds the
// secret's content.
func (c canary) check(t *testing.T, written ...string) {
	t.Helper()
	var got []string
	filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if p != c.dir {
			rel, _ := filepath.Rel(c.dir, p)
			got = append(got, rel)
		}
		return nil
	})
	if !slices.Equal(got, []string{"cron.d", "shadow"}) {
		t.Errorf("the host canary changed: %v", got)
	}
	if b, _ := os.ReadFile(c.secret); string(b) != c.token+"\n" {
		t.Errorf("the host secret was changed: %q", b)
	}
	for _, dir := range written {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(c.token)) {
					t.Errorf("%s holds the host secret's content", p)
				}
			}
			return nil
		})
	}
}

// TestConfinementCorpus builds hostile components for real in the sandbox,
// one class of escape each, and after every build proves that nothing was
// written outside the cache and that no host file's content was read into
// it. Each case is generated here: tarballs, links and definitions.
func TestConfinementCorpus(t *testing.T) {
	r := sandboxRunner(t)
	c0 := newCanary(t) // for the definitions; each case checks a canary of its own
	type tc struct {
		name  string
		files map[string]string // repository files; "@tar:<name>" bodies are made below
		tar   []hostile         // the source tarball of component evil, if any
		want  string            // what the build error says
	}
	const proj = "name: evil\ndescription: d\nmaintainer: M <m@example.com>\nlicense: MIT\nversion: 1.0.0\ntargets: [debian-12]\nsoftware: [evil]\n"
	pathSource := func(build string, extra string) map[string]string {
		return map[string]string{
			"projects/evil.yaml":      proj,
			"software/evil.yaml":      "name: evil\nlicense: MIT\n" + extra + "versions: [{version: 1.0.0, path: evil}]\nbuild:\n" + build,
			"software/evil/LICENSE":   "MIT\n",
			"software/evil/README":    "x\n",
			"software/other.yaml":     "name: other\nlicense: MIT\nversions: [{version: 1.0.0, path: other}]\nbuild: [\"true\"]\n",
			"software/other/LICENSE2": "x\n",
		}
	}
	cases := []tc{
		{name: "license file linked to a host file",
			files: pathSource("  - ln -sf "+c0.secret+" LICENSE\n", "license_files: [LICENSE]\n"),
			want:  "license file LICENSE"},
		{name: "license file linked through a relative chain",
			files: pathSource("  - mkdir -p a/b && ln -s ../.. a/b/up && ln -sf a/b/up/../../../../../../../../../../../../../.."+c0.secret+" LICENSE\n", "license_files: [LICENSE]\n"),
			want:  "license file LICENSE"},
		{name: "LICENSES directory linked to a host directory",
			files: pathSource("  - mkdir -p {{.InstallDir}}/LICENSES && ln -s "+c0.cron+" {{.InstallDir}}/LICENSES/evil\n", "license_files: [LICENSE]\n"),
			want:  "license file LICENSE"},
		{name: "LICENSES linked to a host directory",
			files: pathSource("  - ln -s "+c0.cron+" {{.InstallDir}}/LICENSES\n", "license_files: [LICENSE]\n"),
			want:  "license file LICENSE"},
		// A FIFO used to hang the build for good (SIGTERM did not stop
		// it); a 10 GB (sparse) file was copied whole.
		{name: "license file that is a FIFO",
			files: pathSource("  - rm LICENSE && mkfifo LICENSE\n", "license_files: [LICENSE]\n"),
			want:  "is not a regular file (a FIFO)"},
		{name: "license file of 10 GB",
			files: pathSource("  - truncate -s 10G LICENSE\n", "license_files: [LICENSE]\n"),
			want:  "over the 16777216 bytes"},
		{name: "archive link chain read as a license",
			tar:  []hostile{{name: "src/a/b/c/", typ: tar.TypeDir}, {name: "src/a/b/c/up", typ: tar.TypeSymlink, link: "../.."}, {name: "src/LICENSE", typ: tar.TypeSymlink, link: "a/b/c/up/../../../../../../../../../../../../../.." + c0.secret}},
			want: "resolves outside the destination"},
		{name: "archive plants .coach-patches as a link to a host directory",
			tar:  []hostile{{name: "src/a/b/", typ: tar.TypeDir}, {name: "src/a/b/up", typ: tar.TypeSymlink, link: ".."}, {name: "src/LICENSE", body: "MIT\n"}, {name: ".coach-patches", typ: tar.TypeSymlink, link: "src/a/b/up/../../../../../../../../../../../../../.." + c0.cron}},
			want: "resolves outside the destination"},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			c := c0.reset(t)
			files := k.files
			if k.tar != nil {
				dir := t.TempDir()
				p, sum := tarball(t, dir, k.tar)
				files = map[string]string{
					"projects/evil.yaml":      proj,
					"software/evil.yaml":      fmt.Sprintf("name: evil\nlicense: MIT\nlicense_files: [LICENSE]\nrelative_path: src\nversions: [{version: 1.0.0, url: 'file://%s', sha256: %s}]\npatches: [fix.patch]\nbuild: [\"true\"]\n", p, sum),
					"software/evil/fix.patch": "",
				}
			}
			root := writeRepo(t, files)
			b := builder(t, r, root)
			before := hostState(t)
			_, err := buildProject(t, b, root, "evil", "debian-12")
			unchanged(t, before, hostState(t))
			if err == nil || !strings.Contains(err.Error(), k.want) {
				t.Errorf("the build was not stopped (want an error with %q): %v", k.want, err)
			}
			t.Logf("refused: %v", err)
			c.check(t, filepath.Dir(b.WorkDir), root)
		})
	}

	// A path source swapped for a link to a host directory after it was
	// loaded and checked: the copy refuses it, and the step's write does
	// not reach the host.
	t.Run("path source replaced by a link to a host directory", func(t *testing.T) {
		c := c0.reset(t)
		before := hostState(t)
		defer func() { unchanged(t, before, hostState(t)) }()
		root := writeRepo(t, pathSource("  - touch /coach/src/planted\n", ""))
		prep, err := project.Prepare(root, "evil", project.Options{Targets: []string{"debian-12"}})
		if err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(root, "software/evil"))
		os.Symlink(c.cron, filepath.Join(root, "software/evil"))
		b := builder(t, r, root)
		tg, _ := target.Builtin("debian-12")
		_, err = b.Build(context.Background(), prep.Plan, prep.Project, root, tg)
		if err == nil || !strings.Contains(err.Error(), "symlink") {
			t.Errorf("a path source that is a symlink was used: %v", err)
		}
		c.check(t, filepath.Dir(b.WorkDir))
	})
}

// TestGitSourceIsNeverAnOption: a git value that git could read as an
// option runs nothing on the host, even when it reaches the fetcher without
// passing validation.
func TestGitSourceIsNeverAnOption(t *testing.T) {
	c := newCanary(t)
	pwned := filepath.Join(c.dir, "pwned")
	f := &fetch.Fetcher{Cache: &fetch.Cache{Dir: t.TempDir()}, Root: t.TempDir()}
	for _, git := range []string{"--upload-pack=touch " + pwned, "-u touch " + pwned, "--config=core.sshCommand=touch " + pwned} {
		_, err := f.Fetch(context.Background(), fetch.Request{Name: "evil", Version: "1.0.0", Source: resolve.Source{Git: git, Commit: strings.Repeat("a", 40)}})
		if err == nil {
			t.Errorf("git %q fetched", git)
		}
		if _, err := os.Stat(pwned); err == nil {
			t.Fatalf("git %q ran a command on the host", git)
		}
	}
	c.check(t)
}
