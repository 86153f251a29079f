package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/coach-build/coach/pipeline/internal/gitcmd"
)

// BundleKey is where a git source's bundle lives, in the cache and in
// mirrors. A bundle carries git objects, so a commit fetched from it is
// verified by git itself, wherever the bundle came from.
func BundleKey(commit string) string { return "git/" + commit + ".bundle" }

// fetchGit fetches the pinned commit (from a mirror's bundle, else from the
// repository), checks that the tag, if given, points at it, and stores a tar
// of the commit's tree and a bundle of its history.
func (f *Fetcher) fetchGit(ctx context.Context, req Request, key string, res *Result) (*Result, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("fetch %s: git sources need git: %w", req, err)
	}
	work, err := os.MkdirTemp(filepath.Join(f.Cache.Dir, "tmp"), fmt.Sprintf("partial-%d-git-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	repo := filepath.Join(work, "repo.git")
	git := func(args ...string) (string, error) { return gitcmd.Run(ctx, repo, args...) }
	if _, err := gitcmd.Run(ctx, "", "init", "-q", "--bare", "--", repo); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", req, err)
	}
	commit := req.Source.Commit
	from := ""
	for _, m := range f.Mirrors {
		loc := strings.TrimSuffix(m, "/") + "/" + BundleKey(commit)
		if f.Offline && !strings.HasPrefix(loc, "file:") {
			continue
		}
		bundle := filepath.Join(work, "mirror.bundle")
		if err := f.downloadPlain(ctx, loc, bundle); err != nil {
			continue
		}
		if _, err := git("fetch", "-q", "--", bundle, "+refs/*:refs/mirror/*"); err != nil {
			f.log().Warn("mirror bundle unusable", "component", req.String(), "from", loc, "err", err)
			continue
		}
		if _, err := git("cat-file", "-e", "--", commit+"^{commit}"); err == nil {
			from = loc
			break
		}
	}
	if from == "" {
		if f.Offline {
			return nil, &MissingError{Missing: []Request{req}}
		}
		if err := gitcmd.FetchCommit(ctx, repo, req.Source.Git, commit); err != nil {
			return nil, fmt.Errorf("fetch %s from %s: %w", req, req.Source.Git, err)
		}
		if tag := req.Source.Tag; tag != "" {
			if _, err := git("fetch", "-q", "--depth", "1", "--", req.Source.Git, "+refs/tags/"+tag+":refs/tags/"+tag); err != nil {
				return nil, fmt.Errorf("fetch %s from %s: tag %s: %w", req, req.Source.Git, tag, err)
			}
			got, err := git("rev-parse", "--verify", "--end-of-options", "refs/tags/"+tag+"^{commit}")
			if err != nil {
				return nil, fmt.Errorf("fetch %s: tag %s: %w", req, tag, err)
			}
			if got != commit {
				return nil, fmt.Errorf("fetch %s from %s: tag %s points at %s, not at the pinned commit %s", req, req.Source.Git, tag, got, commit)
			}
		}
		from = req.Source.Git
	}
	if _, err := git("update-ref", "--", "refs/coach/pin", commit); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", req, err)
	}
	// The tree as a tar, for the build, and the bundle, for mirrors.
	for _, out := range []struct {
		key  string
		args []string
	}{
		{key, []string{"archive", "--format=tar", "--end-of-options", commit}},
		{BundleKey(commit), []string{"bundle", "create", "-q", "-", "refs/coach/pin"}},
	} {
		p, err := f.Cache.create()
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, out.args...)...)
		var stderr bytes.Buffer
		h := sha256.New()
		cmd.Stdout, cmd.Stderr = io.MultiWriter(p, h), &stderr
		err = cmd.Run()
		if err == nil && out.key == key {
			// The tar's digest, recorded beside it, so that its every
			// use can check it; written first, so a tar is never there
			// without it.
			err = f.Cache.writeDigest(key, hex.EncodeToString(h.Sum(nil)))
		}
		if err == nil {
			err = f.Cache.commit(p, out.key)
		} else {
			p.discard()
			err = fmt.Errorf("git %s: %v: %s", out.args[0], err, stderr.String())
		}
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", req, err)
		}
	}
	st, err := os.Stat(res.Path)
	if err != nil {
		return nil, err
	}
	res.From, res.Bytes = from, st.Size()
	f.Cache.digest(req.Source, res)
	f.log().Info("fetched", "component", req.String(), "from", from, "commit", commit)
	return res, nil
}

// downloadPlain copies a location to a file without checksum verification;
// only for bundles, which git verifies.
func (f *Fetcher) downloadPlain(ctx context.Context, loc, dst string) error {
	body, _, err := f.open(ctx, loc)
	if err != nil {
		return err
	}
	defer body.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, body)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
