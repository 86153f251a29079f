// Package remote is coach's shared cache in an OCI registry: the layers a
// build made and the sources it fetched, stored as OCI artifacts in one
// repository (oci://registry/team/coach-cache), so that CI runners and
// laptops build each component once.
//
// A layer is an artifact tagged layer-<key hex>: its config is the
// layer's metadata (key, content digest, component, version, target,
// environment), its one blob the layer's tree as a reproducible tar
// compressed with zstd. A source is an artifact tagged source-<sha256>
// whose one blob is the source file itself, so the blob's digest is the
// pin. Nothing pulled is trusted on the registry's word: a layer's tree is
// unpacked through the same confined extraction as a source, and its
// content digest must be the one its metadata records (the caller checks
// that); a source must hash to its pin. With a public key configured, a
// layer's metadata must also carry a valid OpenPGP signature by it.
//
// A registry that is down or unreachable is said once and then left
// alone for the rest of the run: builds go on locally. Marked required,
// it fails the run instead.
package remote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Scheme prefixes a remote cache's reference: oci://host[:port]/repository.
const Scheme = "oci://"

// Signer signs a layer's metadata (pkg.Signer is one).
type Signer interface {
	Armored(message io.Reader) ([]byte, error)
}

// Options say how a remote cache is used.
type Options struct {
	// Push lets the run write entries (--cache-to); without it the cache
	// is only read (--cache-from).
	Push bool
	// Required fails the run when the registry cannot be reached, instead
	// of warning once and building locally.
	Required bool
	// Signer, when set, signs every layer pushed.
	Signer Signer
	// Keyring, when set, is the public keys a pulled layer's metadata
	// must be signed by; an unsigned or wrongly signed entry is refused.
	Keyring openpgp.EntityList
	// Log hears warnings (the registry down, an entry refused).
	Log *slog.Logger
	// Transport replaces the default HTTP transport (tests).
	Transport http.RoundTripper
	// UserAgent names the client to the registry.
	UserAgent string
}

// Cache is a remote cache in one OCI repository. It is safe for
// concurrent use.
type Cache struct {
	Options
	repo name.Repository
	ref  string
	opts []remote.Option

	down     atomic.Bool
	warnOnce sync.Once
	// noPush: the registry refused a write (read-only credentials);
	// reads go on.
	noPush       atomic.Bool
	pushWarnOnce sync.Once
	// pulled and pushed count the bytes moved (compressed).
	pulled, pushed atomic.Int64
	// pulls and pushes count the entries moved.
	pulls, pushes atomic.Int64
}

// Parse checks a remote cache reference, oci://host[:port]/repository,
// and returns its repository.
func Parse(ref string) (name.Repository, error) {
	rest, ok := strings.CutPrefix(ref, Scheme)
	if !ok {
		return name.Repository{}, fmt.Errorf("remote cache %q: must start with %s (oci://registry.example/team/coach-cache)", ref, Scheme)
	}
	if strings.ContainsAny(rest, "@:") && strings.LastIndex(rest, ":") > strings.Index(rest, "/") {
		return name.Repository{}, fmt.Errorf("remote cache %q: a repository, without a tag or digest (coach names its entries itself)", ref)
	}
	repo, err := name.NewRepository(rest, name.StrictValidation)
	if err != nil {
		return name.Repository{}, fmt.Errorf("remote cache %q: %w", ref, err)
	}
	if !strings.Contains(rest, "/") {
		return name.Repository{}, fmt.Errorf("remote cache %q: name a repository on the registry, as in %sregistry.example/team/coach-cache", ref, Scheme)
	}
	return repo, nil
}

