package build

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coach-build/coach/pipeline/build/remotefake"
)

type warnings struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *warnings) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func froms(res *Result) map[string]string {
	out := map[string]string{}
	for _, c := range res.Components {
		out[c.Name] = c.From
	}
	return out
}

// TestRemoteLayers: a build that pushes gives the remote every layer; a
// build on an empty cache pulls them all and runs nothing; a local hit the
// remote lacks is pushed; a remote tree that is not its metadata's digest
// is refused, said, and built.
func TestRemoteLayers(t *testing.T) {
	r := &remotefake.Remote{Dir: t.TempDir(), Push: true}
	f := newFixture(t)
	f.builder.Remote = r
	res, err := f.build(t, "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	for name, from := range froms(res) {
		if from != FromBuild {
			t.Errorf("%s: %s", name, from)
		}
	}
	if len(r.Pushed()) != 4 {
		t.Fatalf("pushed %d layers", len(r.Pushed()))
	}

	// Another machine: an empty cache, the same sources.
	g := newFixture(t)
	g.root = f.root
	g.builder.Fetcher.Root = f.root
	g.builder.Remote = &remotefake.Remote{Dir: r.Dir}
	res2, err := g.build(t, "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	for name, from := range froms(res2) {
		if from != FromRemote {
			t.Errorf("second machine, %s: %s", name, from)
		}
	}
	if len(g.runner.Calls()) != 0 {
		t.Errorf("the second machine built %v", g.runner.Built())
	}
	if res.TreeDigest() != res2.TreeDigest() {
		t.Error("different trees")
	}

	// A third machine: its own cache has every layer, a new remote has
	// none; a pushing build gives it the local hits.
	empty := &remotefake.Remote{Dir: t.TempDir(), Push: true}
	g.builder.Remote = empty
	if _, err := g.build(t, "debian-12"); err != nil {
		t.Fatal(err)
	}
	if len(empty.Pushed()) != 4 {
		t.Errorf("local hits pushed: %d", len(empty.Pushed()))
	}

	// Tampered: xz's entry holds another tree under its metadata.
	var xzKey string
	for _, c := range res.Components {
		if c.Name == "xz" {
			xzKey = c.Key
		}
	}
	meta, _ := f.builder.Layers.MetaJSON(xzKey)
	evil := t.TempDir()
	os.WriteFile(filepath.Join(evil, "owned"), []byte("x"), 0o644)
	if err := r.Put(xzKey, evil, meta); err != nil {
		t.Fatal(err)
	}
	h := newFixture(t)
	h.root = f.root
	h.builder.Fetcher.Root = f.root
	h.builder.Remote = &remotefake.Remote{Dir: r.Dir}
	var w warnings
	h.builder.Log = slog.New(slog.NewTextHandler(&w, nil))
	res3, err := h.build(t, "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	if got := froms(res3); got["xz"] != FromBuild || got["zlib"] != FromRemote {
		t.Errorf("with xz tampered: %v", got)
	}
	if !strings.Contains(w.String(), "refused") || !strings.Contains(w.String(), "hashes to") {
		t.Errorf("not said: %s", w.String())
	}
	if got := h.runner.Built(); !slices.Equal(got, []string{"xz"}) {
		t.Errorf("built %v", got)
	}
	if res3.TreeDigest() != res.TreeDigest() {
		t.Error("the tree differs")
	}
}
