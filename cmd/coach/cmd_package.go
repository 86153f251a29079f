package main

import (
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/coach-build/coach/pipeline"
	"github.com/coach-build/coach/pipeline/build"
	"github.com/coach-build/coach/pipeline/pkg"
)

// release writes the packages of a build with its manifest, SBOM, sums and
// report.
func (a *app) release(prep *pipeline.Prepared, trees []pkg.TargetTree, pf packageFlags, report map[string]any) (*pkg.Release, error) {
	mtime, from, err := pkg.SourceDateEpoch(prep.Lock)
	if err != nil {
		return nil, usageError(err)
	}
	if from == "default" {
		a.log.Warn("no SOURCE_DATE_EPOCH and no lock file: package times default to 2020-01-01 (run coach lock)", "project", prep.Project.Name)
	}
	rel, err := pkg.WriteRelease(pkg.ReleaseOptions{
		Project: prep.Project, Root: a.dir, Resolution: prep.Resolution, Trees: trees, Arch: prep.Plan.Arch,
		OutDir: pf.out(a), MTime: mtime, SignKey: pf.signKey, PassEnv: "COACH_SIGNING_PASSPHRASE", Report: report,
	})
	if err != nil {
		return nil, withCode(exitPackage, err)
	}
	for _, p := range rel.Artifacts {
		a.log.Info("packaged", "target", p.Target, "file", p.File, "bytes", p.Size, "sha256", p.SHA256)
	}
	return rel, nil
}

func (a *app) packageCommand() *cobra.Command {
	var pf packageFlags
	var targets []string
	var from, cacheDir string
	var skipHealth bool
	cmd := &cobra.Command{
		Use:   "package <project>",
		Short: "Package the last build of a project again, for its targets or from another target's tree",
		Long: `package writes the packages of the project's last build (coach build) for the
given targets, without building. --from packages another target's tree:
coach package hello -t el9 --from debian-12 makes an rpm of the tree built
for debian-12, for hosts where el9 itself cannot be built.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prep, err := pipeline.Prepare(a.dir, args[0], pipeline.Options{Targets: targets})
			if err != nil {
				return err
			}
			if cacheDir == "" {
				cacheDir = defaultCacheDir()
			}
			var trees []pkg.TargetTree
			locked := map[string]bool{}
			for _, t := range prep.Plan.TargetList() {
				src := t.Name
				if from != "" {
					src = from
				}
				workDir := filepath.Join(cacheDir, "work", prep.Project.Name, src)
				if !locked[workDir] {
					unlock, err := build.LockWork(cmd.Context(), workDir, a.log)
					if err != nil {
						return err
					}
					defer unlock()
					locked[workDir] = true
				}
				res, err := build.ReadResult(workDir)
				if err != nil {
					return usageError(fmt.Errorf("no build of %s for %s: run coach build %s -t %s first", prep.Project.Name, src, prep.Project.Name, src))
				}
				st, _ := prep.Project.Target(src)
				rep, err := checkBuild(res, prep.Project, t, a.targetSysroot(st, cacheDir), nil, nil)
				if err != nil {
					return err
				}
				if !rep.OK() {
					rep.WriteText(a.stderr)
					if !skipHealth {
						return withCode(exitHealth, fmt.Errorf("health check of the %s tree for %s failed (--skip-health packages it anyway)", src, t.Name))
					}
					a.log.Warn("HEALTH CHECK FAILED AND IGNORED (--skip-health): this package may not run on its target", "tree", src, "target", t.Name, "errors", rep.Errors)
				}
				trees = append(trees, pkg.TargetTree{Target: t, Tree: res.InstallTree(), Depends: rep.Dependencies})
			}
			rel, err := a.release(prep, trees, pf, map[string]any{"packaged_from": from, "arch": runtime.GOARCH})
			if err != nil {
				return err
			}
			if a.json {
				return a.writeJSON(rel)
			}
			for _, p := range rel.Artifacts {
				fmt.Fprintf(a.stdout, "%s: %s\n", p.Target, a.rel(p.Path))
			}
			return nil
		},
	}
	pf.registerPackage(cmd.Flags())
	cmd.Flags().StringSliceVarP(&targets, "target", "t", nil, "targets to package (default: all of the project's)")
	cmd.Flags().StringVar(&from, "from", "", "package the tree built for this target instead")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "cache directory")
	cmd.Flags().BoolVar(&skipHealth, "skip-health", false, "package even when the health check fails (loudly; the check still runs and derives the dependencies)")
	return cmd
}
