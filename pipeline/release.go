package pipeline

import (
	"log/slog"
	"path/filepath"

	"github.com/coach-build/coach/pipeline/event"
	"github.com/coach-build/coach/pipeline/failure"
	"github.com/coach-build/coach/pipeline/pkg"
	"github.com/coach-build/coach/pipeline/project"
)

type releaseOptions struct {
	root, outDir, signKey, passEnv string
}

// writeRelease writes the packages of some targets' trees with their
// manifest, SBOM, sums and report.
func writeRelease(prep *project.Prepared, trees []pkg.TargetTree, o releaseOptions, report map[string]any, log *slog.Logger) (*pkg.Release, error) {
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
