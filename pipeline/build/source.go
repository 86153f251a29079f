package build

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/spec"
)

// patchDir is where patches are copied inside the source tree.
const patchDir = ".coach-patches"

// prepareSource lays a component's source out in dst (which must not
// exist): an archive is extracted, a directory copied, so the build never
// writes into the cache or the repository. It returns the working directory
// relative to dst: relative_path when the definition sets it, else the
// archive's single top-level directory, else ".".
func prepareSource(fetched, fileName, dst string, s *spec.Software, vars spec.StepVars) (string, error) {
	st, err := os.Stat(fetched)
	if err != nil {
		return "", err
	}
	top := ""
	if st.IsDir() {
		if err := archive.CopyTree(fetched, dst); err != nil {
			return "", fmt.Errorf("copy source: %w", err)
		}
	} else {
		res, err := archive.Extract(fetched, dst, fileName, archive.DefaultLimits)
		if err != nil {
			return "", err
		}
		top = res.TopDir
	}
	rel := top
	if s.RelativePath != "" {
		if rel, err = spec.Expand(s.RelativePath, vars); err != nil {
			return "", fmt.Errorf("relative_path: %w", err)
		}
	}
	if rel == "" {
		rel = "."
	}
	if st, err := os.Stat(filepath.Join(dst, rel)); err != nil || !st.IsDir() {
		entries, _ := os.ReadDir(dst)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return "", fmt.Errorf("relative_path %q is not a directory of the source; it holds %v", rel, names)
	}
	return rel, nil
}

// copyPatches copies the definition's patches, then the version's, into
// <src>/<rel>/.coach-patches with numbered names that keep their order.
func copyPatches(root string, s *spec.Software, srcDir string) ([]string, error) {
	all := append(append([]string{}, s.Patches...), s.Versions[0].Patches...)
	if len(all) == 0 {
		return nil, nil
	}
	dir := filepath.Join(srcDir, patchDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for i, p := range all {
		name := fmt.Sprintf("%02d-%s", i+1, filepath.Base(p))
		if err := archive.CopyFile(filepath.Join(root, "software", s.Name, p), filepath.Join(dir, name), 0o644); err != nil {
			return nil, fmt.Errorf("patch %s: %w", p, err)
		}
		names = append(names, name)
	}
	return names, nil
}
