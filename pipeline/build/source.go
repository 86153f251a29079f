package build

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coach-build/coach/pipeline/archive"
	"github.com/coach-build/coach/pipeline/confine"
	"github.com/coach-build/coach/pipeline/spec"
)

// patchDir is where patches are copied inside the source tree.
const patchDir = ".coach-patches"

// prepareSource lays a component's source out in dst (which must not
// exist): an archive is extracted, a directory copied, so the build never
// writes into the cache or the repository. It returns the working directory
// relative to dst: relative_path when the definition sets it, else the
// archive's single top-level directory, else ".".
func prepareSource(fetched, fileName, dst string, want archive.Digest, s *spec.Software, vars spec.StepVars) (string, error) {
	st, err := os.Lstat(fetched)
	if err != nil {
		return "", err
	}
	top := ""
	if st.Mode()&fs.ModeSymlink != 0 {
		return "", fmt.Errorf("path source %s %w", fetched, confine.ErrSymlinkRoot)
	}
	if st.IsDir() {
		if err := confine.CopyTreeDirs(fetched, dst); err != nil {
			return "", fmt.Errorf("copy source: %w", err)
		}
	} else {
		res, err := archive.ExtractChecked(fetched, dst, fileName, archive.DefaultLimits, want)
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
	root, err := confine.Open(dst)
	if err != nil {
		return "", err
	}
	defer root.Close()
	if st, err := root.Stat(rel); err != nil || !st.IsDir() {
		entries, _ := os.ReadDir(dst)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return "", fmt.Errorf("relative_path %q is not a directory beneath the source; it holds %v", rel, names)
	}
	return rel, nil
}

// copyPatches copies the definition's patches, then the version's, from
// software/<name>/ into <src>/.coach-patches with numbered names that keep
// their order. Both ends are confined: a patch that is a symlink out of
// software/<name>/, or a .coach-patches the archive planted as a link out of
// the source tree, fails.
func copyPatches(root string, s *spec.Software, srcDir string) ([]string, error) {
	all := append(append([]string{}, s.Patches...), s.Versions[0].Patches...)
	if len(all) == 0 {
		return nil, nil
	}
	from, err := confine.Open(filepath.Join(s.Files(root), s.Name))
	if err != nil {
		return nil, fmt.Errorf("patches: %w", err)
	}
	defer from.Close()
	to, err := confine.Open(srcDir)
	if err != nil {
		return nil, err
	}
	defer to.Close()
	var names []string
	for i, p := range all {
		name := fmt.Sprintf("%02d-%s", i+1, filepath.Base(p))
		if err := confine.CopyFile(from, p, to, filepath.Join(patchDir, name), 0o644); err != nil {
			return nil, fmt.Errorf("patch %s: %w", p, err)
		}
		names = append(names, name)
	}
	return names, nil
}
