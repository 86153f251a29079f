package build

import (
	"context"
	"sync"
)

// Remote is a layer cache shared between machines (pipeline/remote keeps
// one in an OCI registry). A build looks a layer up there when this
// machine's cache misses, and, when the remote takes pushes, stores there
// what it built or had that the remote lacks.
type Remote interface {
	// PullLayer unpacks the layer of key into dir (which does not exist
	// yet) and returns the metadata stored with it (a LayerMeta as
	// JSON). A miss, an entry refused and a registry that cannot be
	// reached are fs.ErrNotExist; any other error fails the build.
	PullLayer(ctx context.Context, key, dir string) (meta []byte, err error)
	// HasLayer reports whether the remote has the layer of key.
	HasLayer(ctx context.Context, key string) (bool, error)
	// PushLayer stores the layer tree dir under key with its metadata;
	// tmp is a directory for the upload's temporary files. Only errors
	// that must fail the build are returned.
	PushLayer(ctx context.Context, key, dir string, meta []byte, tmp string) error
	// Pushes reports whether this run writes to the remote.
	Pushes() bool
	// String names the remote (its reference).
	String() string
}

// A component's outcome (ComponentResult.State).
const (
	StateBuilt      = "built"
	StateCached     = "cached"
	StatePulled     = "pulled"
	StateFailed     = "failed"
	StateCancelled  = "cancelled"
	StateNotStarted = "not started"
)

// Where a component's layer came from (ComponentResult.From).
const (
	FromLocal  = "local"
	FromRemote = "remote"
	FromBuild  = "build"
)

// pushes are the uploads a build started; Build waits for them.
type pushes struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (p *pushes) start(f func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := f(); err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
		}
	}()
}

func (p *pushes) wait() error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
