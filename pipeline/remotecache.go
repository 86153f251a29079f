package pipeline

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/fetch"
	"github.com/coach-build/coach/pipeline/flow"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/remote"
)

// RemoteCache says which remote cache (an OCI repository,
// oci://registry/team/coach-cache) a run reads and writes.
type RemoteCache struct {
	// From is read before building a component (--cache-from); To is
	// read and written (--cache-to). Given both, they must be the same.
	From, To string
	// Required fails the run when the registry cannot be reached,
	// instead of warning once and building locally.
	Required bool
	// SignKey, when set, is the OpenPGP private key file every pushed
	// layer's metadata is signed with; its passphrase comes from the
	// environment variable PassphraseEnv (COACH_SIGNING_PASSPHRASE when
	// empty).
	SignKey, PassphraseEnv string
	// VerifyKey, when set, is the OpenPGP public key file a pulled
	// layer must be signed by; an entry without a valid signature is
	// refused and built here.
	VerifyKey string
}

// Ref is the repository the run uses, "" for none.
func (o RemoteCache) Ref() string {
	if o.To != "" {
		return o.To
	}
	return o.From
}

// RemoteCacheResult is what a run moved through the remote cache.
type RemoteCacheResult struct {
	Ref    string `json:"ref"`
	Pushes bool   `json:"pushes"`
	remote.Stats
}

func remoteResult(c *remote.Cache) *RemoteCacheResult {
	return &RemoteCacheResult{Ref: c.String(), Pushes: c.Pushes(), Stats: c.Stats()}
}

// maxPublicKeyBytes bounds a public key file.
const maxPublicKeyBytes = 1 << 20

// remoteCache opens the run's remote cache, nil when it has none.
func (s *session) remoteCache(o RemoteCache) (*remote.Cache, error) {
	ref := o.Ref()
	if ref == "" {
		if o.Required || o.SignKey != "" || o.VerifyKey != "" {
			return nil, failure.Request(fmt.Errorf("--cache-required, --cache-sign-key and --cache-verify-key need a remote cache (--cache-from or --cache-to)"))
		}
		return nil, nil
	}
	if o.From != "" && o.To != "" && o.From != o.To {
		return nil, failure.Request(fmt.Errorf("--cache-from %s and --cache-to %s: one remote cache per run (--cache-to reads it too)", o.From, o.To))
	}
	opts := remote.Options{Push: o.To != "", Required: o.Required, Log: s.log, UserAgent: "coach"}
	if o.SignKey != "" {
		signer, err := pkg.LoadSigner(o.SignKey, os.Getenv(cmp.Or(o.PassphraseEnv, "COACH_SIGNING_PASSPHRASE")))
		if err != nil {
			return nil, failure.Request(fmt.Errorf("--cache-sign-key: %w", err))
		}
		opts.Signer = signer
	}
	if o.VerifyKey != "" {
		ring, err := readPublicKeys(o.VerifyKey)
		if err != nil {
			return nil, failure.Request(fmt.Errorf("--cache-verify-key: %w", err))
		}
		opts.Keyring = ring
	}
	c, err := remote.Open(ref, opts)
	if err != nil {
		return nil, failure.Request(err)
	}
	return c, nil
}

// readPublicKeys reads an armored or binary OpenPGP public key file.
func readPublicKeys(file string) (openpgp.EntityList, error) {
	root, err := os.OpenRoot(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	raw, err := confine.ReadFile(root, filepath.Base(file), maxPublicKeyBytes)
	if err != nil {
		return nil, err
	}
	var ring openpgp.EntityList
	if bytes.Contains(raw, []byte("-----BEGIN PGP")) {
		ring, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(raw))
	} else {
		ring, err = openpgp.ReadKeyRing(bytes.NewReader(raw))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not an OpenPGP public key: %w", file, err)
	}
	if len(ring) == 0 {
		return nil, fmt.Errorf("%s: no key", file)
	}
	return ring, nil
}

// The remote cache serves layers, sources and health reports.
var (
	_ build.Remote     = (*remote.Cache)(nil)
	_ fetch.Remote     = (*remote.Cache)(nil)
	_ flow.ReportCache = (*remote.Cache)(nil)
)
