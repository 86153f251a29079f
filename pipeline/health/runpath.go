package health

import (
	"fmt"
	"path"
	"strings"

	"github.com/coach-build/coach/pipeline/runner"
)

// badEntry is an RPATH or RUNPATH entry of an object that leads outside
// the install dir.
type badEntry struct {
	entry, why, fix string
}

// buildDirs are where builds happen, on the runners (the source mount)
// and in the usual places of a build by hand: an entry under one of them
// leaked from the build.
var buildDirs = []string{runner.SourceMount, "/tmp", "/var/tmp", "/build", "/builddir", "/root", "/home"}

// searchPathProblems judges n's own DT_RPATH and DT_RUNPATH entries, as
// ld.so reads them where n is installed: each must name a directory
// inside the install dir. An entry outside it makes the program look for
// libraries on the user's machine where the package put none (and load
// whatever is there); one under a build directory is a path of the build
// that leaked (libtool's .libs, a source tree); a relative one is
// relative to the working directory of whoever runs the program; and
// $ORIGIN/.. can climb out of the tree.
func (l *loader) searchPathProblems(n *node, installDir string) []badEntry {
	var out []badEntry
	for _, tag := range []struct {
		name    string
		entries []string
	}{{"RPATH", n.obj.rpath}, {"RUNPATH", n.obj.runpath}} {
		for _, e := range tag.entries {
			if why := l.searchPathWhy(e, n, installDir); why != "" {
				out = append(out, badEntry{
					entry: e,
					why:   fmt.Sprintf("%s entry %q %s", tag.name, e, why),
					fix: "link with the search path inside the install dir only (-Wl,-rpath," + path.Join(installDir, "embedded/lib") +
						", or $ORIGIN-relative within the tree); a libtool build relinks at `make install` when its --prefix is the install dir; " +
						"as a last resort rewrite it in an install step (patchelf --set-rpath, chrpath -r), or ignore the file with health.ignore",
				})
			}
		}
	}
	return out
}

// searchPathWhy says what is wrong with one entry, "" when nothing is.
func (l *loader) searchPathWhy(e string, n *node, installDir string) string {
	dir := l.expand(e, n)
	if !path.IsAbs(dir) {
		return "is relative: ld.so looks for libraries in it from the working directory of whoever runs the program"
	}
	dir = path.Clean(dir)
	if within(dir, installDir) {
		return ""
	}
	if strings.Contains(e, "$ORIGIN") || strings.Contains(e, "${ORIGIN}") {
		return fmt.Sprintf("leads to %s, outside %s: it climbs out of the tree", dir, installDir)
	}
	for _, b := range buildDirs {
		if within(dir, b) {
			return fmt.Sprintf("is a directory of the build (%s), outside %s: it leaked from the build and names nothing on the user's machine, or something else", b, installDir)
		}
	}
	if path.Base(dir) == ".libs" || strings.Contains(dir, "/.libs/") {
		return fmt.Sprintf("is a libtool build directory, outside %s: it leaked from the build", installDir)
	}
	return fmt.Sprintf("is outside %s: the program would load libraries from there on the user's machine", installDir)
}
