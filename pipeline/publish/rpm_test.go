package publish

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coach-build/coach/pipeline/target"
)

// dnf runs Debian's dnf against one repository only, with its metadata
// signature checked (repo_gpgcheck) and the packages' too (gpgcheck).
func dnf(t *testing.T, repoURL, key string, args ...string) (string, error) {
	t.Helper()
	root := t.TempDir()
	opts := []string{
		"-y", "--installroot=" + root, "--releasever=9", "--setopt=reposdir=" + filepath.Join(root, "none"),
		"--setopt=cachedir=" + filepath.Join(root, "cache"), "--repofrompath=coach," + repoURL,
		"--setopt=coach.gpgcheck=1", "--setopt=coach.repo_gpgcheck=1", "--setopt=coach.gpgkey=file://" + key,
		"--forcearch=" + rpmArch(), "--setopt=skip_if_unavailable=False", "--disableplugin=local",
	}
	cmd := exec.Command("dnf", append(opts, args...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func rpmArch() string {
	a, _ := target.ArchOf(target.HostArch())
	return a.RPM
}

// TestRPMRepositoryWithRealDnf publishes coach's signed el9 rpms and reads
// the repository with Debian's dnf, metadata signature checked: repoquery
// lists the package at its version, download fetches an rpm whose
// signature rpm -K accepts; a new iteration is the newest, Keep drops the
// old one; publishing again changes nothing; a tampered repomd.xml is
// refused. createrepo_c, run on the same packages, says the same of them.
func TestRPMRepositoryWithRealDnf(t *testing.T) {
	for _, tool := range []string{"dnf", "rpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	ctx := context.Background()
	repo := t.TempDir()
	s := testSigner(t)
	r := &RPM{Dir: repo, Signer: s, Keep: 1, Now: func() time.Time { return epoch }}
	v1 := testRPM(t, "coachpub", 1, s)
	res, err := r.Add(ctx, []string{v1})
	if err != nil {
		t.Fatal(err)
	}
	dir := RepoDir("el9", rpmArch())
	if len(res.Added) != 1 || len(res.Repos) != 1 || res.Repos[0] != dir {
		t.Fatalf("first publication: %+v", res)
	}
	key := filepath.Join(repo, KeyFile)
	url := "file://" + filepath.Join(repo, dir)

	check := func(want, wantSHA string) {
		t.Helper()
		out, err := dnf(t, url, key, "repoquery", "--qf", "%{name}-%{evr}.%{arch}", "coachpub")
		if err != nil || !strings.Contains(out, "coachpub-"+want+"."+rpmArch()) {
			t.Fatalf("dnf repoquery: want %s: %v\n%s", want, err, out)
		}
		dest := t.TempDir()
		if out, err := dnf(t, url, key, "download", "--destdir", dest, "coachpub"); err != nil {
			t.Fatalf("dnf download: %v\n%s", err, out)
		}
		got, _ := filepath.Glob(filepath.Join(dest, "*.rpm"))
		if len(got) != 1 || sha(t, got[0]) != wantSHA {
			t.Fatalf("dnf download gave %v, want the published bytes", got)
		}
		db := t.TempDir()
		if out, err := exec.Command("rpm", "--dbpath", db, "--import", key).CombinedOutput(); err != nil {
			t.Fatalf("rpm --import: %v\n%s", err, out)
		}
		out2, err := exec.Command("rpm", "--dbpath", db, "-K", got[0]).CombinedOutput()
		if err != nil || !regexp.MustCompile(`signatures OK`).Match(out2) {
			t.Fatalf("rpm -K of the downloaded rpm: %v\n%s", err, out2)
		}
	}
	check("1.2.0-1.el9", sha(t, v1))

	v2 := testRPM(t, "coachpub", 2, s)
	res, err = r.Add(ctx, []string{v2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || !strings.HasSuffix(res.Removed[0], filepath.Base(v1)) {
		t.Errorf("Keep 1 removed %v, want the first iteration", res.Removed)
	}
	check("1.2.0-2.el9", sha(t, v2))

	repomd := filepath.Join(repo, dir, "repodata/repomd.xml")
	before, _ := os.ReadFile(repomd)
	if res, err = r.Add(ctx, []string{v2}); err != nil || len(res.Added) != 0 || len(res.Repos) != 0 {
		t.Errorf("a second publication of the same rpm: %+v %v", res, err)
	}
	if after, _ := os.ReadFile(repomd); !bytes.Equal(before, after) {
		t.Error("a second publication of the same rpm rewrote repomd.xml")
	}

	// createrepo_c on the same packages: the same package, version and
	// checksum in its primary metadata.
	if _, err := exec.LookPath("createrepo_c"); err == nil {
		cr := t.TempDir()
		os.Link(v2, filepath.Join(cr, filepath.Base(v2)))
		if out, err := exec.Command("createrepo_c", "--no-database", "--simple-md-filenames", cr).CombinedOutput(); err != nil {
			t.Fatalf("createrepo_c: %v\n%s", err, out)
		}
		theirs := gunzip(t, filepath.Join(cr, "repodata/primary.xml.gz"))
		m, _ := filepath.Glob(filepath.Join(repo, dir, "repodata/*-primary.xml.gz"))
		ours := ""
		for _, p := range m {
			if g := gunzip(t, p); strings.Contains(g, "1.2.0\" rel=\"2.el9\"") {
				ours = g
			}
		}
		for _, re := range []string{`<checksum type="sha256" pkgid="YES">[0-9a-f]{64}</checksum>`, `<version epoch="0" ver="1.2.0" rel="2.el9"/>`, `<rpm:license>MIT</rpm:license>`, `<file>/opt/coachpub/bin/coachpub</file>`} {
			rx := regexp.MustCompile(re)
			if a, b := rx.FindString(ours), rx.FindString(theirs); a == "" || a != b {
				t.Errorf("primary metadata differs from createrepo_c's at %s:\nours:   %q\ntheirs: %q", re, a, b)
			}
		}
	}

	// The .repo file coach publish prints, as a user installs it.
	reposd := t.TempDir()
	os.WriteFile(filepath.Join(reposd, "coach-el9.repo"), []byte(RepoFile("file://"+repo, "el9")), 0o644)
	root := t.TempDir()
	out, err := exec.Command("dnf", "-y", "--installroot="+root, "--releasever=9", "--setopt=reposdir="+reposd,
		"--setopt=cachedir="+filepath.Join(root, "cache"), "--forcearch="+rpmArch(), "--setopt=skip_if_unavailable=False", "--disableplugin=local",
		"repoquery", "--qf", "%{name}-%{evr}.%{arch}", "coachpub").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "coachpub-1.2.0-2.el9."+rpmArch()) {
		t.Errorf("dnf with the printed .repo file: %v\n%s", err, out)
	}

	// A repomd.xml changed after signing is refused.
	os.WriteFile(repomd, bytes.Replace(before, []byte("<revision>"), []byte("<revision>1"), 1), 0o644)
	if out, err := dnf(t, url, key, "repoquery", "coachpub"); err == nil || !strings.Contains(out, "GPG signature verification error") {
		t.Errorf("dnf read a tampered repomd.xml (%v):\n%s", err, out)
	}
	os.WriteFile(repomd, before, 0o644)
}

func gunzip(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
