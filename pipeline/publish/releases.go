package publish

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/internal/durable"
	"github.com/coach-build/coach/pipeline/pkg"
)

// Request adds the packages of release directories to a
// repository.
type Request struct {
	// Releases are release directories coach build or coach package
	// wrote: packages and their SHA256SUMS.
	Releases []string
	// Repo is the repository's directory; with To, the local copy of the
	// bucket (a temporary directory when empty: the whole bucket is
	// downloaded first).
	Repo string
	// To is object storage to publish to, s3://bucket/prefix: what it has
	// is brought into Repo, the packages are added there, and what changed
	// is uploaded, packages first and the signed indexes last.
	To string
	// SignKey signs the repository's Release files and each release's
	// SHA256SUMS (SHA256SUMS.asc); the passphrase is read from the
	// environment variable PassphraseEnv (COACH_SIGNING_PASSPHRASE).
	SignKey, PassphraseEnv string
	// Keep is how many versions of each package the indexes keep (0: all).
	Keep int
	Log  *slog.Logger
}

// Result says what a publication did.
type Result struct {
	Repo string `json:"repo"`
	// Added, Present and Removed are paths in the repository: packages
	// written, already there with the same bytes, and dropped by Keep.
	Added   []string `json:"added"`
	Present []string `json:"present"`
	Removed []string `json:"removed"`
	// Suites are the apt suites whose indexes were signed again; RPMRepos
	// the dnf repositories (rpm/<target>/<arch>) whose metadata was.
	Suites   []string `json:"suites"`
	RPMRepos []string `json:"rpm_repos"`
	// Signed are the SHA256SUMS.asc written beside each release's sums.
	Signed []string `json:"signed_sums"`
	// Key is the repository's public key.
	Key string `json:"key"`
	// Pulled and Pushed say what was downloaded from and uploaded to To.
	Pulled int         `json:"pulled,omitempty"`
	Pushed *SyncResult `json:"pushed,omitempty"`
}

// Releases checks each release directory's packages against its
// SHA256SUMS, adds the debs to the apt repository and the rpms to the dnf
// repositories in Repo, and signs each release's sums.
func Releases(ctx context.Context, req Request) (*Result, error) {
	var bucket *Bucket
	if req.To != "" {
		b, err := OpenBucket(req.To)
		if err != nil {
			return nil, failure.Request(err)
		}
		bucket = b
		if req.Repo == "" {
			tmp, err := os.MkdirTemp("", "coach-publish-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(tmp)
			req.Repo = tmp
		}
	}
	if req.Repo == "" {
		return nil, failure.Request(fmt.Errorf("publish: give the repository's directory (--repo) or a bucket (--to s3://bucket/prefix)"))
	}
	if req.SignKey == "" {
		return nil, failure.Request(fmt.Errorf("publish: a repository is signed: give --sign-key"))
	}
	env := req.PassphraseEnv
	if env == "" {
		env = "COACH_SIGNING_PASSPHRASE"
	}
	signer, err := pkg.LoadSigner(req.SignKey, os.Getenv(env))
	if err != nil {
		return nil, failure.Request(err)
	}
	// The metadata's date: $SOURCE_DATE_EPOCH when set, so that the same
	// packages and key give the same repository.
	now := time.Now
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return nil, failure.Request(fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds", epoch))
		}
		now = func() time.Time { return time.Unix(sec, 0) }
	}
	res := &Result{Repo: req.Repo, Key: filepath.Join(req.Repo, KeyFile)}
	var debs, rpms []string
	for _, dir := range req.Releases {
		sums, err := releaseSums(dir)
		if err != nil {
			return nil, failure.Request(err)
		}
		for _, name := range slices.Sorted(maps.Keys(sums)) {
			p := filepath.Join(dir, name)
			if err := checkSum(p, sums[name]); err != nil {
				return nil, err
			}
			switch {
			case strings.HasSuffix(name, ".deb"):
				debs = append(debs, p)
			case strings.HasSuffix(name, ".rpm"):
				rpms = append(rpms, p)
			}
		}
	}
	if bucket != nil {
		if res.Pulled, err = bucket.Pull(ctx, req.Repo); err != nil {
			return nil, err
		}
	}
	if len(debs) > 0 {
		apt := &Apt{Dir: req.Repo, Signer: signer, Keep: req.Keep, Now: now}
		r, err := apt.Add(ctx, debs)
		if err != nil {
			return nil, err
		}
		res.Added, res.Present, res.Removed, res.Suites = r.Added, r.Present, r.Removed, r.Suites
	}
	if len(rpms) > 0 {
		dnf := &RPM{Dir: req.Repo, Signer: signer, Keep: req.Keep, Now: now}
		r, err := dnf.Add(ctx, rpms)
		if err != nil {
			return nil, err
		}
		res.Added, res.Present, res.Removed = append(res.Added, r.Added...), append(res.Present, r.Present...), append(res.Removed, r.Removed...)
		res.RPMRepos = r.Repos
	}
	if bucket != nil {
		if res.Pushed, err = bucket.Push(ctx, req.Repo); err != nil {
			return nil, err
		}
	}
	// Each release's sums, signed: what a user checks a download with.
	for _, dir := range req.Releases {
		sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
		if err != nil {
			return nil, err
		}
		sig, err := signer.Armored(bytes.NewReader(sums))
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, "SHA256SUMS.asc")
		if err := durable.WriteFile(p, sig, 0o644); err != nil {
			return nil, err
		}
		res.Signed = append(res.Signed, p)
	}
	return res, nil
}

// releaseSums reads a release directory's SHA256SUMS: file name to sum.
func releaseSums(dir string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a release directory of coach (no SHA256SUMS): %w", dir, err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || name != filepath.Base(name) {
			return nil, fmt.Errorf("%s/SHA256SUMS: not a line of sha256sum: %q", dir, sc.Text())
		}
		sums[name] = sum
	}
	return sums, sc.Err()
}

func checkSum(p, want string) error {
	got, err := digest.File(p)
	if err != nil {
		return err
	}
	if got = strings.TrimPrefix(got, digest.Prefix); got != want {
		return fmt.Errorf("publish: %s hashes to %s, not to the %s its release's SHA256SUMS says: refusing to publish it", p, got, want)
	}
	return nil
}
