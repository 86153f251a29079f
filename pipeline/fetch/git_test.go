package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coach-build/coach/pipeline/resolve"
)

// gitRepo makes a repository with two commits and tags v1 (first) and v2.
func gitRepo(t *testing.T) (dir, first, second string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir = t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q")
	os.WriteFile(filepath.Join(dir, "hello.c"), []byte("int main(void){return 0;}\n"), 0o644)
	run("add", ".")
	run("commit", "-q", "-m", "one")
	run("tag", "v1")
	first = run("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "hello.c"), []byte("int main(void){return 1;}\n"), 0o644)
	run("commit", "-q", "-am", "two")
	run("tag", "v2")
	second = run("rev-parse", "HEAD")
	return dir, first, second
}

func tarFiles(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func TestFetchGit(t *testing.T) {
	repo, first, second := gitRepo(t)
	f := newFetcher(t)
	req := Request{Name: "hello", Version: "1.0.0", Source: resolve.Source{Git: "file://" + repo, Commit: first, Tag: "v1"}}
	res, err := f.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if files := tarFiles(t, res.Path); files["hello.c"] != "int main(void){return 0;}\n" {
		t.Errorf("archive of the pinned commit holds %v", files)
	}
	if !f.Cache.Has(BundleKey(first)) {
		t.Error("no bundle kept for mirrors")
	}

	// A tag that does not point at the pinned commit is refused.
	bad := Request{Name: "hello", Version: "2.0.0", Source: resolve.Source{Git: "file://" + repo, Commit: second, Tag: "v1"}}
	_, err = f.Fetch(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), "tag v1 points at "+first+", not at the pinned commit "+second) {
		t.Errorf("tag mismatch: %v", err)
	}
	// A commit the repository does not have.
	gone := Request{Name: "hello", Version: "3.0.0", Source: resolve.Source{Git: "file://" + repo, Commit: strings.Repeat("0", 40)}}
	if _, err := f.Fetch(context.Background(), gone); err == nil {
		t.Error("fetched a commit that does not exist")
	}

	// Populate a mirror, then fetch offline from it into a new cache; the
	// repository itself is gone.
	mirror := t.TempDir()
	if _, err := f.Populate(context.Background(), []Request{req}, mirror, 1); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(repo)
	g := newFetcher(t)
	g.Offline, g.Mirrors = true, []string{"file://" + mirror}
	res, err = g.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if files := tarFiles(t, res.Path); files["hello.c"] != "int main(void){return 0;}\n" || !strings.HasSuffix(res.From, ".bundle") {
		t.Errorf("from the mirror: %+v %v", res, files)
	}
	// Offline without a mirror: missing.
	h := newFetcher(t)
	h.Offline = true
	var me *MissingError
	if _, err := h.Fetch(context.Background(), req); !errors.As(err, &me) {
		t.Errorf("offline git without a mirror: %v", err)
	}
}
