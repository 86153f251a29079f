package publish

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ulikunitz/xz"

	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/spec"
	"github.com/coach-build/coach/pipeline/target"
)

var epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// testSigner makes a fresh key, as a user exports one with gpg.
func testSigner(t *testing.T) *pkg.Signer {
	s, _ := testKey(t)
	return s
}

// testKey makes a fresh key: the signer and the key's file.
func testKey(t *testing.T) (*pkg.Signer, string) {
	t.Helper()
	e, err := openpgp.NewEntity("coach test", "", "test@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.SerializePrivate(&b, nil); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "key.gpg")
	os.WriteFile(key, b.Bytes(), 0o600)
	s, err := pkg.LoadSigner(key, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

// testDeb packages a one-file tree as coach does, for the host's
// architecture so that the host's apt takes it.
func testDeb(t *testing.T, name string, iteration int, targetName string) string {
	t.Helper()
	return testDebFor(t, name, iteration, targetName, nil)
}

// testDebWith is testDeb for debian-12 with more files, which fill adds.
func testDebWith(t *testing.T, name string, iteration int, fill func(tree string)) string {
	t.Helper()
	return testDebFor(t, name, iteration, "debian-12", fill)
}

func testDebFor(t *testing.T, name string, iteration int, targetName string, fill func(tree string)) string {
	t.Helper()
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "share"), 0o755)
	os.WriteFile(filepath.Join(tree, "share", "greeting"), []byte("hello, iteration "+string(rune('0'+iteration))+"\n"), 0o644)
	if fill != nil {
		fill(tree)
	}
	tg, _ := target.Builtin(targetName)
	f := false
	p := &spec.Project{Name: name, Description: "a test package", Maintainer: "M <m@example.com>", License: "MIT", Version: "1.2.0", Iteration: iteration,
		InstallDir: "/opt/" + name, Package: spec.Package{Strip: &f}}
	a, err := pkg.Package(pkg.Options{Project: p, Target: tg, Arch: target.HostArch(), Tree: tree, MTime: epoch, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return a.Path
}

// apt runs the host's apt-get or apt-cache on a state of its own, with
// only the given sources. It returns the combined output and the error.
func apt(t *testing.T, state, tool string, args ...string) (string, error) {
	t.Helper()
	for _, d := range []string{"lists/partial", "cache/archives/partial", "parts", "prefs"} {
		os.MkdirAll(filepath.Join(state, d), 0o755)
	}
	os.WriteFile(filepath.Join(state, "status"), nil, 0o644)
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(state, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(state, "parts"),
		"-o", "Dir::Etc::PreferencesParts=" + filepath.Join(state, "prefs"),
		"-o", "Dir::State=" + state,
		"-o", "Dir::State::Lists=" + filepath.Join(state, "lists"),
		"-o", "Dir::State::status=" + filepath.Join(state, "status"),
		"-o", "Dir::Cache=" + filepath.Join(state, "cache"),
		"-o", "Debug::NoLocking=1",
		"-o", "APT::Sandbox::User=root", // the test's directories are 0700
		"-o", "Acquire::Languages=none",
	}
	cmd := exec.Command(tool, append(opts, args...)...)
	cmd.Dir = state
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func newState(t *testing.T, uri, key string) string {
	t.Helper()
	state := t.TempDir()
	os.WriteFile(filepath.Join(state, "sources.list"), []byte("deb [signed-by="+key+"] "+uri+" bookworm main\n"), 0o644)
	return state
}

func sha(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// TestAptRepositoryWithRealApt publishes coach's debs and reads the
// repository with the host's apt, over file:// and over HTTP from a
// static server: update with no warning, the package's candidate and a
// download of its exact bytes; a new iteration upgrades the candidate;
// publishing again changes nothing; Keep drops the old version from the
// pool; a tampered index or InRelease fails apt-get update.
func TestAptRepositoryWithRealApt(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get is not installed")
	}
	ctx := context.Background()
	repo := t.TempDir()
	a := &Apt{Dir: repo, Signer: testSigner(t), Keep: 1, Now: func() time.Time { return epoch }}
	v1 := testDeb(t, "coachpub", 1, "debian-12")
	res, err := a.Add(ctx, []string{v1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 1 || len(res.Suites) != 1 || res.Suites[0] != "bookworm" {
		t.Fatalf("first publication: %+v", res)
	}
	key := filepath.Join(repo, KeyFile)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(repo))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	check := func(uri, wantVersion, wantSHA string) {
		t.Helper()
		state := newState(t, uri, key)
		out, err := apt(t, state, "apt-get", "update")
		if err != nil || strings.Contains(out, "W:") || strings.Contains(out, "E:") {
			t.Fatalf("apt-get update from %s: %v\n%s", uri, err, out)
		}
		out, _ = apt(t, state, "apt-cache", "policy", "coachpub")
		if !strings.Contains(out, "Candidate: "+wantVersion) {
			t.Fatalf("apt-cache policy from %s: want candidate %s\n%s", uri, wantVersion, out)
		}
		if out, err := apt(t, state, "apt-get", "download", "coachpub"); err != nil {
			t.Fatalf("apt-get download from %s: %v\n%s", uri, err, out)
		}
		got, _ := filepath.Glob(filepath.Join(state, "coachpub_*.deb"))
		if len(got) != 1 || sha(t, got[0]) != wantSHA {
			t.Fatalf("apt-get download from %s gave %v, want the published bytes", uri, got)
		}
	}
	check("file://"+repo, "1.2.0-1+deb12", sha(t, v1))
	check("http://"+ln.Addr().String(), "1.2.0-1+deb12", sha(t, v1))

	// A new iteration: the candidate moves, and Keep 1 drops the old one.
	inRelease := filepath.Join(repo, "dists/bookworm/InRelease")
	before, _ := os.ReadFile(inRelease)
	v2 := testDeb(t, "coachpub", 2, "debian-12")
	res, err = a.Add(ctx, []string{v2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || !strings.HasSuffix(res.Removed[0], filepath.Base(v1)) {
		t.Errorf("Keep 1 removed %v, want the first iteration", res.Removed)
	}
	check("http://"+ln.Addr().String(), "1.2.0-2+deb12", sha(t, v2))
	after, _ := os.ReadFile(inRelease)
	if bytes.Equal(before, after) {
		t.Error("InRelease did not change with the index")
	}

	// Publishing the same package again changes nothing.
	res, err = a.Add(ctx, []string{v2})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(inRelease)
	if len(res.Added) != 0 || len(res.Suites) != 0 || !bytes.Equal(again, after) {
		t.Errorf("a second publication of the same package: %+v, InRelease changed: %v", res, !bytes.Equal(again, after))
	}
	// Other bytes under a published name are refused.
	other := filepath.Join(t.TempDir(), filepath.Base(v2))
	data, _ := os.ReadFile(testDeb(t, "coachpub", 2, "debian-12"))
	os.WriteFile(other, append(data, '\n'), 0o644)
	if _, err := a.Add(ctx, []string{other}); err == nil || !strings.Contains(err.Error(), "never replaced") {
		t.Errorf("publishing other bytes under a published name: %v", err)
	}

	// Tampering: an index whose content differs from what the signed
	// Release vouches for (in every form apt may fetch: plain, gz, xz,
	// by name and by hash), then an InRelease whose text was changed after
	// signing.
	tamper := func(what string, files map[string][]byte) {
		t.Helper()
		orig := map[string][]byte{}
		for f, data := range files {
			orig[f], _ = os.ReadFile(f)
			os.WriteFile(f, data, 0o644)
		}
		defer func() {
			for f, data := range orig {
				os.WriteFile(f, data, 0o644)
			}
		}()
		out, err := apt(t, newState(t, "file://"+repo, key), "apt-get", "update")
		if err == nil && !strings.Contains(out, "E:") {
			t.Errorf("apt-get update accepted %s:\n%s", what, out)
		}
		t.Logf("apt-get update refused %s:\n%s", what, out)
	}
	dir, _ := filepath.Glob(filepath.Join(repo, "dists/bookworm/main/binary-*"))
	plain, _ := os.ReadFile(filepath.Join(dir[0], "Packages"))
	evil := bytes.Replace(plain, []byte("Maintainer: M <m@example.com>"), []byte("Maintainer: X <x@example.com>"), 1)
	if bytes.Equal(evil, plain) {
		t.Fatal("the index has no Maintainer field to tamper with")
	}
	var gz, xzb bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(evil)
	zw.Close()
	xw, _ := xz.NewWriter(&xzb)
	xw.Write(evil)
	xw.Close()
	tampered := map[string][]byte{}
	for name, data := range map[string][]byte{"Packages": evil, "Packages.gz": gz.Bytes(), "Packages.xz": xzb.Bytes()} {
		p := filepath.Join(dir[0], name)
		tampered[p] = data
		tampered[filepath.Join(dir[0], "by-hash/SHA256", sha(t, p))] = data
	}
	tamper("a tampered index", tampered)
	inRelease = filepath.Join(repo, "dists/bookworm/InRelease")
	signed, _ := os.ReadFile(inRelease)
	tamper("a tampered InRelease", map[string][]byte{inRelease: bytes.Replace(signed, []byte("Label: coach"), []byte("Label: evil!"), 1)})
	// And after all that, the untampered repository still reads.
	check("file://"+repo, "1.2.0-2+deb12", sha(t, v2))
}

// testRPM packages a one-file tree as an el9 rpm, signed with s.
func testRPM(t *testing.T, name string, iteration int, s *pkg.Signer) string {
	t.Helper()
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	os.WriteFile(filepath.Join(tree, "bin", name), []byte("#!/bin/sh\necho "+name+"\n"), 0o755)
	tg, _ := target.Builtin("el9")
	f := false
	p := &spec.Project{Name: name, Description: "a test package", Maintainer: "M <m@example.com>", License: "MIT", Version: "1.2.0", Iteration: iteration,
		InstallDir: "/opt/" + name, Package: spec.Package{Strip: &f}}
	a, err := pkg.Package(pkg.Options{Project: p, Target: tg, Arch: target.HostArch(), Tree: tree, MTime: epoch, OutDir: t.TempDir(), Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	return a.Path
}
