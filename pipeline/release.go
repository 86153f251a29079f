package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/digest"
	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/pkg"
)

type releaseOptions struct {
	root, outDir, signKey, passEnv string
}

// writeRelease writes the packages of some targets' trees with their
// manifest, SBOM, sums and report.
func writeRelease(prep *Prepared, trees []pkg.TargetTree, o releaseOptions, report map[string]any, log *slog.Logger) (*pkg.Release, error) {
	mtime, from, err := pkg.SourceDateEpoch(prep.Lock)
	if err != nil {
		return nil, failure.Request(err)
	}
	if from == "default" {
		log.Warn("no SOURCE_DATE_EPOCH and no lock file: package times default to 2020-01-01 (run coach lock)", "project", prep.Project.Name)
	}
	if o.outDir == "" {
		o.outDir = filepath.Join(o.root, "pkg")
	}
	if o.passEnv == "" {
		o.passEnv = "COACH_SIGNING_PASSPHRASE"
	}
	rel, err := pkg.WriteRelease(pkg.ReleaseOptions{
		Project: prep.Project, Root: o.root, Resolution: prep.Resolution, Trees: trees, Arch: prep.Plan.Arch,
		OutDir: o.outDir, MTime: mtime, SignKey: o.signKey, PassEnv: o.passEnv, Report: report,
	})
	if err != nil {
		return nil, stage(event.StagePackage, err)
	}
	for _, p := range rel.Artifacts {
		switch {
		case p.Reused:
			log.Info("package unchanged (same tree, definition and target)", "target", p.Target, "file", p.File, "sha256", p.SHA256)
		case !p.Kept:
			log.Info("packaged", "target", p.Target, "file", p.File, "bytes", p.Size, "sha256", p.SHA256)
		}
	}
	return rel, nil
}

// treeDigest identifies a merged tree by its layers' content digests, in
// merge order; "" when a layer has none (a build from before digests).
func treeDigest(res *build.Result) string {
	type layer struct{ Component, Digest string }
	var layers []layer
	for _, c := range res.Components {
		if c.Digest == "" {
			return ""
		}
		layers = append(layers, layer{c.Name, c.Digest})
	}
	return digest.JSON(struct {
		InstallDir string
		Layers     []layer
	}{res.InstallDir, layers})
}

// treeFiles gives packaging what each file of a build's tree must hash
// to, from its layers' manifests.
func treeFiles(res *build.Result) func() (map[string]string, error) {
	return func() (map[string]string, error) {
		sums, _, err := res.FileDigests()
		return sums, err
	}
}

// corruptLayer turns a packaging failure that found a file not as its
// layer recorded it into the eviction of that layer, and an error naming
// the entry: the next build rebuilds it. Other errors pass through.
func corruptLayer(err error, cacheDir string, results ...*build.Result) error {
	var cfe *pkg.CorruptFileError
	var ce *build.CorruptError
	switch {
	case errors.As(err, &ce):
	case errors.As(err, &cfe):
		for _, res := range results {
			if res == nil {
				continue
			}
			_, owners, ferr := res.FileDigests()
			if ferr != nil {
				continue
			}
			for _, c := range res.Components {
				if c.Name == owners[cfe.Path] {
					ce = &build.CorruptError{Key: c.Key, Component: c.Name, Reason: cfe.Error()}
				}
			}
			if ce == nil && owners[cfe.Path] == "" {
				// In no layer: the merged tree itself was changed.
				return fmt.Errorf("the merged tree is not what its layers hold (%w): build again to merge it anew", cfe)
			}
		}
	default:
		return err
	}
	if ce == nil {
		return err
	}
	layers := &build.LayerCache{Dir: filepath.Join(cacheDir, "layers")}
	if eerr := layers.Evict(ce.Key); eerr != nil {
		return fmt.Errorf("%w; evicting it failed: %v", ce, eerr)
	}
	return fmt.Errorf("%w; it was taken out of the cache: build again to rebuild it", ce)
}
