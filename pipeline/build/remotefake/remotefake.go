// Package remotefake is an in-memory build.Remote for tests: layers are
// kept as copies of their trees, and what was pulled and pushed is
// recorded.
package remotefake

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/coach-build/coach/pipeline/confine"
)

// Remote keeps layers in a directory, one per key.
type Remote struct {
	// Dir holds <key>/tree and <key>/meta.json.
	Dir string
	// Push makes Pushes true.
	Push bool

	mu             sync.Mutex
	pulled, pushed []string
}

func (r *Remote) entry(key string) string { return filepath.Join(r.Dir, filepath.Base(key)) }

// PullLayer copies the tree of key into dir.
func (r *Remote) PullLayer(ctx context.Context, key, dir string) ([]byte, error) {
	meta, err := os.ReadFile(filepath.Join(r.entry(key), "meta.json"))
	if err != nil {
		return nil, fs.ErrNotExist
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := confine.CopyTreeDirs(filepath.Join(r.entry(key), "tree"), dir); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.pulled = append(r.pulled, key)
	r.mu.Unlock()
	return meta, nil
}

// HasLayer reports whether key is kept.
func (r *Remote) HasLayer(ctx context.Context, key string) (bool, error) {
	_, err := os.Stat(filepath.Join(r.entry(key), "meta.json"))
	return err == nil, nil
}

// PushLayer keeps a copy of dir and meta under key.
func (r *Remote) PushLayer(ctx context.Context, key, dir string, meta []byte, tmp string) error {
	if err := r.Put(key, dir, meta); err != nil {
		return err
	}
	r.mu.Lock()
	r.pushed = append(r.pushed, key)
	r.mu.Unlock()
	return nil
}

// Put stores an entry as is (a test's tampering too).
func (r *Remote) Put(key, dir string, meta []byte) error {
	e := r.entry(key)
	os.RemoveAll(e)
	if err := os.MkdirAll(filepath.Join(e, "tree"), 0o755); err != nil {
		return err
	}
	if err := confine.CopyTreeDirs(dir, filepath.Join(e, "tree")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(e, "meta.json"), meta, 0o644)
}

// Pushes reports Push.
func (r *Remote) Pushes() bool { return r.Push }

func (r *Remote) String() string { return "fake://" + r.Dir }

// Pulled and Pushed are the keys moved so far.
func (r *Remote) Pulled() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.pulled...)
}
func (r *Remote) Pushed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.pushed...)
}
