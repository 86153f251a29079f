package cache

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/verify"
)

// VerifyCacheRequest checks every entry of a cache against its digest.
type VerifyCacheRequest struct {
	// Repair evicts every corrupt entry: the next build fetches or
	// builds it again.
	Repair bool
	Log    *slog.Logger
}

// VerifyCacheEntry is one corrupt entry.
type VerifyCacheEntry struct {
	Kind    string `json:"kind"` // sources, layers, verify results
	Path    string `json:"path"`
	Problem string `json:"problem"`
	Evicted bool   `json:"evicted,omitempty"`
}

// VerifyCacheResult says what was checked and what was found.
type VerifyCacheResult struct {
	Sources       int                `json:"sources"`
	Layers        int                `json:"layers"`
	VerifyResults int                `json:"verify_results"`
	BytesRead     int64              `json:"bytes_read"`
	Seconds       float64            `json:"seconds"`
	Corrupt       []VerifyCacheEntry `json:"corrupt"`
}

// VerifyCache re-hashes every source against the digest it is named for
// (a git tar against the digest recorded when it was made), every layer's
// files against its manifest and its manifest against its recorded
// digest, and every verify result against its own digest, as Nix's
// store verify does. With Repair each corrupt entry is evicted. It holds
// the cache as a build does (exclusively with Repair, as gc does).
func (l Layout) Check(ctx context.Context, req VerifyCacheRequest) (*VerifyCacheResult, error) {
	start := time.Now()
	release, err := lockCache(ctx, req.Log, !req.Repair, l.Dir)
	if err != nil {
		return nil, err
	}
	defer release()
	res := &VerifyCacheResult{Corrupt: []VerifyCacheEntry{}}
	bad := func(kind, path, problem string, evict func() error) {
		e := VerifyCacheEntry{Kind: kind, Path: path, Problem: problem}
		if req.Repair && evict != nil {
			e.Evicted = evict() == nil
		}
		res.Corrupt = append(res.Corrupt, e)
	}

	// Sources.
	sources := l.SourceCache()
	keys, err := sources.Entries()
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return res, failure.Interrupted("cache verify")
		}
		algo, want, _ := strings.Cut(key, "/")
		if algo == "git" {
			b, err := os.ReadFile(sources.Path(key) + ".sha256")
			if err != nil {
				bad("sources", sources.Path(key), "no digest was recorded for it", func() error { return sources.Evict(ctx, key) })
				continue
			}
			algo, want = "sha256", strings.TrimSpace(string(b))
		}
		if algo != "sha256" && algo != "sha512" {
			continue
		}
		got, err := sources.Hash(ctx, key, algo)
		res.Sources++
		if st, serr := os.Stat(sources.Path(key)); serr == nil {
			res.BytesRead += st.Size()
		}
		switch {
		case ctx.Err() != nil:
			return res, failure.Interrupted("cache verify")
		case err != nil:
			bad("sources", sources.Path(key), err.Error(), func() error { return sources.Evict(ctx, key) })
		case got != want:
			bad("sources", sources.Path(key), fmt.Sprintf("its content hashes to %s:%s", algo, got), func() error { return sources.Evict(ctx, key) })
		}
	}

	// Layers: every file, read in full.
	layers := l.LayerCache()
	for _, e := range readDir(layers.Dir) {
		if !e.IsDir() || e.Name() == "tmp" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, failure.Interrupted("cache verify")
		}
		key := "sha256:" + e.Name()
		dir := filepath.Join(layers.Dir, e.Name())
		res.Layers++
		evict := func() error { return layers.Evict(key) }
		_, meta, ok := layers.Lookup(key)
		if !ok {
			bad("layers", dir, "its meta.json cannot be read, or names another key", evict)
			continue
		}
		stored, err := layers.Manifest(key, meta)
		if err != nil {
			bad("layers", dir, err.Error(), evict)
			continue
		}
		root, err := confine.Open(filepath.Join(dir, "layer"))
		if err != nil {
			bad("layers", dir, err.Error(), evict)
			continue
		}
		now, stats, err := confine.Manifest(root)
		root.Close()
		for _, st := range stats {
			res.BytesRead += st.Size
		}
		switch {
		case err != nil:
			bad("layers", dir, err.Error(), evict)
		case string(now) != string(stored):
			bad("layers", dir, manifestDiff(stored, now), evict)
		}
	}

	// Verify results.
	for _, e := range readDir(l.Verified()) {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		res.VerifyResults++
		p := filepath.Join(l.Verified(), e.Name())
		n, err := verify.CheckResult(p)
		res.BytesRead += n
		if err != nil {
			bad("verify results", p, err.Error(), func() error { return os.Remove(p) })
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// manifestDiff says which entries of a layer differ from its manifest.
func manifestDiff(stored, now []byte) string {
	was := map[string]string{}
	for _, l := range strings.Split(string(stored), "\n") {
		if p, rest, ok := strings.Cut(l, " "); ok {
			was[p] = rest
		}
	}
	var diffs []string
	for _, l := range strings.Split(string(now), "\n") {
		p, rest, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		switch old, seen := was[p]; {
		case !seen:
			diffs = append(diffs, p+" is not in its manifest")
		case old != rest:
			diffs = append(diffs, p+" changed")
		}
		delete(was, p)
	}
	for p := range was {
		diffs = append(diffs, p+" is missing")
	}
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return "its files differ from its manifest: " + strings.Join(diffs, "; ")
}

// VerifyPlaces puts the cache's places into a verify request: the clean
// roots, the scratch roots and the results of earlier verifications.
func (l Layout) VerifyPlaces(r verify.FileRequest) verify.FileRequest {
	r.RootfsDir, r.WorkDir, r.ResultsDir = l.Rootfs(), l.Verify(), l.Verified()
	return r
}
