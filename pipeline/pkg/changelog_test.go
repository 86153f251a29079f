package pkg

import (
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/target"
)

const sampleChangelog = `# Changelog

## [Unreleased]
### Added
- something not released

## [1.2.0] - 2024-04-30
### Added
- A config file,
  kept on upgrade.
### Fixed
- A crash.

## [1.1.0] - 2024-01-15
- Plain bullet.

## 1.0.0 - 2023-12-01
### Added
- First release.
`

func TestKeepAChangelog(t *testing.T) {
	rels, err := keepAChangelog(sampleChangelog)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rels {
		got = append(got, r.version+" "+r.date.Format("2006-01-02")+" "+strings.Join(r.notes, " | "))
	}
	want := []string{
		"1.2.0 2024-04-30 Added: A config file, kept on upgrade. | Fixed: A crash.",
		"1.1.0 2024-01-15 Plain bullet.",
		"1.0.0 2023-12-01 Added: First release.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := keepAChangelog("## [one point two] - 2024-01-01\n"); err == nil {
		t.Error("a heading that is no version parsed")
	}
}

// TestChangelogs packages the fixture with a Keep a Changelog file: the
// deb's changelog.Debian.gz has one entry per release, for bookworm, and
// dpkg-parsechangelog reads it; the rpm's %changelog has them too, newest
// first.
func TestChangelogs(t *testing.T) {
	need(t, "dpkg-deb", "dpkg-parsechangelog", "rpm", "strip")
	root, tree, p := fixture(t)
	os.WriteFile(filepath.Join(root, "CHANGELOG.md"), []byte(sampleChangelog), 0o644)
	p.Package.Changelog = "CHANGELOG.md"
	p.Version, p.Iteration = "1.2.0", 2
	tg, _ := target.Builtin("debian-12")
	a, err := Package(Options{Project: p, Root: root, Target: tg, Arch: "amd64", Tree: tree, MTime: epoch, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	x := t.TempDir()
	run(t, "dpkg-deb", "-x", a.Path, x)
	f, err := os.Open(filepath.Join(x, "usr/share/doc/app/changelog.Debian.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(zr)
	f.Close()
	plain := filepath.Join(t.TempDir(), "changelog")
	os.WriteFile(plain, text, 0o644)
	var got []string
	for _, l := range strings.Split(run(t, "dpkg-parsechangelog", "-l", plain, "--all", "--format", "rfc822"), "\n") {
		if v, ok := strings.CutPrefix(l, "Version: "); ok {
			got = append(got, v)
		}
	}
	if strings.Join(got, " ") != "1.2.0-2+deb12 1.1.0-1+deb12 1.0.0-1+deb12" {
		t.Errorf("versions %v\n%s", got, text)
	}
	for _, w := range []string{"app (1.2.0-2+deb12) bookworm; urgency=medium", "  * Added: A config file, kept on upgrade.", " -- M <m@example.com>  Tue, 30 Apr 2024 00:00:00 +0000"} {
		if !strings.Contains(string(text), w) {
			t.Errorf("changelog lacks %q:\n%s", w, text)
		}
	}
	if out, err := exec.Command("dpkg-parsechangelog", "-l", plain, "-S", "Distribution").Output(); err != nil || strings.TrimSpace(string(out)) != "bookworm" {
		t.Errorf("distribution %q %v", out, err)
	}

	el9, _ := target.Builtin("el9")
	r, err := Package(Options{Project: p, Root: root, Target: el9, Arch: "amd64", Tree: tree, MTime: epoch, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	log := run(t, "rpm", "-qp", "--changelog", r.Path)
	for _, w := range []string{"* Tue Apr 30 2024 M <m@example.com> - 1.2.0-2.el9\n- Added: A config file, kept on upgrade.\n- Fixed: A crash.", "* Fri Dec 01 2023 M <m@example.com> - 1.0.0-1.el9"} {
		if !strings.Contains(log, w) {
			t.Errorf("rpm changelog lacks %q:\n%s", w, log)
		}
	}
	if strings.Index(log, "1.2.0-2") > strings.Index(log, "1.1.0-1") {
		t.Errorf("rpm changelog is not newest first:\n%s", log)
	}
}

// TestChangelogFromGit reads the releases from version tags.
func TestChangelogFromGit(t *testing.T) {
	need(t, "git")
	_, _, p := fixture(t)
	dir := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("commit", "-q", "--allow-empty", "-m", "Start")
	git("tag", "v1.0.0")
	git("commit", "-q", "--allow-empty", "-m", "Greet by name")
	git("commit", "-q", "--allow-empty", "-m", "Fix the greeting")
	git("tag", "v1.1.0")
	p.Package.Changelog, p.Version = "git", "1.1.0"
	tg, _ := target.Builtin("debian-12")
	rels, err := releases(p, tg, dir, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 || rels[0].version != "1.1.0" || !strings.Contains(strings.Join(rels[0].notes, "|"), "Greet by name") || rels[1].version != "1.0.0" {
		t.Errorf("releases: %+v", rels)
	}
}