// Open makes the cache at ref (oci://host/repository). Nothing is
// contacted until the first lookup. Credentials come the standard way:
// Docker's config.json and its credential helpers.
func Open(ref string, o Options) (*Cache, error) {
	repo, err := Parse(ref)
	if err != nil {
		return nil, err
	}
	c := &Cache{Options: o, repo: repo, ref: ref}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	tr := o.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// A registry that does not answer is found out in seconds, not
		// after the kernel's TCP timeout.
		t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = 60 * time.Second
		tr = t
	}
	c.opts = []remote.Option{
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(tr),
		remote.WithUserAgent(cmp.Or(o.UserAgent, "coach")),
		// Two quick retries of what may be transient; a registry that is
		// down is not waited for.
		remote.WithRetryBackoff(remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Steps: 2}),
	}
	return c, nil
}

// String is the reference the cache was opened with.
func (c *Cache) String() string { return c.ref }

// Pushes reports whether this run writes to the cache.
func (c *Cache) Pushes() bool { return c.Push }

// pushable reports whether a push is worth trying.
func (c *Cache) pushable() bool { return c.Push && c.usable() && !c.noPush.Load() }

// pushFailed handles an error of a push: a write the registry refused
// (401, 403, 405: credentials that may read but not write) stops the
// run's pushes, said once, and leaves its reads alone; any other error is
// failed's.
func (c *Cache) pushFailed(ctx context.Context, what string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden || te.StatusCode == http.StatusMethodNotAllowed) {
		if c.Required {
			return &UnavailableError{Ref: c.ref, Err: fmt.Errorf("%s: %w", what, err)}
		}
		c.noPush.Store(true)
		c.pushWarnOnce.Do(func() {
			c.Log.Warn(fmt.Sprintf("remote cache %s refuses this run's writes (%s: %v); pulling from it still, pushing nothing more", c.ref, what, shortErr(err)))
		})
		return nil
	}
	if err := c.failed(ctx, what, err); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Stats are the bytes and entries a run moved.
type Stats struct {
	PulledBytes int64 `json:"pulled_bytes"`
	Pulled      int64 `json:"pulled"`
	PushedBytes int64 `json:"pushed_bytes"`
	Pushed      int64 `json:"pushed"`
	// Down says the registry could not be reached (and was left alone).
	Down bool `json:"down,omitempty"`
}

// Stats says what the cache moved so far.
func (c *Cache) Stats() Stats {
	return Stats{PulledBytes: c.pulled.Load(), Pulled: c.pulls.Load(), PushedBytes: c.pushed.Load(), Pushed: c.pushes.Load(), Down: c.down.Load()}
}

// UnavailableError is a required remote cache that could not be used.
type UnavailableError struct {
	Ref string
	Err error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("remote cache %s (required) cannot be used: %v", e.Ref, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// options are the registry client's options for one call.
func (c *Cache) options(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, c.opts...)
}

// usable reports whether the registry is worth asking (it has not been
// found down in this run).
func (c *Cache) usable() bool { return !c.down.Load() }

// isMissing says whether err is the registry saying "no such entry".
func isMissing(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusNotFound {
			return true
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
				return true
			}
		}
	}
	return false
}

// failed handles an error talking to the registry: a miss is
// fs.ErrNotExist; the caller's own cancellation is returned as is; any
// other failure fails a required cache, and otherwise marks the registry
// down for the rest of the run, said once, and is a miss.
func (c *Cache) failed(ctx context.Context, what string, err error) error {
	if isMissing(err) {
		return fs.ErrNotExist
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if c.Required {
		return &UnavailableError{Ref: c.ref, Err: fmt.Errorf("%s: %w", what, err)}
	}
	c.down.Store(true)
	c.warnOnce.Do(func() {
		c.Log.Warn(fmt.Sprintf("remote cache %s cannot be used (%s: %v); building without it for the rest of this run", c.ref, what, shortErr(err)))
	})
	return fs.ErrNotExist
}

// shortErr is err's message without the URL noise of a failed request:
// the network error itself when there is one, else the message, bounded.
func shortErr(err error) string {
	if op := (*net.OpError)(nil); errors.As(err, &op) {
		return op.Error()
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
